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


@njit(cache=True)
def smoothed_gain_reduction(signal, threshold, ratio, knee_width, alpha_attack, alpha_release):
    """Smoothed gain reduction y_L in dB for each row of `signal`.

    Args:
        signal: (rows, samples) float64.
        threshold, ratio, knee_width, alpha_attack, alpha_release: (rows,) parameters of the
            compressor applied to each row (dB, -, dB, -, -).

    Returns:
        (rows, samples) gain reduction, dB (>= 0 after the first compressed sample).
    """
    n_rows, n_samples = signal.shape
    reduction = np.empty((n_rows, n_samples))
    for row in range(n_rows):
        thr = threshold[row]
        slope = 1.0 / ratio[row]
        knee = knee_width[row]
        att = alpha_attack[row]
        rel = alpha_release[row]
        # samples at or below this magnitude are below the knee: their gain reduction is 0
        quiet = 10.0 ** ((thr - knee / 2.0) / 20.0) * (1.0 - 1e-9)
        smoothed = 0.0
        for t in range(n_samples):
            magnitude = abs(signal[row, t])
            target = 0.0
            if magnitude > quiet:
                level = max(20.0 * math.log10(max(magnitude, ZERO_FLOOR)), LEVEL_FLOOR_DB)
                over = level - thr
                wanted = thr + over / ratio[row]
                if knee == 0.0:
                    if level < thr:
                        wanted = level
                else:
                    if 2.0 * abs(over) <= knee:
                        wanted = level + ((slope - 1.0) * (over + knee / 2.0) ** 2) / (2.0 * knee)
                    if 2.0 * over < -knee:
                        wanted = level
                target = level - wanted
            alpha = att if target > smoothed else rel
            smoothed = alpha * smoothed + (1.0 - alpha) * target
            reduction[row, t] = smoothed
    return reduction


def apply_gain_reduction(
    signal: np.ndarray, reduction_db: np.ndarray, makeup_gain_db: np.ndarray
) -> np.ndarray:
    """signal · 10^((makeup - reduction) / 20), with exact zeros floored at 1e-12.

    Args:
        signal: (rows, samples).
        reduction_db: (rows, samples) smoothed gain reduction, dB.
        makeup_gain_db: (rows,) make-up gain, dB.
    """
    gain = np.subtract(makeup_gain_db[:, np.newaxis], reduction_db, out=reduction_db)
    np.exp(np.multiply(gain, LN10_OVER_20, out=gain), out=gain)
    return np.where(signal == 0, ZERO_FLOOR, signal) * gain


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
        reduction = smoothed_gain_reduction(
            np.ascontiguousarray(rows),
            np.full(n_rows, self.threshold),
            np.full(n_rows, self.ratio),
            np.full(n_rows, self.knee_width),
            np.full(n_rows, self.alpha_attack),
            np.full(n_rows, self.alpha_release),
        )
        output = apply_gain_reduction(rows, reduction, np.full(n_rows, self.makeup_gain))
        return output.reshape(signal.shape)

    def __str__(self) -> str:
        return (
            f"Compressor: threshold={self.threshold} dB, ratio={self.ratio},"
            f" attack={self.attack} ms, release={self.release} ms,"
            f" makeup_gain={self.makeup_gain} dB, knee_width={self.knee_width} dB,"
            f" sample_rate={self.sample_rate} Hz"
        )
