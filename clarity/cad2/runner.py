"""Drive a task over scene-listener pairs: skip finished pairs, survive failures, report.

A failing pair is logged with its ids and the run goes on; `raise_for_failures` then lists
every failed pair in one error, so the script exits with a non-zero code. With more than one
worker the pairs run in spawned processes; results come back to the calling process, which
alone writes them, so output files stay consistent.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

logger = logging.getLogger(__name__)

Pair = tuple[str, str]


class FailedScenesError(RuntimeError):
    """Some scene-listener pairs failed; the message lists them."""


@dataclass
class RunSummary:
    """What a run did with each pair.

    Attributes:
        stage: "enhance" or "evaluate".
        processed: pairs done in this run.
        skipped: pairs already done by an earlier run.
        failed: pair -> error message.
    """

    stage: str
    processed: list[Pair] = field(default_factory=list)
    skipped: list[Pair] = field(default_factory=list)
    failed: dict[Pair, str] = field(default_factory=dict)


def _pair_name(pair: Pair) -> str:
    return f"scene {pair[0]} listener {pair[1]}"


def run_pairs(
    pairs: Sequence[Pair],
    task: Callable[[Pair], Any],
    *,
    stage: str,
    is_done: Callable[[Pair], bool],
    on_result: Callable[[Pair, Any], None] | None = None,
    num_workers: int = 1,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> RunSummary:
    """Run `task(pair)` on every pair not `is_done`, with a progress bar.

    Args:
        pairs: (scene id, listener id) in processing order.
        task: module-level function (picklable) doing one pair; its return value goes to
            `on_result` in the calling process.
        stage: name for the progress bar and the logs.
        is_done: True for a pair an earlier run finished (skipped).
        on_result: called in the calling process with each pair and its result.
        num_workers: 1 runs in this process; more run in a pool of spawned processes.
        initializer, initargs: prepare each worker (and this process when `num_workers` is 1).
    """
    summary = RunSummary(stage=stage)
    todo = []
    for pair in pairs:
        (summary.skipped if is_done(pair) else todo).append(pair)
    if summary.skipped:
        logger.info("%s: %d pair(s) already done, skipped", stage, len(summary.skipped))

    def record(pair: Pair, result: Any = None, error: BaseException | None = None) -> None:
        if error is None:
            if on_result is not None:
                on_result(pair, result)
            summary.processed.append(pair)
        else:
            logger.error("%s failed for %s: %s", stage, _pair_name(pair), error, exc_info=error)
            summary.failed[pair] = f"{type(error).__name__}: {error}"

    with tqdm(total=len(todo), desc=stage, unit="pair", disable=not todo) as progress:
        if num_workers <= 1 or len(todo) <= 1:
            if todo and initializer is not None:
                initializer(*initargs)
            for pair in todo:
                progress.set_postfix_str(f"{pair[0]} {pair[1]}")
                try:
                    result = task(pair)
                except Exception as error:  # a failing pair must not stop the others
                    record(pair, error=error)
                else:
                    record(pair, result)
                progress.update()
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                max_workers=num_workers,
                mp_context=context,
                initializer=initializer,
                initargs=initargs,
            ) as pool:
                futures = {pool.submit(task, pair): pair for pair in todo}
                for future in as_completed(futures):
                    pair = futures[future]
                    progress.set_postfix_str(f"{pair[0]} {pair[1]}")
                    error = future.exception()
                    record(pair, None if error else future.result(), error)
                    progress.update()
    logger.info(
        "%s: %d done, %d skipped, %d failed",
        stage, len(summary.processed), len(summary.skipped), len(summary.failed),
    )
    return summary


def raise_for_failures(summary: RunSummary) -> None:
    """Raise `FailedScenesError` listing the failed pairs, if any."""
    if not summary.failed:
        return
    lines = "\n".join(
        f"  {_pair_name(pair)}: {message}" for pair, message in summary.failed.items()
    )
    total = len(summary.failed) + len(summary.processed) + len(summary.skipped)
    raise FailedScenesError(
        f"{summary.stage}: {len(summary.failed)} of {total} pair(s) failed:\n{lines}"
    )
