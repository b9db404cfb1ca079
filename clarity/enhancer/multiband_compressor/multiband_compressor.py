"""Multiband dynamic range compressor (pyClarity 0.9.0 `MultibandCompressor`, same numbers).

The signal is split by a 4th-order Linkwitz-Riley crossover (`crossover.py`, bit-identical to
the official bands), each band is compressed by its own feed-forward compressor (Giannoulis et
al. 2012, `compressor_qmul.py`) and the compressed bands are summed in band order, as the
official `sum(axis=0)`. The three stages run one block of samples at a time (the crossover and
compressor states carried from block to block), so that the band-sized temporaries stay in
cache; every band of every channel is one row of the compressor stage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clarity.enhancer.multiband_compressor.compressor_qmul import Compressor, compress_columns
from clarity.enhancer.multiband_compressor.crossover import Crossover
from clarity.utils.signal_processing import check_finite_signal, check_sample_rate

BLOCK = 16384  # samples per channel processed at a time

# set_compressors parameters and the defaults used when compressors_params leaves one out
DEFAULT_PARAMETERS = {
    "attack": 15.0,
    "release": 100.0,
    "threshold": 0.0,
    "ratio": 1.0,
    "makeup_gain": 0.0,
    "knee_width": 0.0,
}


def per_band_values(name: str, value: float | Sequence[float] | np.ndarray, n_bands: int) -> list:
    """A scalar repeated for every band, or a sequence checked to hold one value per band."""
    if np.ndim(value) == 0:
        return [float(value)] * n_bands
    values = [float(v) for v in np.asarray(value, dtype=float).ravel()]
    if np.ndim(value) != 1 or len(values) != n_bands:
        raise ValueError(
            f"{name} must be a number or hold one value per band: expected {n_bands}"
            f" (len(crossover_frequencies) + 1), got {len(values)} (shape {np.shape(value)})"
        )
    return values


class MultibandCompressor:
    """Crossover + one compressor per band.

    Example:
        >>> mbc = MultibandCompressor([500.0, 2000.0], sample_rate=44100)
        >>> mbc.set_compressors(threshold=-30, ratio=[1.5, 2.0, 3.0], makeup_gain=6)
        >>> mbc(np.random.randn(2, 44100) * 0.1).shape
        (2, 44100)
    """

    def __init__(
        self,
        crossover_frequencies: float | Sequence[float] | np.ndarray,
        sample_rate: float = 44100,
        compressors_params: dict | None = None,
    ) -> None:
        """
        Args:
            crossover_frequencies: band edges, Hz, strictly increasing, below Nyquist.
            sample_rate: Hz.
            compressors_params: optional keyword arguments of `set_compressors` (attack, release,
                threshold, ratio, makeup_gain, knee_width); missing ones take their defaults.
        """
        self.sample_rate = check_sample_rate(sample_rate)
        self.crossover = Crossover(crossover_frequencies, self.sample_rate)
        self.xover_freqs = self.crossover.xover_freqs
        self.num_compressors = self.crossover.num_bands

        params = dict(DEFAULT_PARAMETERS)
        if compressors_params is not None:
            unknown = sorted(set(compressors_params) - set(DEFAULT_PARAMETERS))
            if unknown:
                raise ValueError(
                    f"compressors_params has unknown key(s) {unknown};"
                    f" expected some of {sorted(DEFAULT_PARAMETERS)}"
                )
            params.update(compressors_params)
        self.compressor: list[Compressor] = []
        self.set_compressors(**params)

    def set_compressors(
        self,
        attack: float | Sequence[float] = 15.0,
        release: float | Sequence[float] = 100.0,
        threshold: float | Sequence[float] = 0.0,
        ratio: float | Sequence[float] = 1.0,
        makeup_gain: float | Sequence[float] = 0.0,
        knee_width: float | Sequence[float] = 0.0,
    ) -> None:
        """Set the compressor of every band; scalars apply to all bands, sequences hold one value
        per band (len(crossover_frequencies) + 1). The attributes of the same names keep the
        values as given.

        Args:
            attack: ms.
            release: ms.
            threshold: dB.
            ratio: compression ratio.
            makeup_gain: dB.
            knee_width: dB (0 = hard knee).
        """
        given = {
            "attack": attack,
            "release": release,
            "threshold": threshold,
            "ratio": ratio,
            "makeup_gain": makeup_gain,
            "knee_width": knee_width,
        }
        values = {
            name: per_band_values(name, value, self.num_compressors)
            for name, value in given.items()
        }
        self.compressor = [
            Compressor(
                sample_rate=self.sample_rate, **{name: v[band] for name, v in values.items()}
            )
            for band in range(self.num_compressors)
        ]
        self.attack, self.release = attack, release
        self.threshold, self.ratio = threshold, ratio
        self.makeup_gain, self.knee_width = makeup_gain, knee_width

    def __call__(
        self, signal: np.ndarray, return_bands: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Compress `signal`.

        Args:
            signal: (channels, samples) or mono (samples,), which is treated as (1, samples).
            return_bands: also return the compressed bands.

        Returns:
            compressed signal (channels, samples), and if return_bands the compressed bands
            (bands, channels, samples).
        """
        signal = np.asarray(signal, dtype=float)
        check_finite_signal(signal)
        if signal.ndim == 1:
            signal = signal[np.newaxis, :]
        if signal.ndim != 2:
            raise ValueError(
                f"signal must be (samples,) or (channels, samples), got shape {signal.shape}"
            )
        n_channels, n_samples = signal.shape
        n_bands = self.num_compressors
        signal = np.ascontiguousarray(signal)
        output = np.empty((n_channels, n_samples))
        bands = np.empty((n_bands, n_channels, n_samples)) if return_bands else None
        column_compressors = [c for c in self.compressor for _ in range(n_channels)]
        crossover_state = self.crossover.new_state(n_channels)
        smoothed = np.zeros(n_bands * n_channels)
        for start in range(0, n_samples, BLOCK):
            split = self.crossover.split_rows(signal[:, start : start + BLOCK], crossover_state)
            compressed = compress_columns(
                split.reshape(split.shape[0], n_bands * n_channels), column_compressors, smoothed
            ).reshape(split.shape)
            total = compressed[:, 0].copy()
            for band in range(1, n_bands):  # in band order, as the official sum(axis=0)
                total += compressed[:, band]
            output[:, start : start + BLOCK] = total.T
            if return_bands:
                bands[:, :, start : start + BLOCK] = compressed.transpose(1, 2, 0)
        if return_bands:
            return output, bands
        return output

    def __str__(self) -> str:
        lines = [
            "Multiband Compressor Summary:",
            f"-Crossover Filter: {self.crossover}",
            f"-Compressors: {self.num_compressors}",
        ]
        lines += [f"  -Compressor {i + 1}: {c}" for i, c in enumerate(self.compressor)]
        return "\n".join(lines)
