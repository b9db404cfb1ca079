"""Feed-forward dynamic range compressor (pyClarity 0.9.0 `Compressor`, same numbers).

Design after Giannoulis, Massberg & Reiss [1]. Per sample, with exact zeros replaced by
eps = 1e-12 (as the official toolkit does, but without writing into the caller's array):

1. level x_G = max(20 log10|x|, -120) dB;
2. gain computer with threshold T, ratio R and knee width W (dB), `gain_reduction_db`:

       y_G = x_G                                                  2 (x_G - T) < -W
       y_G = x_G + (1/R - 1) (x_G - T + W/2)^2 / (2W)             2 |x_G - T| <= W
       y_G = T + (x_G - T) / R                                    otherwise

   (a hard knee, W = 0: y_G = x_G below T), and the gain reduction x_L = x_G - y_G;
3. attack/release smoothing in the log domain, y_L[n] = a y_L[n-1] + (1 - a) x_L[n], with
   a = exp(-1 / (tau fs)) the attack coefficient while x_L[n] > y_L[n-1] and the release
   coefficient otherwise;
4. output x · 10^((makeup - y_L) / 20), computed as exp((makeup - y_L) ln(10) / 20).

The four steps are one numba kernel, `compress_block`, run on a block of samples at a time
(the recursion of step 3 cannot be vectorised along time; the compressors run side by side in
its inner loop; steps 1 and 4 are vectorised). It multiplies by 1/R and ln(10)/20 where the
official divides, uses `clarity.utils.fast_math`'s log10 and exp (within 2 ulp of NumPy's) and
exp where the official uses 10**: the outputs differ from the official ones by a few units in
the last place (~1e-16).

`compress_columns` runs the steps on many compressors at once, one per column of a
(samples, compressors) array: the channels here, the bands x channels in the multiband
compressor.

Reference:
    [1] Giannoulis, D., Massberg, M., & Reiss, J. D. (2012). Digital dynamic range compressor
        design - A tutorial and analysis. J. Audio Eng. Soc., 60(6), 399-408.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numba
import numpy as np

from clarity.utils import fast_math
from clarity.utils.signal_processing import check_finite_signal, check_sample_rate

ZERO_FLOOR = 1e-12  # value given to exact zeros (as the official compressor does)
LEVEL_FLOOR_DB = -120.0  # lowest level seen by the gain computer
LN10_OVER_20 = math.log(10.0) / 20  # 10**(g / 20) == exp(g * LN10_OVER_20)
BLOCK = 8192  # samples of each column compressed at a time

# (name, low, high, unit) of the ranges the official toolkit recommends; outside them it warns
RECOMMENDED_RANGES = (
    ("threshold", -60.0, 0.0, "dB"),
    ("ratio", 1.0, 20.0, ""),
    ("attack", 0.1, 80.0, "ms"),
    ("release", 0.1, 1000.0, "ms"),
    ("makeup_gain", 0.0, 24.0, "dB"),
)


@numba.njit(cache=True, error_model="numpy")
def gain_reduction_db(
    level: float, threshold: float, inverse_ratio: float, knee_width: float
) -> float:
    """Gain reduction x_L = x_G - y_G (dB) of the gain computer (step 2) at level x_G (dB),
    for a compressor of ratio R = 1 / inverse_ratio (multiplications instead of divisions:
    they differ from the official quotients by at most one unit in the last place)."""
    over = level - threshold
    compressed = threshold + over * inverse_ratio
    if knee_width == 0.0:  # the same branch for every sample of a compressor
        wanted = level if level < threshold else compressed
    else:
        bend = over + knee_width / 2
        soft = level + (inverse_ratio - 1) * (bend * bend) / (2 * knee_width)
        wanted = soft if 2 * abs(over) <= knee_width else compressed
        wanted = level if 2 * over < -knee_width else wanted
    return level - wanted


@numba.njit(cache=True, error_model="numpy", parallel=True)
def compress_block(
    signal: np.ndarray,
    threshold: np.ndarray,
    ratio: np.ndarray,
    knee_width: np.ndarray,
    alpha_attack: np.ndarray,
    alpha_release: np.ndarray,
    makeup_gain: np.ndarray,
    smoothed: np.ndarray,
    out: np.ndarray,
) -> None:
    """Steps 1-4 for each compressor (column) of a block of samples.

    Steps 1 and 4 are loops over every sample of the block, which the compiler turns into
    vector instructions (`fast_math.log10` and `fast_math.exp`, within 2 ulp of NumPy's), shared
    among numba's threads; steps 2-3 are the recursion along time, the compressors side by
    side in its inner loop.

    Args:
        signal: (samples, compressors) C-contiguous input block.
        threshold, ratio, knee_width, alpha_attack, alpha_release, makeup_gain: (compressors,)
            the settings of each compressor (dB, -, dB, -, -, dB).
        smoothed: (compressors,) y_L before the block (0 to start), updated to its end.
        out: (samples, compressors) C-contiguous output, the compressed block.
    """
    n_samples, n_compressors = signal.shape
    samples = signal.reshape(-1)
    values = out.reshape(-1)
    for i in numba.prange(samples.size):  # step 1: the level x_G (dB)
        magnitude = abs(samples[i])
        magnitude = ZERO_FLOOR if magnitude == 0.0 else magnitude
        values[i] = max(20 * fast_math.log10(magnitude), LEVEL_FLOOR_DB)
    inverse_ratio = 1 / ratio
    for n in range(n_samples):  # steps 2-3: ln of the gain, (makeup - y_L) ln(10) / 20
        for c in range(n_compressors):  # independent compressors: their recursions interleave
            x_l = gain_reduction_db(out[n, c], threshold[c], inverse_ratio[c], knee_width[c])
            previous = smoothed[c]
            attack, release = alpha_attack[c], alpha_release[c]  # both loaded: a select, no branch
            alpha = attack if x_l > previous else release
            y_l = alpha * previous + (1 - alpha) * x_l
            smoothed[c] = y_l
            out[n, c] = (makeup_gain[c] - y_l) * LN10_OVER_20
    for i in numba.prange(samples.size):  # step 4: x 10^((makeup - y_L) / 20), zeros as eps
        sample = ZERO_FLOOR if samples[i] == 0.0 else samples[i]
        values[i] = sample * fast_math.exp(values[i])


def compress_columns(
    signal: np.ndarray, compressors: Sequence[Compressor], smoothed: np.ndarray
) -> np.ndarray:
    """Compress column i of `signal` with compressors[i], continuing from the smoothed gain
    reductions `smoothed` (columns,) (zeros to start; updated).

    Args:
        signal: (samples, columns), not modified.

    Returns:
        (samples, columns) compressed signal.
    """
    settings = [
        np.array([getattr(c, name) for c in compressors])
        for name in (
            "threshold",
            "ratio",
            "knee_width",
            "alpha_attack",
            "alpha_release",
            "makeup_gain",
        )
    ]
    signal = np.ascontiguousarray(signal, dtype=float)
    output = np.empty_like(signal)
    for start in range(0, signal.shape[0], BLOCK):
        block = slice(start, start + BLOCK)
        compress_block(signal[block], *settings, smoothed, output[block])
    return output


def smoothing_coefficient(time_ms: float, sample_rate: float) -> float:
    """One-pole coefficient exp(-1 / (tau · fs)) for a time constant `time_ms` in ms."""
    return float(np.exp(-1.0 / (0.001 * sample_rate * time_ms)))


class Compressor:
    """Single-band compressor (pyClarity 0.9.0 `compressor_qmul.Compressor`).

    Example:
        >>> comp = Compressor(threshold=-30, ratio=4, attack=10, release=100, makeup_gain=6)
        >>> comp(np.random.randn(2, 44100) * 0.1).shape
        (2, 44100)
    """

    def __init__(
        self,
        threshold: float = 0.0,
        ratio: float = 1.0,
        attack: float = 15.0,
        release: float = 100.0,
        makeup_gain: float = 0.0,
        knee_width: float = 0.0,
        sample_rate: float = 44100.0,
    ) -> None:
        """
        Args:
            threshold: level above which the signal is compressed, dB (re full scale 1.0).
            ratio: compression ratio (> 0; 1 means no compression, < 1 expands).
            attack: attack time, ms (> 0).
            release: release time, ms (> 0).
            makeup_gain: gain applied after compression, dB.
            knee_width: width of the soft knee, dB (0 = hard knee).
            sample_rate: Hz.
        """
        values = {
            "threshold": float(threshold),
            "ratio": float(ratio),
            "attack": float(attack),
            "release": float(release),
            "makeup_gain": float(makeup_gain),
            "knee_width": float(knee_width),
        }
        for name, value in values.items():
            if not math.isfinite(value):
                raise ValueError(f"Compressor {name} must be finite, got {value}")
        for name in ("ratio", "attack", "release"):
            if values[name] <= 0:
                raise ValueError(f"Compressor {name} must be > 0, got {values[name]}")
        if values["knee_width"] < 0:
            raise ValueError(f"Compressor knee_width must be >= 0 dB, got {values['knee_width']}")
        for name, low, high, unit in RECOMMENDED_RANGES:
            if not low <= values[name] <= high:
                warnings.warn(
                    f"Compressor {name} {values[name]} {unit} is outside the recommended range"
                    f" [{low}, {high}] {unit}",
                    stacklevel=2,
                )

        self.threshold = values["threshold"]
        self.ratio = values["ratio"]
        self.attack = values["attack"]
        self.release = values["release"]
        self.makeup_gain = values["makeup_gain"]
        self.knee_width = values["knee_width"]
        self.sample_rate = check_sample_rate(sample_rate)
        self.eps = ZERO_FLOOR
        self.alpha_attack = smoothing_coefficient(self.attack, self.sample_rate)
        self.alpha_release = smoothing_coefficient(self.release, self.sample_rate)

    def __call__(self, input_signal: np.ndarray) -> np.ndarray:
        """Compress each channel independently.

        Args:
            input_signal: (channels, samples) or (samples,); not modified (the official
                compressor writes eps over its zeros; the output is the same).

        Returns:
            Compressed signal, same shape, float64.
        """
        signal = np.asarray(input_signal, dtype=float)
        check_finite_signal(signal, "input_signal")
        rows = np.atleast_2d(signal)
        if rows.ndim != 2:
            raise ValueError(
                f"input_signal must be (channels, samples) or (samples,), got {signal.shape}"
            )
        output = compress_columns(rows.T, [self] * rows.shape[0], np.zeros(rows.shape[0]))
        return output.T.reshape(signal.shape)

    def __str__(self) -> str:
        return (
            f"Compressor: threshold={self.threshold} dB, ratio={self.ratio},"
            f" attack={self.attack} ms, release={self.release} ms,"
            f" makeup_gain={self.makeup_gain} dB, knee_width={self.knee_width} dB,"
            f" sample_rate={self.sample_rate} Hz"
        )
