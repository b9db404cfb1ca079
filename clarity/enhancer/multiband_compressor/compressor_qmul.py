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

Speed. The signal is processed in blocks of `BLOCK_SAMPLES` (the smoothing state carries over)
so the work arrays stay in cache and no signal-sized temporary is allocated (on this machine,
page faults on fresh signal-sized arrays cost as much as the arithmetic). In each block a
branch-free numba pass collects the samples above the knee (typically ~10 %), NumPy's
vectorised logarithm gives their levels, the knee curve is applied to those only (the others
have a gain reduction of exactly 0), a numba loop runs the attack/release recursion for all rows
together, and NumPy's vectorised exponential gives the gains. The level is computed as
(20 / ln 10) · ln|x|, which differs from 20 log10|x| by a few units in the last place (output
differences ~1e-15 relative).

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
DB_PER_NEPER = 20.0 / math.log(10.0)  # 20 log10(x) == DB_PER_NEPER * ln(x)
BLOCK_SAMPLES = 4096  # samples per block of the compressor (its work array stays in cache)

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
def _loud_samples(signal, quiet, positions, magnitudes):
    """Collect the samples above the knee without branching.

    Args:
        signal: (rows, samples).
        quiet: (rows,) magnitude bound from `quiet_magnitude`.
        positions: (rows * samples,) output, flat index row * samples + t of each loud sample.
        magnitudes: (rows * samples,) output, |x| floored at 1e-12 of each loud sample.

    Returns:
        Number of loud samples (the valid length of `positions` and `magnitudes`).
    """
    n_rows, n_samples = signal.shape
    count = 0
    for row in range(n_rows):
        for t in range(n_samples):
            magnitude = max(abs(signal[row, t]), ZERO_FLOOR)
            positions[count] = row * n_samples + t
            magnitudes[count] = magnitude
            count += magnitude > quiet[row]
    return count


@njit(cache=True)
def _gain_reduction(log_magnitudes, positions, threshold, ratio, knee_width, reduction):
    """Gain reduction x_L = x_G - y_G of the gain computer, dB: 0 below the knee.

    Args:
        log_magnitudes: (loud,) natural logarithm of the loud magnitudes.
        positions: (loud,) their flat indices in `reduction`.
        threshold, ratio, knee_width: (rows,) per-row parameters (dB, -, dB).
        reduction: (rows, samples) C-contiguous output, dB (>= 0).
    """
    n_samples = reduction.shape[1]
    flat = reduction.reshape(-1)
    flat[:] = 0.0
    for k in range(positions.size):
        row = positions[k] // n_samples
        thr = threshold[row]
        knee = knee_width[row]
        level = max(DB_PER_NEPER * log_magnitudes[k], LEVEL_FLOOR_DB)
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
        flat[positions[k]] = level - wanted


@njit(cache=True)
def _smooth_to_log_gain(reduction, alpha_attack, alpha_release, makeup_gain, smoothed):
    """Attack/release smoothing y_L of the gain reduction, then the natural-log gain
    (makeup - y_L) · ln(10) / 20, written in place. The rows are updated together, sample by
    sample, so their independent recursions overlap in the CPU; the attack/release choice is a
    select, not a branch.

    Args:
        reduction: (rows, samples) gain reduction x_L, dB; overwritten by the log gains.
        alpha_attack, alpha_release, makeup_gain: (rows,) per-row parameters (-, -, dB).
        smoothed: (rows,) y_L before the first sample, dB; updated to y_L after the last.
    """
    n_rows, n_samples = reduction.shape
    beta_attack = 1.0 - alpha_attack
    beta_release = 1.0 - alpha_release
    for t in range(n_samples):
        for row in range(n_rows):
            target = reduction[row, t]
            previous = smoothed[row]
            rising = target > previous
            alpha = alpha_attack[row] if rising else alpha_release[row]
            beta = beta_attack[row] if rising else beta_release[row]
            smoothed[row] = alpha * previous + beta * target
            reduction[row, t] = (makeup_gain[row] - smoothed[row]) * LN10_OVER_20


@njit(cache=True)
def _scale_by_signal(gain, signal, out):
    """out <- gain · signal, exact zeros of signal taken as 1e-12 (out may be signal).

    Args:
        gain: (rows, samples) linear gains.
        signal: (rows, samples).
        out: (rows, samples) output.
    """
    n_rows, n_samples = signal.shape
    for row in range(n_rows):
        for t in range(n_samples):
            x = signal[row, t]
            out[row, t] = gain[row, t] * (ZERO_FLOOR if x == 0.0 else x)


def compress_rows(
    signal: np.ndarray,
    threshold: np.ndarray,
    ratio: np.ndarray,
    knee_width: np.ndarray,
    alpha_attack: np.ndarray,
    alpha_release: np.ndarray,
    makeup_gain: np.ndarray,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Compress each row of `signal` with its own parameters.

    Works in blocks of `BLOCK_SAMPLES` so the intermediate gains stay in cache and no
    signal-sized work array is allocated: per block, the gain computer runs over all samples
    (logarithm only above the knee), then the attack/release smoothing sample by sample (its
    state carried to the next block), NumPy's vectorised exponential gives 10^(g/20), and the
    gains scale the block.

    Args:
        signal: (rows, samples) float64.
        threshold, ratio, knee_width, alpha_attack, alpha_release, makeup_gain: (rows,)
            parameters of the compressor applied to each row (dB, -, dB, -, -, dB).
        out: (rows, samples) array for the result, may be `signal` itself; new if None.

    Returns:
        (rows, samples) compressed rows (`out`).
    """
    if out is None:
        out = np.empty_like(signal)
    n_rows, n_samples = signal.shape
    quiet = quiet_magnitude(threshold, knee_width, ratio)
    smoothed = np.zeros(n_rows)
    block_samples = min(BLOCK_SAMPLES, n_samples)
    work = np.empty(n_rows * block_samples)
    positions = np.empty(n_rows * block_samples, dtype=np.int64)
    levels = np.empty(n_rows * block_samples)
    for start in range(0, n_samples, BLOCK_SAMPLES):
        block = signal[:, start : start + BLOCK_SAMPLES]
        gain = work[: block.size].reshape(block.shape)
        n_loud = _loud_samples(block, quiet, positions, levels)
        np.log(levels[:n_loud], out=levels[:n_loud])
        _gain_reduction(levels[:n_loud], positions[:n_loud], threshold, ratio, knee_width, gain)
        _smooth_to_log_gain(gain, alpha_attack, alpha_release, makeup_gain, smoothed)
        np.exp(gain, out=gain)
        _scale_by_signal(gain, block, out[:, start : start + BLOCK_SAMPLES])
    return out


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
        output = compress_rows(
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
