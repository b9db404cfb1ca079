"""Split the scene-listener pairs into batches, as the challenge baseline does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

Pair = TypeVar("Pair")


def select_batch(pairs: Sequence[Pair], batch: int, batch_size: int) -> list[Pair]:
    """Batch `batch` of `batch_size` batches: every `batch_size`-th pair from index `batch`.

    `batch_size` is the number of batches (the challenge's naming), `batch` is 0-based.
    """
    if batch_size < 1 or not 0 <= batch < batch_size:
        raise ValueError(
            f"evaluate.batch must be in [0, evaluate.batch_size), got batch={batch}, "
            f"batch_size={batch_size}"
        )
    return list(pairs[batch::batch_size])


def scores_file_name(batch: int, batch_size: int) -> str:
    """`scores.csv` for a single batch, else `scores_<batch + 1>-<batch_size>.csv`."""
    return "scores.csv" if batch_size == 1 else f"scores_{batch + 1}-{batch_size}.csv"
