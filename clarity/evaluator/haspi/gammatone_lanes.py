"""Gammatone filters of two bands for two signals, in the eight lanes of one vector.

Each band is the Cooke (1993) impulse-invariant 4th-order gammatone of Kates's ear model: the
signal is demodulated by the band's centre frequency (a rotation recursion giving cos and
-sin), low-pass filtered by (1 + 4a z^-1 + 4a^2 z^-2) / (1 - a z^-1)^4 in transposed direct
form II (as `scipy.signal.lfilter`), and yields the envelope (magnitude) and the basilar
membrane motion (remodulated real part).

For one band and one signal the real and imaginary parts are two recursions with the same
coefficients; two signals (reference, processed) and two bands make eight, which run in the
lanes of one `<8 x double>` vector (`sample_loop`), lane order
[real, imaginary] x [reference, processed] x [first band, second band]. Every lane does the
operations of the scalar recursion in the same order, with coefficients formed exactly as in
Kates's code (the four-fold pole makes the output sensitive to their last bit), so the outputs
are bit-identical to the scalar filter (tested against Kates's filter run with lfilter).

References:
    Cooke, M. (1993). Modelling Auditory Processing and Organisation. Cambridge University
        Press.
    Kates, J. M. (2013). An auditory model for intelligibility and quality predictions.
        Proc. Meetings Acoust. 19, 050184.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from clarity.utils import vector_ir
from clarity.utils.sample_loop import SampleLoop, StepContext
from clarity.utils.vector_ir import INT64

# parameter vectors, eight lanes each (see `pair_parameters`)
PARAMETERS = ("cos_step", "signed_sin_step", "b1", "b2", "d1", "d2", "d3", "minus_d4", "gain")
SWAP_PAIRS = (1, 0, 3, 2, 5, 4, 7, 6)  # (cos, sin) <-> (sin, cos) in each lane pair
EVEN, ODD = (0, 2, 4, 6), (1, 3, 5, 7)  # real and imaginary lanes
N_SLOTS = 5  # rotation and the four delays of the filter


def filter_coefficients(pole: float) -> tuple[float, float, float, float, float, float, float]:
    """(b1, b2, d1, d2, d3, -d4, gain) of the band filter with pole radius `pole`, formed as in
    Kates's code; d are lfilter's normalised denominator [1, -4a, 6a^2, -4a^3, a^4]."""
    b1, b2 = 4.0 * pole, 4.0 * pole * pole
    a2, a3, a4 = -6.0 * pole * pole, 4.0 * pole * pole * pole, -pole * pole * pole * pole
    gain = 2.0 * (1 - b1 - a2 - a3 - a4) / (1 + b1 + b2)
    d1, d2, d3, d4 = -b1, -a2, -a3, -a4
    return b1, b2, d1, d2, d3, -d4, gain


def pair_parameters(poles: np.ndarray, tpt_center_frequencies: np.ndarray) -> np.ndarray:
    """(len(PARAMETERS) * 8,) parameters of two bands.

    Args:
        poles: (2 bands, 2 signals) pole radii.
        tpt_center_frequencies: (2,) 2 pi f_c / f_s of the bands, radians per sample.
    """
    vectors = np.zeros((len(PARAMETERS), 8))
    for band in range(2):
        angle = float(tpt_center_frequencies[band])
        cos_step, sin_step = math.cos(angle), math.sin(angle)
        vectors[0, 4 * band : 4 * band + 4] = cos_step
        vectors[1, 4 * band : 4 * band + 4] = (sin_step, -sin_step, sin_step, -sin_step)
        for signal in range(2):
            b1, b2, d1, d2, d3, minus_d4, gain = filter_coefficients(float(poles[band, signal]))
            lanes = slice(4 * band + 2 * signal, 4 * band + 2 * signal + 2)
            for index, value in enumerate((b1, b2, d1, d2, d3, minus_d4), start=2):
                vectors[index, lanes] = value
            vectors[8, 2 * band + signal] = gain
    return vectors.ravel()


def _emit_step(context: StepContext, want_motion: bool) -> None:
    """One sample: envelope (and motion) of (band, signal) k = 2 band + signal to row k of
    `out` (and `bands`), both (2, 2, samples)."""
    builder = context.builder
    cos_step, signed_sin_step, b1, b2, d1, d2, d3, minus_d4, gain = (
        context.parameter_vector(i) for i in range(len(PARAMETERS))
    )
    slots = context.slots
    previous = builder.load(slots[0])
    swapped = vector_ir.shuffle(builder, previous, SWAP_PAIRS)
    # cos' = cos c + sin s, sin' = sin c + cos (-s) (= sin c - cos s exactly)
    rotated = builder.fadd(builder.fmul(previous, cos_step), builder.fmul(swapped, signed_sin_step))
    first = builder.icmp_signed("==", context.t, INT64(0))
    rotation = builder.select(first, vector_ir.constant([1.0, 0.0] * 4), rotated)
    builder.store(rotation, slots[0])

    reference = vector_ir.splat(builder, context.signal_sample(INT64(0)))
    processed = vector_ir.splat(builder, context.signal_sample(INT64(1)))
    samples = vector_ir.merge_lanes(builder, reference, processed, {2: 0, 3: 0, 6: 0, 7: 0})
    demodulated = builder.fmul(samples, rotation)
    state = slots[1:N_SLOTS]
    z1, z2, z3, z4 = (builder.load(slot) for slot in state)
    output = builder.fadd(demodulated, z1)
    updates = (
        builder.fsub(builder.fadd(builder.fmul(b1, demodulated), z2), builder.fmul(d1, output)),
        builder.fsub(builder.fadd(builder.fmul(b2, demodulated), z3), builder.fmul(d2, output)),
        builder.fsub(z4, builder.fmul(d3, output)),
        builder.fmul(minus_d4, output),
    )
    for slot, value in zip(state, updates, strict=True):
        builder.store(value, slot)

    gains = vector_ir.shuffle(builder, gain, (0, 1, 2, 3))
    squares = builder.fmul(output, output)
    power = builder.fadd(
        vector_ir.shuffle(builder, squares, EVEN), vector_ir.shuffle(builder, squares, ODD)
    )
    envelope = builder.fmul(gains, vector_ir.call_intrinsic(builder, "sqrt", power))
    motion = None
    if want_motion:
        products = builder.fmul(output, rotation)
        remodulated = builder.fadd(
            vector_ir.shuffle(builder, products, EVEN), vector_ir.shuffle(builder, products, ODD)
        )
        motion = builder.fmul(gains, remodulated)
    for row in range(4):
        context.store(context.out, INT64(row), 0, vector_ir.lane(builder, envelope, row))
        if motion is not None:
            context.store(context.bands, INT64(row), 0, vector_ir.lane(builder, motion, row))


@lru_cache(maxsize=2)
def pair_loop(want_motion: bool) -> SampleLoop:
    """Compiled loop(signals (2, n), params, envelope (2, 2, n), motion (2, 2, n), 0)."""

    def step(context: StepContext) -> None:
        _emit_step(context, want_motion)

    return SampleLoop([[step]], delay=0, n_slots=N_SLOTS, n_params=len(PARAMETERS))


def gammatone_two_bands(
    signals: np.ndarray,
    poles: np.ndarray,
    tpt_center_frequencies: np.ndarray,
    envelope: np.ndarray,
    motion: np.ndarray | None,
) -> None:
    """Filter both signals through two gammatone bands.

    Args:
        signals: (2, samples) C-contiguous float64 (reference, processed).
        poles: (2 bands, 2 signals) pole radii.
        tpt_center_frequencies: (2,) 2 pi f_c / f_s of the bands.
        envelope: (2 bands, 2 signals, samples) C-contiguous float64 output.
        motion: same for the BM motion, or None to skip it.
    """
    parameters = pair_parameters(poles, tpt_center_frequencies)
    pair_loop(motion is not None)(signals, parameters, envelope, motion, 0)
