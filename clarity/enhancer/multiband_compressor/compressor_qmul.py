"""Feed-forward dynamic range compressor (pyClarity 0.9.0 `Compressor`, same numbers).

Design after Giannoulis, Massberg & Reiss [1]: the gain computer works on the instantaneous level
of each sample, x_G = 20 log10|x| dB (floored at -120 dB), with a hard or quadratic soft knee:

    y_G = x_G                                                   below the knee
    y_G = x_G + (1/R - 1) (x_G - T + W/2)^2 / (2W)              inside the knee, |x_G - T| <= W/2
    y_G = T + (x_G - T) / R                                     above the knee

The gain reduction x_L = x_G - y_G is smoothed by a branching one-pole filter in the log domain,
y_L[n] = a y_L[n-1] + (1 - a) x_L[n], with a = exp(-1 / (tau fs)) set to the attack coefficient
while x_L rises above y_L and to the release coefficient otherwise. The output is
x · 10^((makeup - y_L) / 20). As in the official toolkit, exact zeros are replaced by 1e-12 before
the level and the gain are applied.

The smoothing recursion is compiled with numba and skips the logarithm for samples that lie
below the knee (their gain reduction is exactly 0); gains are applied with vectorised NumPy.

Reference:
    [1] Giannoulis, D., Massberg, M., & Reiss, J. D. (2012). Digital dynamic range compressor
        design - A tutorial and analysis. J. Audio Eng. Soc., 60(6), 399-408.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from numba import njit

from clarity.utils.signal_processing import check_finite_signal, check_sample_rate

ZERO_FLOOR = 1e-12  # value given to exact zeros (as the official compressor does)
LEVEL_FLOOR_DB = -120.0  # lowest level seen by the gain computer
LN10_OVER_20 = math.log(10.0) / 20.0  # 10**(g / 20) == exp(g * LN10_OVER_20)

# (name, low, high, unit) of the ranges the official toolkit recommends; outside them it warns
RECOMMENDED_RANGES = (
    ("threshold", -60.0, 0.0, "dB"),
    ("ratio", 1.0, 20.0, ""),
    ("attack", 0.1, 80.0, "ms"),
    ("release", 0.1, 1000.0, "ms"),
    ("makeup_gain", 0.0, 24.0, "dB"),
)


def quiet_magnitude(threshold: np.ndarray, knee_width: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """(rows,) magnitude at or below which a sample lies below the knee (gain reduction 0).

    The bound sits a relative 1e-9 under the knee so that rounding in the logarithm never moves
    a sample the gain computer would compress below it. Rows with ratio 1 never compress (their
    reduction is 0 up to rounding, < 1e-15 dB): their bound is infinite.
    """
    bound = 10.0 ** ((threshold - knee_width / 2.0) / 20.0) * (1.0 - 1e-9)
    return np.where(ratio == 1.0, np.inf, bound)


@njit(cache=True)
def _loud_magnitudes(signal, quiet):
    """|x| (floored at 1e-12) of the samples above `quiet`, in time then row order.

    Args:
        signal: (rows, samples).
        quiet: (rows,) magnitude bound from `quiet_magnitude`.

    Returns:
        (loud samples,) magnitudes.
    """
    n_rows, n_samples = signal.shape
    loud = np.empty(n_rows * n_samples)
    count = 0
    for t in range(n_samples):
        for row in range(n_rows):
            magnitude = max(abs(signal[row, t]), ZERO_FLOOR)
            loud[count] = magnitude
            count += magnitude > quiet[row]
    return loud[:count]


@njit(cache=True)
def _log_gains(
    signal,
    loud_levels,
    quiet,
    threshold,
    ratio,
    knee_width,
    alpha_attack,
    alpha_release,
    makeup_gain,
):
    """Natural-log gain (makeup - y_L) · ln(10) / 20 of every sample; y_L is the smoothed gain
    reduction, the only recursive step. The rows are updated together, sample by sample, so
    their independent recursions overlap in the CPU.

    Args:
        signal: (rows, samples).
        loud_levels: 20 log10 of `_loud_magnitudes(signal, quiet)`, dB.
        quiet, threshold, ratio, knee_width, alpha_attack, alpha_release, makeup_gain: (rows,)
            per-row parameters (-, dB, -, dB, -, -, dB).

    Returns:
        (rows, samples) log gains.
    """
    n_rows, n_samples = signal.shape
    log_gain = np.empty((n_rows, n_samples))
    smoothed = np.zeros(n_rows)
    k = 0
    for t in range(n_samples):
        for row in range(n_rows):
            target = 0.0
            if max(abs(signal[row, t]), ZERO_FLOOR) > quiet[row]:
                level = max(loud_levels[k], LEVEL_FLOOR_DB)
                k += 1
                thr = threshold[row]
                knee = knee_width[row]
                over = level - thr
                wanted = thr + over / ratio[row]
                if knee == 0.0:
                    if level < thr:
                        wanted = level
                else:
                    if 2.0 * abs(over) <= knee:
                        wanted = level + ((1.0 / ratio[row] - 1.0) * (over + knee / 2.0) ** 2) / (
                            2.0 * knee
                        )
                    if 2.0 * over < -knee:
                        wanted = level
                target = level - wanted
            alpha = alpha_attack[row] if target > smoothed[row] else alpha_release[row]
            smoothed[row] = alpha * smoothed[row] + (1.0 - alpha) * target
            log_gain[row, t] = (makeup_gain[row] - smoothed[row]) * LN10_OVER_20
    return log_gain


@njit(cache=True)
def _apply_gains(signal, gain):
    """gain <- signal · gain (exact zeros of signal floored at 1e-12); returns the sum over rows.

    Args:
        signal: (rows, samples).
        gain: (rows, samples) linear gains; overwritten by the compressed rows.

    Returns:
        (samples,) sum of the compressed rows.
    """
    n_rows, n_samples = signal.shape
    total = np.zeros(n_samples)
    for row in range(n_rows):
        for t in range(n_samples):
            x = signal[row, t]
            gain[row, t] *= ZERO_FLOOR if x == 0.0 else x
            total[t] += gain[row, t]
    return total


def compress_rows(
    signal: np.ndarray,
    threshold: np.ndarray,
    ratio: np.ndarray,
    knee_width: np.ndarray,
    alpha_attack: np.ndarray,
    alpha_release: np.ndarray,
    makeup_gain: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Compress each row of `signal` with its own parameters.

    The levels 20 log10|x| of the samples above the knee are computed with NumPy's vectorised
    logarithm and the gains 10^(g/20) with its vectorised exponential; only the attack/release
    smoothing runs sample by sample (numba).

    Args:
        signal: (rows, samples) float64, C-contiguous.
        threshold, ratio, knee_width, alpha_attack, alpha_release, makeup_gain: (rows,)
            parameters of the compressor applied to each row (dB, -, dB, -, -, dB).

    Returns:
        (rows, samples) compressed rows and (samples,) their sum.
    """
    quiet = quiet_magnitude(threshold, knee_width, ratio)
    levels = _loud_magnitudes(signal, quiet)
    np.log10(levels, out=levels)
    levels *= 20.0
    gain = _log_gains(
        signal,
        levels,
        quiet,
        threshold,
        ratio,
        knee_width,
        alpha_attack,
        alpha_release,
        makeup_gain,
    )
    for row in range(signal.shape[0]):
        if np.isinf(quiet[row]):  # constant make-up gain
            gain[row] = np.exp(gain[row, :1])
        else:
            np.exp(gain[row], out=gain[row])
    total = _apply_gains(signal, gain)
    return gain, total


def smoothing_coefficient(time_ms: float, sample_rate: float) -> float:
    """One-pole coefficient exp(-1 / (tau · fs)) for a time constant `time_ms` in ms."""
    return math.exp(-1.0 / (0.001 * sample_rate * time_ms))


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
            ratio: compression ratio (> 0; 1 means no compression).
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
            input_signal: (channels, samples) or (samples,); not modified.

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
        n_rows = rows.shape[0]
        output, _ = compress_rows(
            np.ascontiguousarray(rows),
            *(
                np.full(n_rows, value)
                for value in (
                    self.threshold,
                    self.ratio,
                    self.knee_width,
                    self.alpha_attack,
                    self.alpha_release,
                    self.makeup_gain,
                )
            ),
        )
        return output.reshape(signal.shape)

    def __str__(self) -> str:
        return (
            f"Compressor: threshold={self.threshold} dB, ratio={self.ratio},"
            f" attack={self.attack} ms, release={self.release} ms,"
            f" makeup_gain={self.makeup_gain} dB, knee_width={self.knee_width} dB,"
            f" sample_rate={self.sample_rate} Hz"
        )
