"""clarity.utils.fast_math: exp and log10 against NumPy's (the C library's), and vectorised."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from clarity.utils import fast_math


@numba.njit(error_model="numpy")
def elementwise(function, values: np.ndarray) -> np.ndarray:
    """`function` of each element, in a loop as the library's kernels write it."""
    out = np.empty_like(values)
    for i in range(values.size):
        out[i] = function(values[i])
    return out


def log10_of(values: np.ndarray) -> np.ndarray:
    return elementwise(fast_math.log10, values)


def exp_of(values: np.ndarray) -> np.ndarray:
    return elementwise(fast_math.exp, values)


def ulps(ours: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """|ours - reference| in units of the last place of the reference."""
    return np.abs(ours - reference) / np.spacing(np.abs(reference))


def test_log10_is_within_two_ulp_from_subnormal_to_huge() -> None:
    rng = np.random.default_rng(1)
    values = np.concatenate(
        [
            10.0 ** rng.uniform(-300, 300, 200_000),
            rng.uniform(0.5, 2.0, 200_000),  # near log10 = 0, where relative errors grow
            np.array([5e-324, 1e-310, 2.2250738585072014e-308, 1e-30, 1e-12, 1.0, 2.0, 1e308]),
        ]
    )
    reference = np.log10(values)
    nonzero = reference != 0
    assert ulps(log10_of(values)[nonzero], reference[nonzero]).max() <= 2
    assert log10_of(np.array([1.0]))[0] == 0.0


def test_exp_is_within_one_ulp_and_saturates() -> None:
    rng = np.random.default_rng(2)
    values = np.concatenate(
        [rng.uniform(-700, 700, 200_000), rng.uniform(-1, 1, 200_000), np.array([0.0])]
    )
    assert ulps(exp_of(values), np.exp(values)).max() <= 1
    subnormal = rng.uniform(-745, -708.5, 10_000)
    assert np.abs(exp_of(subnormal) - np.exp(subnormal)).max() <= 5e-324
    assert exp_of(np.array([0.0]))[0] == 1.0
    with np.errstate(over="ignore"):
        assert list(exp_of(np.array([710.0, 1e5, -746.0, -1e5]))) == [np.inf, np.inf, 0.0, 0.0]


@pytest.mark.parametrize("function", [fast_math.log10, fast_math.exp])
def test_a_loop_over_an_array_compiles_to_vector_instructions(function) -> None:
    """The point of the module: the loops that call it are vectorised (packed double
    arithmetic in the machine code) on x86-64 and ARM alike."""
    elementwise(function, np.ones(16))
    signature = next(s for s in elementwise.signatures if s[0].dispatcher is function)
    assembly = elementwise.inspect_asm(signature)
    packed = ("mulpd", "addpd", "fmul\tv", "fadd\tv")  # x86-64 SSE/AVX, AArch64 NEON
    assert any(instruction in assembly for instruction in packed)
    # no integer <-> double conversion one lane at a time (AVX2 has no packed int64 one)
    scalar_conversions = ("cvtsi2sd", "cvttsd2si", "cvtsd2si")
    assert not any(instruction in assembly for instruction in scalar_conversions)
