"""Rebalance, remix, level and compress the sources of a scene.

Signals here are `(samples, channels)` float arrays at the recipe's input sample rate, the
layout the FLAC reader returns. Gains are in dB.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import pyloudnorm as pyln

from clarity.cad2.metadata import CompressorParams
from clarity.enhancer.multiband_compressor import MultibandCompressor

SILENT_STEM_LUFS = -80.0
EARS = ("left", "right")


def average_repeated_instrument_gains(
    gains: Mapping[str, float], source_instruments: Mapping[str, str]
) -> dict[str, float]:
    """Give every source whose instrument appears more than once the mean of their gains.

    The separation models cannot tell two voices of one instrument apart, so both voices get
    one gain. As in the challenge baseline, the mean is taken over *all* sources whose
    instrument is repeated (with two violins and two cellos, the four share one mean).

    Args:
        gains: source id -> gain in dB.
        source_instruments: source id -> model instrument ("Violin").

    Returns:
        source id -> gain in dB, in the order of `gains`.
    """
    counts = Counter(source_instruments.values())
    repeated = {source for source, name in source_instruments.items() if counts[name] > 1}
    if not repeated:
        return dict(gains)
    shared = float(np.mean([gain for source, gain in gains.items() if source in repeated]))
    return {source: shared if source in repeated else gain for source, gain in gains.items()}


def apply_gains(
    stems: Mapping[str, np.ndarray], sample_rate: int, gains: Mapping[str, float]
) -> dict[str, np.ndarray]:
    """Change each stem's loudness (ITU-R BS.1770, pyloudnorm) by its gain.

    A silent stem (loudness -inf) is taken as -80 LUFS.

    Args:
        stems: source id -> `(samples, channels)` signal.
        sample_rate: Hz.
        gains: source id -> gain in dB; must cover every stem.

    Returns:
        source id -> `(samples, channels)` float64 signal.
    """
    meter = pyln.Meter(int(sample_rate))
    out = {}
    for source, signal in stems.items():
        loudness = meter.integrated_loudness(signal)
        if loudness == -np.inf:
            loudness = SILENT_STEM_LUFS
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Possible clipped samples in output")
            out[source] = pyln.normalize.loudness(signal, loudness, loudness + gains[source])
    return out


def remix_stems(stems: Mapping[str, np.ndarray]) -> np.ndarray:
    """Sum the stems, each `(samples, channels)`, into one float64 `(samples, channels)` signal."""
    signals = list(stems.values())
    remix = np.zeros(signals[0].shape)
    for signal in signals:
        remix += signal
    return remix


def level_adjustment_db(gains: Mapping[str, float]) -> float:
    """Gain (dB) that undoes the average amplification of the rebalancing.

    G = -10 log10(mean_i 10^(g_i / 10)) over every gain g_i of the scene.
    """
    gains_db = np.array(list(gains.values()), dtype=float)
    return float(-10 * np.log10(np.sum(10 ** (gains_db / 10)) / gains_db.shape[0]))


def adjust_level(signal: np.ndarray, gains: Mapping[str, float]) -> np.ndarray:
    """Scale a signal by `level_adjustment_db(gains)`."""
    return signal * 10 ** (level_adjustment_db(gains) / 20)


def ear_compressor_settings(
    params: CompressorParams,
    attack: Sequence[float],
    release: Sequence[float],
    threshold: Sequence[float],
) -> dict[str, dict[str, list[float]]]:
    """`MultibandCompressor.set_compressors` keyword arguments for each ear.

    Args:
        params: the listener's ratios and make-up gains (dB) per band.
        attack, release: per band, in ms.
        threshold: per band, in dB.

    Returns:
        {"left": kwargs, "right": kwargs}.
    """
    shared = {
        "attack": [float(value) for value in attack],
        "release": [float(value) for value in release],
        "threshold": [float(value) for value in threshold],
    }
    return {
        "left": {**shared, "ratio": params.ratio_left, "makeup_gain": params.gain_left},
        "right": {**shared, "ratio": params.ratio_right, "makeup_gain": params.gain_right},
    }


def compress_ears(
    signal: np.ndarray,
    compressor: MultibandCompressor,
    settings: Mapping[str, Mapping[str, list[float]]],
) -> np.ndarray:
    """Compress the left and right channels, each with its ear's settings.

    Args:
        signal: `(samples, 2)`.
        compressor: set up at the signal's sample rate with the config's crossovers.
        settings: from `ear_compressor_settings`.

    Returns:
        `(samples, 2)` compressed signal.
    """
    ears = []
    for channel, ear in enumerate(EARS):
        compressor.set_compressors(**settings[ear])
        ears.append(np.asarray(compressor(signal[:, channel])).reshape(-1))
    return np.stack(ears, axis=1)
