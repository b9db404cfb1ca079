"""Eight-lane float64 vector arithmetic emitted as LLVM IR, for numba intrinsics.

Numba vectorises loops over arrays, but not recursions such as those of the crossover, the
compressors or the gammatone filters: there the independent work at each sample lies across
filters and bands, not along time. Their kernels (see `sample_loop`) therefore put those
independent quantities into the lanes of one `<8 x double>` vector and emit the vector
instructions themselves (numba's `@intrinsic`), which the CPU executes with AVX-512 (or two
AVX2 halves).

Every lane operation is an IEEE-754 operation on doubles, rounded exactly as the scalar one:
no fused multiply-add is formed (numba does not allow contraction) and the order of operations
is the one written, so the filters reproduce scipy's to the bit. The exponential and logarithm
are polynomial (Cody & Waite range reduction [1], series from [2]), evaluated with
multiply-adds that are fused where the CPU can; they are within a few units in the last place
of the C library's.

References:
    [1] Cody, W. J., & Waite, W. (1980). Software Manual for the Elementary Functions.
        Prentice-Hall.
    [2] Muller, J.-M. (2016). Elementary Functions: Algorithms and Implementation (3rd ed.).
        Birkhäuser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from llvmlite import ir

LANES = 8
DOUBLE = ir.DoubleType()
INT64 = ir.IntType(64)
INT32 = ir.IntType(32)
VECTOR = ir.VectorType(DOUBLE, LANES)
INT_VECTOR = ir.VectorType(INT64, LANES)
MASK_TYPE = ir.VectorType(INT32, LANES)

LN2_HIGH = 0.693147180369123816490  # ln 2 rounded to 32 significant bits: k * LN2_HIGH is exact
LN2_LOW = 1.90821492927058770002e-10  # ln 2 - LN2_HIGH
LOG10_E = 1.0 / math.log(10.0)
EXP_LOW, EXP_HIGH = -708.0, 709.0  # e^x stays a normal double
EXP_TERMS = 14  # Taylor terms of exp(r), |r| <= ln(2) / 2: truncation < 1e-17 relative
LOG_TERMS = 10  # terms of the atanh series, |s| <= 0.1716: truncation < 3e-17 relative


def constant(values: Sequence[float] | float) -> ir.Constant:
    """A constant vector: one value per lane, or one value for all lanes."""
    if isinstance(values, int | float):
        values = [values] * LANES
    if len(values) != LANES:
        raise ValueError(f"a vector constant needs {LANES} values, got {len(values)}")
    return ir.Constant(VECTOR, [ir.Constant(DOUBLE, float(v)) for v in values])


def integer_constant(value: int) -> ir.Constant:
    """A constant vector of int64 lanes, all `value`."""
    return ir.Constant(INT_VECTOR, [ir.Constant(INT64, value)] * LANES)


def splat(builder: ir.IRBuilder, value: ir.Value) -> ir.Value:
    """A vector with `value` (a double) in every lane."""
    single = builder.insert_element(ir.Constant(VECTOR, ir.Undefined), value, INT32(0))
    return builder.shuffle_vector(single, single, ir.Constant(MASK_TYPE, [0] * LANES))


def merge_lanes(
    builder: ir.IRBuilder, into: ir.Value, source: ir.Value, lanes: dict[int, int]
) -> ir.Value:
    """`into` with lane i replaced by lane lanes[i] of `source` for each key i (one shuffle)."""
    mask = [LANES + lanes[i] if i in lanes else i for i in range(LANES)]
    return builder.shuffle_vector(into, source, ir.Constant(MASK_TYPE, mask))


def shuffle(builder: ir.IRBuilder, vector: ir.Value, lanes: Sequence[int]) -> ir.Value:
    """A vector of len(lanes) doubles: lane i is lane lanes[i] of `vector`."""
    mask = ir.Constant(ir.VectorType(INT32, len(lanes)), list(lanes))
    return builder.shuffle_vector(vector, ir.Constant(vector.type, ir.Undefined), mask)


def lane(builder: ir.IRBuilder, vector: ir.Value, index: int) -> ir.Value:
    """Lane `index` of `vector`, a double."""
    return builder.extract_element(vector, INT32(index))


def call_intrinsic(builder: ir.IRBuilder, name: str, *operands: ir.Value) -> ir.Value:
    """Call the LLVM intrinsic `llvm.<name>.v<n>f64` on vectors of n doubles."""
    vector_type = operands[0].type
    full_name = f"llvm.{name}.v{vector_type.count}f64"
    try:
        function = builder.module.get_global(full_name)
    except KeyError:
        signature = ir.FunctionType(vector_type, [vector_type] * len(operands))
        function = ir.Function(builder.module, signature, name=full_name)
    return builder.call(function, list(operands))


def horner(builder: ir.IRBuilder, x: ir.Value, coefficients: Sequence[float]) -> ir.Value:
    """sum_i coefficients[i] x^i by Horner's rule (coefficients from degree 0), each step a
    multiply-add that the CPU may fuse (`llvm.fmuladd`: one rounding instead of two where it
    has FMA instructions)."""
    result = constant(coefficients[-1])
    for coefficient in reversed(coefficients[:-1]):
        result = call_intrinsic(builder, "fmuladd", result, x, constant(coefficient))
    return result


def exp(builder: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """e^x: x = k ln 2 + r with |r| <= ln(2) / 2, e^x = 2^k e^r. Saturates outside
    [EXP_LOW, EXP_HIGH] (normal doubles), where the true value would under- or overflow."""
    low = builder.fcmp_ordered("<", x, constant(EXP_LOW))
    x = builder.select(low, constant(EXP_LOW), x)
    high = builder.fcmp_ordered(">", x, constant(EXP_HIGH))
    x = builder.select(high, constant(EXP_HIGH), x)
    k = call_intrinsic(builder, "roundeven", builder.fmul(x, constant(1.0 / math.log(2.0))))
    r = builder.fsub(
        builder.fsub(x, builder.fmul(k, constant(LN2_HIGH))), builder.fmul(k, constant(LN2_LOW))
    )
    series = horner(builder, r, [1.0 / math.factorial(i) for i in range(EXP_TERMS)])
    exponent = builder.add(builder.fptosi(k, INT_VECTOR), integer_constant(1023))
    power = builder.bitcast(builder.shl(exponent, integer_constant(52)), VECTOR)
    return builder.fmul(series, power)


def log10(builder: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """log10(x) for normal x > 0: x = 2^e f with f in [sqrt(1/2), sqrt(2)),
    ln f = 2 atanh(s) with s = (f - 1) / (f + 1)."""
    bits = builder.bitcast(x, INT_VECTOR)
    exponent = builder.sub(builder.lshr(bits, integer_constant(52)), integer_constant(1023))
    mantissa_bits = builder.or_(
        builder.and_(bits, integer_constant((1 << 52) - 1)), integer_constant(1023 << 52)
    )
    fraction = builder.bitcast(mantissa_bits, VECTOR)  # in [1, 2)
    high = builder.fcmp_ordered(">", fraction, constant(math.sqrt(2.0)))
    fraction = builder.select(high, builder.fmul(fraction, constant(0.5)), fraction)
    exponent = builder.add(exponent, builder.zext(high, INT_VECTOR))
    e = builder.sitofp(exponent, VECTOR)
    s = builder.fdiv(builder.fsub(fraction, constant(1.0)), builder.fadd(fraction, constant(1.0)))
    s2 = builder.fmul(s, s)
    series = horner(builder, s2, [2.0 / (2 * i + 1) for i in range(LOG_TERMS)])
    log_fraction = builder.fmul(s, series)
    natural = builder.fadd(
        builder.fmul(e, constant(LN2_HIGH)),
        builder.fadd(log_fraction, builder.fmul(e, constant(LN2_LOW))),
    )
    return builder.fmul(natural, constant(LOG10_E))
