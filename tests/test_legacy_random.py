"""The fast legacy Gaussian sampler gives NumPy's legacy draws and generator state exactly."""

import numpy as np
import pytest

from clarity.utils.legacy_random import standard_normal


def _assert_same_state(expected: tuple, got: tuple) -> None:
    assert expected[0] == got[0]
    np.testing.assert_array_equal(expected[1], got[1])
    assert expected[2:] == got[2:]


@pytest.mark.parametrize("seed", [0, 1, 7, 12345, 2**31 - 1])
@pytest.mark.parametrize("size", [1, 2, 3, 7, (5, 3), 1001, (4, 2049), 300_001])
@pytest.mark.parametrize("cached_before", [False, True])
def test_values_and_state_equal_numpy_legacy(seed, size, cached_before):
    np.random.seed(seed)
    if cached_before:
        np.random.standard_normal()  # leaves a cached Gaussian in the state
    start = np.random.get_state()
    expected = np.random.standard_normal(size)
    expected_state = np.random.get_state()

    np.random.set_state(start)
    got = standard_normal(size)

    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    _assert_same_state(expected_state, np.random.get_state())


@pytest.mark.parametrize("position", [0, 1, 311, 622, 623, 624])
def test_uniforms_straddling_a_state_block(position):
    """A position inside the block (odd after 32-bit draws) puts doubles across a twist."""
    np.random.seed(21)
    bit_generator, key, _, _, _ = np.random.get_state()
    start = (bit_generator, key, position, 0, 0.0)
    np.random.set_state(start)
    expected = np.random.standard_normal(1500)
    expected_state = np.random.get_state()
    np.random.set_state(start)
    np.testing.assert_array_equal(standard_normal(1500), expected)
    _assert_same_state(expected_state, np.random.get_state())


def test_successive_draws_continue_the_legacy_sequence():
    sizes = [3, (2, 5), 1, 40_000, 9]
    np.random.seed(3)
    expected = [np.random.standard_normal(size) for size in sizes]
    expected_state = np.random.get_state()
    np.random.seed(3)
    for size, want in zip(sizes, expected, strict=True):
        np.testing.assert_array_equal(standard_normal(size), want)
    _assert_same_state(expected_state, np.random.get_state())


def test_own_generator_is_used_and_global_one_untouched():
    np.random.seed(5)
    global_state = np.random.get_state()
    expected = np.random.RandomState(11).standard_normal((3, 333))
    got = standard_normal((3, 333), random_state=np.random.RandomState(11))
    np.testing.assert_array_equal(got, expected)
    _assert_same_state(global_state, np.random.get_state())


@pytest.mark.parametrize("size", [0, (0, 4)])
def test_empty_draw_leaves_the_state_alone(size):
    np.random.seed(2)
    np.random.standard_normal()
    state = np.random.get_state()
    assert standard_normal(size).shape == np.random.standard_normal(size).shape
    _assert_same_state(state, np.random.get_state())


def test_fills_a_given_array():
    np.random.seed(8)
    expected = np.random.standard_normal((3, 1000))
    np.random.seed(8)
    out = np.full((3, 1000), np.nan)
    assert standard_normal((3, 1000), out=out) is out
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize(
    "out", [np.empty((3, 999)), np.empty((3, 1000), dtype=np.float32), np.empty((1000, 3)).T]
)
def test_rejects_an_unsuitable_out_array(out):
    with pytest.raises(ValueError, match="out"):
        standard_normal((3, 1000), out=out)
