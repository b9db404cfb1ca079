"""Fast, bit-exact replacement for NumPy's legacy ``RandomState.standard_normal``.

Why this exists: the official HAAQI/HASQI code adds threshold noise drawn from NumPy's
legacy global generator (``np.random.standard_normal``), so reproducing the official
scores requires exactly the same draws, in the same order, leaving the generator in the
same state. The legacy sampler is a scalar loop (about 25 ns per value); this module
computes the same numbers vectorised.

The legacy sampler is the polar method of Marsaglia & Bray (1964), "A convenient method
for generating normal variables", SIAM Review 6(3):260-264: take two uniforms ``u1, u2``
from the MT19937 stream (the doubles of ``random_sample``), set ``x1 = 2 u1 - 1``,
``x2 = 2 u2 - 1``, ``r2 = x1^2 + x2^2``; reject the pair when ``r2 >= 1`` or
``r2 == 0``; otherwise ``f = sqrt(-2 log(r2) / r2)`` gives ``f x2`` now and ``f x1``
on the next call (kept in the state as the cached Gaussian, ``has_gauss``).

Here the uniforms are drawn in blocks with ``random_sample`` and transformed in a
compiled loop; the generator is then set to exactly the state the scalar loop would
leave: the stream advanced by the uniforms it would have consumed, and the cached
Gaussian set when an odd number of values was taken from the last pair.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_BLOCK_PAIRS = 1 << 16  # uniform pairs drawn at once (1 MiB of doubles, cache friendly)


@njit(cache=True)
def _polar_fill(uniforms, out, filled):
    """Polar transform of ``uniforms (2 * pairs,)`` into ``out[filled:]`` until full.

    Uses ``math.log``/``math.sqrt`` (the C library's, as the legacy sampler does; NumPy's
    vectorised ``np.log`` can differ in the last bit).

    Returns:
        ``(filled, pairs_used, cached, has_cached)``: the new fill count, the uniform
        pairs consumed, and the second value of the last pair when it did not fit.
    """
    total = out.shape[0]
    pairs = uniforms.shape[0] // 2
    for pair in range(pairs):
        if filled >= total:
            return filled, pair, 0.0, False
        x1 = 2.0 * uniforms[2 * pair] - 1.0
        x2 = 2.0 * uniforms[2 * pair + 1] - 1.0
        r2 = x1 * x1 + x2 * x2
        if r2 >= 1.0 or r2 == 0.0:
            continue
        f = math.sqrt(-2.0 * math.log(r2) / r2)
        out[filled] = f * x2
        filled += 1
        if filled == total:
            return filled, pair + 1, f * x1, True
        out[filled] = f * x1
        filled += 1
    return filled, pairs, 0.0, False


def standard_normal(
    size: int | tuple[int, ...],
    random_state: np.random.RandomState | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Same values and final state as ``random_state.standard_normal(size)``.

    Args:
        size: output shape.
        random_state: a legacy generator; NumPy's global one (the generator behind
            ``np.random.seed`` and ``np.random.standard_normal``) when None.
        out: optional C-contiguous float64 array of shape ``size`` to fill (saves
            allocating a large array per draw).

    Returns:
        float64 array of shape ``size`` (``out`` when given).

    Raises:
        ValueError: ``out`` is not a C-contiguous float64 array of shape ``size``.
    """
    state = np.random.mtrand._rand if random_state is None else random_state
    if out is None:
        out = np.empty(size)
    elif (
        out.shape != ((size,) if isinstance(size, int | np.integer) else tuple(size))
        or out.dtype != np.float64
        or not out.flags.c_contiguous
    ):
        raise ValueError(f"out: expected a C-contiguous float64 array of shape {size}")
    flat = out.reshape(-1)
    total = flat.size
    if total == 0:
        return out
    bit_generator, _, _, has_gauss, gauss = state.get_state()
    filled = 0
    if has_gauss:
        flat[0] = gauss
        filled = 1
    cached, has_cached = 0.0, False
    while filled < total:
        missing_pairs = (total - filled + 1) // 2
        # enough pairs on average (acceptance pi/4), capped to keep the block in cache
        pairs = min(_BLOCK_PAIRS, int(missing_pairs / (np.pi / 4)) + 16)
        before = state.get_state()
        uniforms = state.random_sample(2 * pairs)
        filled, used, cached, has_cached = _polar_fill(uniforms, flat, filled)
        if used < pairs:  # rewind: consume only what the scalar loop would have used
            state.set_state(before)
            state.random_sample(2 * used)
    _, key, pos, _, _ = state.get_state()
    state.set_state((bit_generator, key, pos, int(has_cached), cached if has_cached else 0.0))
    return out
