"""NAL-R linear hearing-aid prescription as a linear-phase FIR filter.

The prescription gains follow Byrne & Dillon (1986), "The National Acoustic
Laboratories' (NAL) new procedure for selecting the gain and frequency response of
a hearing aid", Ear and Hearing 7(4):257-265. The FIR is designed by frequency
sampling with a Hamming window on a 512-interval grid, like MATLAB's ``fir2``, so the
coefficients equal those of the Clarity toolkit.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from scipy.signal.windows import hamming

from clarity.utils.audiogram import Audiogram

NALR_FREQS: Final = np.array([250, 500, 1000, 2000, 4000, 6000])
_NALR_BIAS_DB: Final = np.array([-17.0, -8.0, 1.0, -1.0, -2.0, -2.0])
_FIR2_GRID: Final = 512  # frequency-sampling intervals from 0 to Nyquist


def _frequency_sampling_fir(n_taps: int, grid: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Linear-phase FIR whose magnitude follows ``gains`` at ``grid`` (0..1 = Nyquist).

    The magnitude is sampled on ``_FIR2_GRID + 1`` points: each breakpoint interval
    fills the grid points up to ``floor(grid[i+1] * (_FIR2_GRID + 1)) - 1`` with a
    ramp between its two gains (MATLAB ``fir2`` convention). A delay of
    ``(n_taps - 1) / 2`` samples is applied, the spectrum is mirrored, inverted and
    the first ``n_taps`` samples are Hamming windowed.
    """
    if np.any(np.diff(grid) <= 0):
        raise ValueError("FIR design grid must be strictly increasing")
    n_points = _FIR2_GRID + 1
    segment_end = np.floor(grid[1:] * n_points).astype(int) - 1  # last grid point per interval
    segment_end[-1] = n_points - 1
    segment_start = np.concatenate(([0], segment_end[:-1] + 1))
    k = np.arange(n_points)
    segment = np.searchsorted(segment_end, k, side="left")
    start, end = segment_start[segment], segment_end[segment]
    span = np.where(end > start, end - start, 1)
    ramp = np.where(end > start, (k - start) / span, 0.0)
    magnitude = ramp * gains[segment + 1] + (1.0 - ramp) * gains[segment]

    delay = 0.5 * (n_taps - 1)
    spectrum = magnitude * np.exp(-1j * np.pi * delay * k / (n_points - 1))
    full = np.concatenate((spectrum, spectrum[n_points - 2 : 0 : -1].conj()))
    impulse = np.real(np.fft.ifft(full))
    return impulse[:n_taps] * hamming(n_taps)


class NALR:
    """NAL-R equaliser for one ear.

    Args:
        nfir: FIR order; the filter has ``nfir + 1`` taps and a delay of ``nfir // 2``
            samples.
        sample_rate: sampling rate in Hz.
    """

    def __init__(self, nfir: int, sample_rate: float) -> None:
        if int(nfir) != nfir or nfir < 2:
            raise ValueError(f"NALR nfir must be an integer >= 2, got {nfir}")
        if not np.isfinite(sample_rate) or sample_rate <= 0:
            raise ValueError(f"NALR sample_rate must be > 0 Hz, got {sample_rate}")
        self.nfir = int(nfir)
        self.fmax = 0.5 * sample_rate
        self.delay = np.zeros(self.nfir + 1)
        self.delay[self.nfir // 2] = 1.0

    def prescription_gains(self, audiogram: Audiogram) -> np.ndarray:
        """NAL-R insertion gains in dB at ``NALR_FREQS`` (negative gains clipped to 0)."""
        levels = audiogram.resample(NALR_FREQS).levels
        three_frequency_sum = levels[1] + levels[2] + levels[3]  # 500 Hz, 1 kHz, 2 kHz
        if three_frequency_sum <= 180:
            x_ave = 0.05 * three_frequency_sum
        else:
            x_ave = 9.0 + 0.116 * (three_frequency_sum - 180)
        return np.maximum(x_ave + 0.31 * levels + _NALR_BIAS_DB, 0.0)

    def build(self, audiogram: Audiogram) -> tuple[np.ndarray, np.ndarray]:
        """Design the NAL-R FIR for ``audiogram``.

        Returns:
            ``(fir, delay)``: the NAL-R filter and a pure delay of the same length,
            both shape ``(nfir + 1,)``. With no loss the filter is the pure delay.
        """
        if np.max(audiogram.resample(NALR_FREQS).levels) <= 0:
            return self.delay.copy(), self.delay
        gain_db = self.prescription_gains(audiogram)
        grid = np.linspace(0, self.nfir, self.nfir + 1) / self.nfir
        knot_freqs = np.concatenate(([0.0], NALR_FREQS, [self.fmax]))
        knot_gains = np.concatenate(([gain_db[0]], gain_db, [gain_db[-1]]))
        gain_linear = 10.0 ** (np.interp(self.fmax * grid, knot_freqs, knot_gains) / 20.0)
        return _frequency_sampling_fir(self.nfir + 1, grid, gain_linear), self.delay

    def apply(self, nalr: np.ndarray, wav: np.ndarray) -> np.ndarray:
        """Full convolution of a 1-D signal with the filter, shape ``(len(wav) + nfir,)``."""
        wav = np.asarray(wav, dtype=float)
        if wav.ndim != 1:
            raise ValueError(f"NALR.apply expects a 1-D signal, got shape {wav.shape}")
        return np.convolve(wav, nalr)
