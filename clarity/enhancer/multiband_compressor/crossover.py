"""Multi-way Linkwitz-Riley crossover (4th order) with all-pass phase compensation.

Each crossover frequency f_m gets a 4th-order Linkwitz-Riley low-pass LP_m and high-pass HP_m
(a 2nd-order Butterworth applied twice) [1]. Their sum LP_m + HP_m is an all-pass AP_m. For
crossover frequencies f_0 < ... < f_{N-1}, band k (k = 0..N) is

    band k = AP_{N-1} ... AP_{k+1} · HP_{k-1} ... HP_0 · LP_k · x      (LP_N = 1)

so every band carries the same all-pass phase and the bands sum back to a flat magnitude [2].

Speed without moving the numbers. The official toolkit applies each all-pass as one 8th-order
direct-form polynomial whose poles are four-fold near z = 1; at low crossover frequencies its
own rounding noise reaches 1e-8 on band 0, so no other realisation can match it there. Stages
are therefore split in two:

* exact: in each band, the official filters up to the last all-pass below
  `EXACT_ALLPASS_MAX_FREQUENCY` · fs or low-/high-pass below `EXACT_LINKWITZ_RILEY_MAX_FREQUENCY`
  · fs (both limits measured against extended precision) are run exactly as
  `scipy.signal.lfilter` does (same coefficients, same direct form II transposed, same
  operation order: bit-identical);
* the rest uses the exact-math equivalents in second-order sections: LR4 = Butterworth biquad
  applied twice, AP_m = LP_m + HP_m = the biquad all-pass with the Butterworth poles, and the
  bands without an exact part share one high-pass cascade u_k = HP_{k-1} ... HP_0 x and are
  formed by telescoping, band k = q_k - q_{k+1} with q_k = AP_{N-1} ... AP_k u_k (because
  LP_k u_k = AP_k u_k - HP_k u_k).

The second group moved the bands by <= 2e-11 of the signal amplitude (tests) compared with
the official cascade. All filters of all bands run together as a wavefront, eight filters per
vector instruction (see `wavefront.py`), in a loop compiled once per crossover and sample
rate with the coefficients as constants.

References:
    [1] Linkwitz, S. H. (1976). Active crossover networks for noncoincident drivers.
        J. Audio Eng. Soc., 24(1), 2-8.
    [2] D'Appolito, J. A. (1984). Active realization of multiway all-pass crossover systems.
        AES Convention 76.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import butter, tf2zpk, zpk2tf

from clarity.enhancer.multiband_compressor.wavefront import Stage, Wavefront, emit_filter_step
from clarity.utils import vector_ir
from clarity.utils.sample_loop import SampleLoop, StepContext
from clarity.utils.signal_processing import check_finite_signal, check_sample_rate
from clarity.utils.vector_ir import LANES

LR_ORDER = 4  # Linkwitz-Riley order of the low- and high-pass filters


def linkwitz_riley(
    crossover_frequency: float, sample_rate: float, btype: str
) -> tuple[np.ndarray, np.ndarray]:
    """4th-order Linkwitz-Riley filter: a 2nd-order Butterworth squared in the z-plane.

    Args:
        crossover_frequency: -6 dB frequency, Hz.
        sample_rate: Hz.
        btype: "low" or "high".

    Returns:
        (b, a), each of length 5.
    """
    butter_b, butter_a = butter(LR_ORDER // 2, crossover_frequency / (sample_rate / 2), btype=btype)
    zeros, poles, gain = tf2zpk(butter_b, butter_a)
    return zpk2tf(np.concatenate((zeros, zeros)), np.concatenate((poles, poles)), gain**2)


def parallel_sum(
    low: tuple[np.ndarray, np.ndarray], high: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Transfer function of two filters in parallel, H1 + H2, over the product of denominators.

    Used on a Linkwitz-Riley pair, this is the all-pass that compensates the phase of the bands
    that do not pass through that crossover.

    Args:
        low: (b, a) of the first filter.
        high: (b, a) of the second filter.

    Returns:
        (b, a) of H1 + H2 (length len(a1) + len(a2) - 1).
    """
    zeros_low, poles_low, gain_low = tf2zpk(*low)
    zeros_high, poles_high, gain_high = tf2zpk(*high)
    numerator = (
        np.poly(np.concatenate((zeros_low, poles_high))) * gain_low
        + np.poly(np.concatenate((zeros_high, poles_low))) * gain_high
    )
    return numerator, np.poly(np.concatenate((poles_low, poles_high)))


def check_crossover_frequencies(frequencies: np.ndarray, sample_rate: float) -> None:
    """Raise ValueError unless the frequencies are finite, > 0, increasing and below Nyquist."""
    if frequencies.ndim != 1 or frequencies.size == 0:
        raise ValueError(
            "crossover frequencies must be a non-empty 1-D list of Hz,"
            f" got shape {frequencies.shape}"
        )
    if not np.all(np.isfinite(frequencies)) or np.any(frequencies <= 0):
        raise ValueError(f"crossover frequencies must be finite and > 0 Hz, got {frequencies}")
    if np.any(np.diff(frequencies) <= 0):
        raise ValueError(f"crossover frequencies must be strictly increasing, got {frequencies}")
    if frequencies[-1] >= sample_rate / 2:
        raise ValueError(
            f"crossover frequencies must be below the Nyquist frequency {sample_rate / 2} Hz,"
            f" got {frequencies[-1]} Hz"
        )


EXACT_ALLPASS_MAX_FREQUENCY = 0.05  # fraction of fs below which an all-pass stays exact
EXACT_LINKWITZ_RILEY_MAX_FREQUENCY = 0.0075  # same for a low- or high-pass


def butterworth_biquad(frequency: float, sample_rate: float, btype: str) -> tuple:
    """2nd-order Butterworth (b, a); btype "low", "high" or "all" (the all-pass with the same
    poles, equal to the sum of the low- and high-pass Linkwitz-Riley filters)."""
    b, a = butter(2, frequency / (sample_rate / 2), btype="low" if btype == "all" else btype)
    if btype == "all":
        b = a[::-1]
    return tuple(float(v) for v in b), tuple(float(v) for v in a)


@lru_cache(maxsize=32)
def crossover_loop(wavefront: Wavefront) -> SampleLoop:
    """Compiled loop(signal, params, out, bands, row) writing the bands of one row."""

    def emit_step(context: StepContext) -> None:
        bands = emit_filter_step(context, wavefront, 0)
        for band, lag in enumerate(wavefront.band_lag):
            value = vector_ir.lane(context.builder, bands[band // LANES], band % LANES)
            context.store_band(band, lag, value)

    return SampleLoop([[emit_step]], max(wavefront.band_lag), wavefront.state_vectors)


class Crossover:
    """Split a signal into len(freq_crossover) + 1 phase-aligned bands (pyClarity 0.9.0 API).

    Example:
        >>> xover = Crossover([500.0, 2000.0], sample_rate=44100)
        >>> xover(np.random.randn(2, 44100)).shape
        (3, 2, 44100)
    """

    FILTER_ORDER = LR_ORDER

    def __init__(
        self, freq_crossover: list | np.ndarray | float, sample_rate: float = 44100
    ) -> None:
        """
        Args:
            freq_crossover: crossover frequencies, Hz, strictly increasing, below Nyquist.
            sample_rate: Hz.
        """
        self.sample_rate = check_sample_rate(sample_rate)
        self.xover_freqs = np.atleast_1d(np.asarray(freq_crossover, dtype=float))
        check_crossover_frequencies(self.xover_freqs, self.sample_rate)

        self.lowpass = [linkwitz_riley(f, self.sample_rate, "low") for f in self.xover_freqs]
        self.highpass = [linkwitz_riley(f, self.sample_rate, "high") for f in self.xover_freqs]
        self.allpass = [
            parallel_sum(lp, hp) for lp, hp in zip(self.lowpass, self.highpass, strict=True)
        ]

        self.wavefront = Wavefront.from_network(*self._network())

    @property
    def num_bands(self) -> int:
        """Number of output bands, len(xover_freqs) + 1."""
        return self.xover_freqs.size + 1

    def band_filters(self, band: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The (b, a) filters of `band` in the order they are applied (low-pass, high-passes of
        the lower crossovers, all-passes of the higher crossovers but the next one)."""
        n_xover = self.xover_freqs.size
        chain = [self.lowpass[band]] if band < n_xover else []
        chain += self.highpass[:band]
        chain += self.allpass[band + 1 :]
        return chain

    def band_stage_kinds(self, band: int) -> list[tuple[str, int]]:
        """(btype, crossover index) of each filter of `band_filters(band)`, btype "low", "high"
        or "all"."""
        kinds = [("low", band)] if band < self.xover_freqs.size else []
        kinds += [("high", j) for j in range(band)]
        kinds += [("all", m) for m in range(band + 1, self.xover_freqs.size)]
        return kinds

    def _is_noisy(self, btype: str, crossover: int) -> bool:
        """Whether the official direct form of that filter rounds too much to be replaced."""
        limit = (
            EXACT_ALLPASS_MAX_FREQUENCY if btype == "all" else EXACT_LINKWITZ_RILEY_MAX_FREQUENCY
        )
        return bool(self.xover_freqs[crossover] < limit * self.sample_rate)

    def _network(self) -> tuple[tuple[Stage, ...], tuple[tuple[int, int], ...]]:
        """Stages and band outputs of the filter network (see the module docstring)."""
        n_xover = self.xover_freqs.size
        stages: list[Stage] = []

        def add(b, a, source: int) -> int:
            stages.append(Stage(tuple(map(float, b)), tuple(map(float, a)), source))
            return len(stages) - 1

        def biquads(frequency: float, btype: str, source: int, count: int) -> int:
            for _ in range(count):
                source = add(*butterworth_biquad(frequency, self.sample_rate, btype), source)
            return source

        trunk = [-1]  # trunk[k] = u_k = HP_{k-1} ... HP_0 x
        for k in range(n_xover):
            trunk.append(biquads(self.xover_freqs[k], "high", trunk[-1], 2))
        telescoped: dict[int, int] = {}  # k -> stage giving q_k = AP_{N-1} ... AP_k u_k

        def q(k: int) -> int:
            if k not in telescoped:
                node = trunk[k]
                for m in range(k, n_xover):
                    node = biquads(self.xover_freqs[m], "all", node, 1)
                telescoped[k] = node
            return telescoped[k]

        outputs: list[tuple[int, int]] = []
        for band in range(n_xover + 1):
            kinds = self.band_stage_kinds(band)
            noisy = [i for i, (btype, m) in enumerate(kinds) if self._is_noisy(btype, m)]
            if not noisy:
                outputs.append((q(band), q(band + 1) if band < n_xover else -1))
                continue
            node = -1
            for b, a in self.band_filters(band)[: noisy[-1] + 1]:
                node = add(b / a[0], a / a[0], node)
            for btype, m in kinds[noisy[-1] + 1 :]:
                node = biquads(self.xover_freqs[m], btype, node, 1 if btype == "all" else 2)
            outputs.append((node, -1))
        return tuple(stages), tuple(outputs)

    def __call__(self, signal: np.ndarray, axis: int = -1) -> np.ndarray:
        """Split `signal` along `axis` (time).

        Args:
            signal: any shape, e.g. (samples,) or (channels, samples).
            axis: time axis.

        Returns:
            (bands, *signal.shape) array of float64.
        """
        signal = np.asarray(signal, dtype=float)
        check_finite_signal(signal)
        time_last = np.moveaxis(signal, axis, -1)
        n_rows = int(np.prod(time_last.shape[:-1]))
        rows = np.ascontiguousarray(time_last.reshape(n_rows, time_last.shape[-1]))
        bands = np.empty((self.num_bands, n_rows, rows.shape[1]))
        split = crossover_loop(self.wavefront)
        for row in range(n_rows):
            split(rows, None, None, bands, row)
        bands = bands.reshape((self.num_bands, *time_last.shape))
        return np.moveaxis(bands, -1, axis if axis < 0 else axis + 1)

    def __str__(self) -> str:
        return f"Crossover frequencies: {[round(float(f), 4) for f in self.xover_freqs]} Hz"
