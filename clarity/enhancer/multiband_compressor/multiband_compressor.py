"""Multiband dynamic range compressor (pyClarity 0.9.0 `MultibandCompressor`, same numbers).

The signal is split by a 4th-order Linkwitz-Riley crossover (see `crossover.py`), each band is
compressed by its own feed-forward compressor (Giannoulis et al. 2012, see `compressor_qmul.py`)
and the compressed bands are summed.

All of it runs in one compiled loop over the samples of each channel (`sample_loop.py`), with
no band-sized array: the crossover advances as a wavefront (`wavefront.py`) that yields, at each
step, a vector whose lane k is band k (band k `band_lag[k]` samples behind the input); lane k of
that vector goes through compressor k (`compressor_stages`) and into a small ring of vectors,
from which the bands of one sample are summed, in band order as the official `sum(axis=0)`,
once the most delayed band has reached it. The loop has two stages, crossover and levels, then
gain computer, smoothing, gains and sum; where two CPUs are free they run as a two-thread
pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from llvmlite import ir

from clarity.enhancer.multiband_compressor.compressor_qmul import (
    PARAMETERS,
    Compressor,
    compressor_stages,
    parameter_vectors,
)
from clarity.enhancer.multiband_compressor.crossover import Crossover
from clarity.enhancer.multiband_compressor.wavefront import Wavefront, emit_filter_step
from clarity.utils import vector_ir
from clarity.utils.sample_loop import SampleLoop, StepContext
from clarity.utils.signal_processing import check_finite_signal, check_sample_rate
from clarity.utils.vector_ir import DOUBLE, INT64, LANES

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


@lru_cache(maxsize=32)
def multiband_loop(wavefront: Wavefront, return_bands: bool) -> SampleLoop:
    """Compiled loop(signal, params, out, bands, row): crossover, compressors and sum of one
    row into out[row]; also the compressed bands into bands[:, row] if `return_bands`."""
    band_lag = wavefront.band_lag
    n_groups = -(-len(band_lag) // LANES)  # band vectors of eight lanes
    delay = max(band_lag)
    ring_size = 1 << (delay - min(band_lag)).bit_length()  # power of two > the lag spread

    def crossover_bands(context: StepContext) -> list[ir.Value]:
        return emit_filter_step(context, wavefront, 0)

    def store(context: StepContext, compressed: list[ir.Value]) -> None:
        builder = context.builder
        if return_bands:
            for band, lag in enumerate(band_lag):
                value = vector_ir.lane(builder, compressed[band // LANES], band % LANES)
                context.store_band(band, lag, value)
        mask = INT64(ring_size - 1)
        row = builder.mul(builder.and_(context.t, mask), INT64(n_groups))
        for group, vector in enumerate(compressed):
            slot = builder.gep(context.ring, [builder.add(row, INT64(group))])
            builder.store(vector, slot, align=8)
        ring = builder.bitcast(context.ring, DOUBLE.as_pointer())
        total = None
        for band, lag in enumerate(band_lag):
            step = builder.and_(builder.sub(context.t, INT64(delay - lag)), mask)
            index = builder.add(builder.mul(step, INT64(n_groups * LANES)), INT64(band))
            value = builder.load(builder.gep(ring, [index]))
            total = value if total is None else builder.fadd(total, value)
        context.store(context.out, context.row, delay, total)

    stages = compressor_stages(
        crossover_bands, store, wavefront.state_vectors, n_groups=n_groups, lags=band_lag
    )
    return SampleLoop(
        stages,
        delay,
        wavefront.state_vectors + n_groups,
        n_ring=ring_size * n_groups,
        n_params=len(PARAMETERS) * n_groups,
        n_scratch=2 * n_groups,
    )


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
        per band (len(crossover_frequencies) + 1).

        Args:
            attack: ms.
            release: ms.
            threshold: dB.
            ratio: compression ratio.
            makeup_gain: dB.
            knee_width: dB (0 = hard knee).
        """
        n_bands = self.num_compressors
        values = {
            name: per_band_values(name, value, n_bands)
            for name, value in (
                ("attack", attack),
                ("release", release),
                ("threshold", threshold),
                ("ratio", ratio),
                ("makeup_gain", makeup_gain),
                ("knee_width", knee_width),
            )
        }
        self.compressor = [
            Compressor(
                sample_rate=self.sample_rate, **{name: v[band] for name, v in values.items()}
            )
            for band in range(n_bands)
        ]
        self.attack, self.release = values["attack"], values["release"]
        self.threshold, self.ratio = values["threshold"], values["ratio"]
        self.makeup_gain, self.knee_width = values["makeup_gain"], values["knee_width"]

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
        signal = np.ascontiguousarray(signal)
        output = np.empty((n_channels, n_samples))
        bands = np.empty((self.num_compressors, n_channels, n_samples)) if return_bands else None
        compress = multiband_loop(self.crossover.wavefront, return_bands)
        parameters = parameter_vectors(self.compressor)
        for channel in range(n_channels):
            compress(signal, parameters, output, bands, channel)
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
