"""Drive a task over scene-listener pairs: skip finished pairs, survive failures, report.

A failing pair is logged with its ids and the run goes on; `raise_for_failures` then lists
every failed pair in one error, so the script exits with a non-zero code. With N > 1 workers
the calling process is one of them and N - 1 more are spawned processes: the calling process
has already imported and prepared everything, so it scores pairs while the others start.
Results come back to the calling process, which alone writes them, so output files stay
consistent. Workers and their threads share the usable CPUs (`clarity.utils.threads`): at most
one worker per CPU, `CPUs // workers` threads each. Every worker keeps the memory it frees
for reuse (`clarity.utils.memory`).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from clarity.utils.memory import keep_freed_memory
from clarity.utils.threads import (
    set_thread_count,
    threads_per_worker,
    usable_cpus,
    worker_count,
    worker_environment,
)

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


def _start_worker(
    threads: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]
) -> None:
    """First call in a worker process: its thread count and allocator policy, then the task's
    own set-up."""
    set_thread_count(threads)
    keep_freed_memory()
    if initializer is not None:
        initializer(*initargs)


# How often the calling process looks for results while it also scores pairs, s.
_POLL_SECONDS = 0.05

Record = Callable[[Pair, Any, "BaseException | None"], None]


def _run_here(task: Callable[[Pair], Any], pair: Pair) -> tuple[Any, BaseException | None]:
    """`task(pair)` and its result, or the exception it raised."""
    try:
        return task(pair), None
    except Exception as error:  # a failing pair must not stop the others
        return None, error


def _run_with_pool(
    todo: Sequence[Pair],
    task: Callable[[Pair], Any],
    workers: int,
    threads: int,
    initializer: Callable[..., None] | None,
    initargs: tuple[Any, ...],
    record: Record,
) -> None:
    """Run `todo` on this process (in a thread, so this one can hand out pairs) and on
    `workers - 1` spawned processes, each spawned process holding one pair at a time.

    Pairs are taken in order by whoever is free first; `record` is called in this thread."""
    pending = deque(todo)
    finished_here: queue.Queue = queue.Queue()
    if initializer is not None:
        initializer(*initargs)

    def work_here() -> None:
        set_thread_count(threads)  # numba's count is per thread
        while True:
            try:
                pair = pending.popleft()
            except IndexError:
                return
            finished_here.put((pair, *_run_here(task, pair)))

    context = multiprocessing.get_context("spawn")
    with worker_environment(threads), ProcessPoolExecutor(
        max_workers=workers - 1,
        mp_context=context,
        initializer=_start_worker,
        initargs=(threads, initializer, initargs),
    ) as pool:
        running: dict[Future, Pair] = {}
        pool_usable = True

        def hand_out() -> None:
            nonlocal pool_usable
            while pool_usable and pending and len(running) < workers - 1:
                try:
                    pair = pending.popleft()
                except IndexError:  # the local worker took the last one
                    return
                try:
                    running[pool.submit(task, pair)] = pair
                except BrokenProcessPool:  # a worker died: this process does the rest
                    pending.appendleft(pair)
                    pool_usable = False

        hand_out()
        local = threading.Thread(target=work_here, name=f"{__name__}.local-worker", daemon=True)
        local.start()
        while local.is_alive() or running or not finished_here.empty():
            if running:
                done, _ = wait(list(running), timeout=_POLL_SECONDS, return_when=FIRST_COMPLETED)
                for future in done:
                    pair = running.pop(future)
                    error = future.exception()
                    record(pair, None if error else future.result(), error)
            else:  # only this process is working: wait for it
                with contextlib.suppress(queue.Empty):
                    record(*finished_here.get(timeout=_POLL_SECONDS))
            while not finished_here.empty():
                record(*finished_here.get())
            hand_out()
        local.join()
        while pending:  # given back by a broken pool after the local worker stopped
            pair = pending.popleft()
            record(pair, *_run_here(task, pair))


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
        num_workers: 1 runs in this process; more run in this process and `num_workers - 1`
            spawned processes, at most one worker per usable CPU and no more than there are
            pairs to do.
        initializer, initargs: prepare each worker (this process included).

    Each worker uses `threads_per_worker` threads for numba, torch and BLAS.
    """
    summary = RunSummary(stage=stage)
    todo = []
    for pair in pairs:
        (summary.skipped if is_done(pair) else todo).append(pair)
    if summary.skipped:
        logger.info("%s: %d pair(s) already done, skipped", stage, len(summary.skipped))

    cpus = usable_cpus()
    if num_workers > cpus:
        logger.warning(
            "%s: %d workers asked for, but this process may use %d CPU(s); starting %d",
            stage, num_workers, cpus, cpus,
        )
    workers = worker_count(min(num_workers, max(1, len(todo))), cpus)
    threads = threads_per_worker(workers, cpus)
    if todo:
        logger.info(
            "%s: %d worker(s) (this process and %d spawned) x %d thread(s) on %d usable CPU(s)",
            stage, workers, workers - 1, threads, cpus,
        )

    if todo:
        keep_freed_memory()  # the pairs' large arrays reuse memory instead of faulting it in
    with tqdm(total=len(todo), desc=stage, unit="pair", disable=not todo) as progress:

        def record(pair: Pair, result: Any, error: BaseException | None) -> None:
            progress.set_postfix_str(f"{pair[0]} {pair[1]}")
            if error is None:
                if on_result is not None:
                    on_result(pair, result)
                summary.processed.append(pair)
            else:
                logger.error(
                    "%s failed for %s: %s", stage, _pair_name(pair), error, exc_info=error
                )
                summary.failed[pair] = f"{type(error).__name__}: {error}"
            progress.update()

        if workers == 1:
            if todo:
                if initializer is not None:
                    initializer(*initargs)
                set_thread_count(threads)
            for pair in todo:
                record(pair, *_run_here(task, pair))
        else:
            _run_with_pool(todo, task, workers, threads, initializer, initargs, record)
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
