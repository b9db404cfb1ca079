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

Speed. The recursion of y_L cannot be vectorised along time, so the compressors are vectorised
across each other: lane i of `<8 x double>` vectors runs compressor i (a band of the multiband
compressor, or a channel here), and the whole sample step (level, knee, smoothing, gain) is
emitted as vector instructions (`vector_ir`). The level uses a polynomial log10 and the gain a
polynomial exponential, 10^(g/20) = e^(g ln(10)/20); both are within a few units in the last
place of the C library's, so outputs differ from the official ones by ~1e-15 relative.

Reference:
    [1] Giannoulis, D., Massberg, M., & Reiss, J. D. (2012). Digital dynamic range compressor
        design - A tutorial and analysis. J. Audio Eng. Soc., 60(6), 399-408.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
from llvmlite import ir

from clarity.utils import vector_ir
from clarity.utils.sample_loop import Phase, SampleLoop, StepContext
from clarity.utils.signal_processing import check_finite_signal, check_sample_rate
from clarity.utils.vector_ir import INT64, LANES

ZERO_FLOOR = 1e-12  # value given to exact zeros (as the official compressor does)
LEVEL_FLOOR_DB = -120.0  # lowest level seen by the gain computer
LN10_OVER_20 = math.log(10.0) / 20.0  # 10**(g / 20) == exp(g * LN10_OVER_20)
PARAMETERS = ("threshold", "ratio", "knee_width", "alpha_attack", "alpha_release", "makeup_gain")

# (name, low, high, unit) of the ranges the official toolkit recommends; outside them it warns
RECOMMENDED_RANGES = (
    ("threshold", -60.0, 0.0, "dB"),
    ("ratio", 1.0, 20.0, ""),
    ("attack", 0.1, 80.0, "ms"),
    ("release", 0.1, 1000.0, "ms"),
    ("makeup_gain", 0.0, 24.0, "dB"),
)


def parameter_vectors(compressors: Sequence[Compressor]) -> np.ndarray:
    """Loop parameters of compressors in groups of eight, one per lane: vector
    len(PARAMETERS) * group + i holds parameter PARAMETERS[i] of compressors[8 group + lane]
    in each lane (unused lanes: a harmless compressor with ratio 1)."""
    n_groups = max(1, -(-len(compressors) // LANES))
    padded = list(compressors) + [Compressor()] * (n_groups * LANES - len(compressors))
    groups = [padded[first : first + LANES] for first in range(0, len(padded), LANES)]
    return np.array(
        [[[getattr(c, name) for c in group] for name in PARAMETERS] for group in groups]
    ).ravel()


def emit_level(context: StepContext, signal: ir.Value) -> tuple[ir.Value, ir.Value]:
    """Level seen by the gain computer, one sample per lane.

    Returns:
        (signal with exact zeros replaced by 1e-12, its level max(20 log10|x|, -120) in dB).
    """
    builder = context.builder
    constant = vector_ir.constant
    zero = builder.fcmp_ordered("==", signal, constant(0.0))
    signal = builder.select(zero, constant(ZERO_FLOOR), signal)
    magnitude = vector_ir.call_intrinsic(builder, "fabs", signal)
    tiny = builder.fcmp_ordered("<", magnitude, constant(ZERO_FLOOR))  # -240 dB, floored anyway
    magnitude = builder.select(tiny, constant(ZERO_FLOOR), magnitude)
    level = builder.fmul(constant(20.0), vector_ir.log10(builder, magnitude))
    floor = builder.fcmp_ordered("<", level, constant(LEVEL_FLOOR_DB))
    return signal, builder.select(floor, constant(LEVEL_FLOOR_DB), level)


def _parameter(context: StepContext, name: str, group: int) -> ir.Value:
    """Vector of parameter `name` of compressor group `group` (see `parameter_vectors`)."""
    return context.parameter_vector(len(PARAMETERS) * group + PARAMETERS.index(name))


def emit_gain_reduction(context: StepContext, level: ir.Value, group: int = 0) -> ir.Value:
    """Gain reduction x_L = x_G - y_G (dB) of the gain computer at `level` (dB), lane i with
    the threshold, ratio and knee width of compressor i of group `group`."""
    builder = context.builder
    threshold, ratio, knee = (
        _parameter(context, name, group) for name in ("threshold", "ratio", "knee_width")
    )
    constant = vector_ir.constant
    over = builder.fsub(level, threshold)
    wanted = builder.fadd(threshold, builder.fdiv(over, ratio))
    hard = builder.select(builder.fcmp_ordered("<", level, threshold), level, wanted)
    bend = builder.fadd(over, builder.fdiv(knee, constant(2.0)))
    curve = builder.fdiv(
        builder.fmul(
            builder.fsub(builder.fdiv(constant(1.0), ratio), constant(1.0)),
            builder.fmul(bend, bend),
        ),
        builder.fmul(constant(2.0), knee),
    )
    twice_over = builder.fmul(constant(2.0), over)
    in_knee = builder.fcmp_ordered(
        "<=", vector_ir.call_intrinsic(builder, "fabs", twice_over), knee
    )
    soft = builder.select(in_knee, builder.fadd(level, curve), wanted)
    below = builder.fcmp_ordered("<", twice_over, builder.fsub(constant(0.0), knee))
    soft = builder.select(below, level, soft)
    wanted = builder.select(builder.fcmp_ordered("==", knee, constant(0.0)), hard, soft)
    return builder.fsub(level, wanted)


def emit_smoothing(
    context: StepContext,
    target: ir.Value,
    smoothed_slot: ir.Value,
    active: ir.Value | None,
    group: int = 0,
) -> ir.Value:
    """Attack/release smoothing of the gain reduction: update and return y_L (dB) in
    `smoothed_slot`, only in the lanes of the mask `active` (all lanes if None)."""
    builder = context.builder
    alpha_attack = _parameter(context, "alpha_attack", group)
    alpha_release = _parameter(context, "alpha_release", group)
    previous = builder.load(smoothed_slot)
    rising = builder.fcmp_ordered(">", target, previous)
    alpha = builder.select(rising, alpha_attack, alpha_release)
    one = vector_ir.constant(1.0)
    beta = builder.select(rising, builder.fsub(one, alpha_attack), builder.fsub(one, alpha_release))
    smoothed = builder.fadd(builder.fmul(alpha, previous), builder.fmul(beta, target))
    if active is not None:
        smoothed = builder.select(active, smoothed, previous)
    builder.store(smoothed, smoothed_slot)
    return smoothed


def emit_gain(
    context: StepContext, signal: ir.Value, smoothed: ir.Value, group: int = 0
) -> ir.Value:
    """signal · 10^((makeup - y_L) / 20): the compressed samples."""
    builder = context.builder
    makeup = _parameter(context, "makeup_gain", group)
    log_gain = builder.fmul(builder.fsub(makeup, smoothed), vector_ir.constant(LN10_OVER_20))
    return builder.fmul(signal, vector_ir.exp(builder, log_gain))


def compressor_stages(
    load: Callable[[StepContext], list[ir.Value]],
    store: Callable[[StepContext, list[ir.Value]], None],
    smoothed_slot: int,
    n_groups: int = 1,
    lags: Sequence[int] | None = None,
) -> list[list[Phase]]:
    """Stages of a `SampleLoop` compressing, at each step, the vectors that `load` emits (one
    per group of eight compressors) and handing the results to `store`: first the level (with
    whatever `load` does), then the gain computer, the smoothing recursion and the gains (a
    split that balances the two stages of the multiband compressor). Uses scratch vectors
    2 g and 2 g + 1 and the parameter vectors of group g (see `parameter_vectors`).

    Args:
        load: emits the input vectors of a step (lane i of vector g: compressor 8 g + i).
        store: emits what to do with the compressed vectors.
        smoothed_slot: first of the `n_groups` state slots (of the second stage) holding y_L.
        n_groups: number of vectors `load` emits.
        lags: per compressor, the first step with a sample; y_L is held before it.
    """

    def level(context: StepContext) -> None:
        for group, vector in enumerate(load(context)):
            signal, level = emit_level(context, vector)
            context.save(2 * group, signal)
            context.save(2 * group + 1, level)

    def smoothing(context: StepContext) -> None:
        builder = context.builder
        for group in range(n_groups):
            active = None
            group_lags = list(lags[LANES * group : LANES * (group + 1)]) if lags else []
            if context.guarded and any(group_lags):
                now = vector_ir.splat(builder, builder.sitofp(context.t, vector_ir.DOUBLE))
                first = vector_ir.constant(group_lags + [0] * (LANES - len(group_lags)))
                active = builder.fcmp_ordered(">=", now, first)
            target = emit_gain_reduction(context, context.saved(2 * group + 1), group)
            slot = context.slots[smoothed_slot + group]
            smoothed = emit_smoothing(context, target, slot, active, group)
            context.save(2 * group + 1, smoothed)

    def gain(context: StepContext) -> None:
        compressed = [
            emit_gain(context, context.saved(2 * group), context.saved(2 * group + 1), group)
            for group in range(n_groups)
        ]
        store(context, compressed)

    return [[level], [smoothing, gain]]


def _load_rows(context: StepContext) -> list[ir.Value]:
    """One sample of each row of an (8, samples) block, lane i = row i."""
    signal = vector_ir.constant(0.0)
    for row in range(LANES):
        sample = context.signal_sample(INT64(row))
        signal = context.builder.insert_element(signal, sample, vector_ir.INT32(row))
    return [signal]


def _store_rows(context: StepContext, compressed: list[ir.Value]) -> None:
    for row in range(LANES):
        value = vector_ir.lane(context.builder, compressed[0], row)
        context.store(context.out, INT64(row), 0, value)


@lru_cache(maxsize=1)
def rows_loop() -> SampleLoop:
    """Compiled loop compressing the rows of an (8, samples) block, one per lane."""
    stages = compressor_stages(_load_rows, _store_rows, smoothed_slot=0)
    return SampleLoop(stages, delay=0, n_slots=1, n_params=len(PARAMETERS), n_scratch=2)


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
        n_rows, n_samples = rows.shape
        parameters = parameter_vectors([self] * LANES)
        output = np.empty((n_rows, n_samples))
        block = np.zeros((LANES, n_samples))
        compressed = np.empty((LANES, n_samples))
        compress = rows_loop()
        for first in range(0, n_rows, LANES):
            count = min(LANES, n_rows - first)
            block[:count] = rows[first : first + count]
            compress(block, parameters, compressed, None, 0)
            output[first : first + count] = compressed[:count]
        return output.reshape(signal.shape)

    def __str__(self) -> str:
        return (
            f"Compressor: threshold={self.threshold} dB, ratio={self.ratio},"
            f" attack={self.attack} ms, release={self.release} ms,"
            f" makeup_gain={self.makeup_gain} dB, knee_width={self.knee_width} dB,"
            f" sample_rate={self.sample_rate} Hz"
        )
