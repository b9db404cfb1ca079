"""How many threads each process of a run uses: the one place that decides.

A run has `workers` processes (1: the calling process does the work). Each gets
`usable_cpus() // workers` threads, at least 1, so that workers x threads never exceeds the CPUs
this process may run on. Those CPUs are its affinity mask (`os.sched_getaffinity`), which a batch
scheduler sets: a SLURM job with `--cpus-per-task=8` sees 8 CPUs whatever the size of the node,
so `cpus_per_task` = `evaluate.num_workers` x threads per worker.

The count is applied to numba's parallel loops (`numba.set_num_threads`; HAAQI's band loops read
it through `numba.get_num_threads()`), to torch when torch is already imported (this module never
imports it), and, for worker processes, to the OpenMP / BLAS pools through their environment
variables, which those libraries read only when they load, so they must be set before a worker
starts (`worker_environment`). A smaller limit the user set in one of those variables stays.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# Read by OpenMP, OpenBLAS, MKL, Apple Accelerate and numexpr when they load.
THREAD_ENVIRONMENT_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, else (macOS, Windows) all CPUs."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no sched_getaffinity on this platform
        return max(1, os.cpu_count() or 1)


def worker_count(requested: int, cpus: int | None = None) -> int:
    """Worker processes a run may start: `requested`, at most one per usable CPU, at least 1."""
    return max(1, min(int(requested), usable_cpus() if cpus is None else cpus))


def threads_per_worker(workers: int, cpus: int | None = None) -> int:
    """Threads each of `workers` processes may use so that together they fit `cpus` (default:
    `usable_cpus()`): `cpus // workers`, at least 1."""
    cpus = usable_cpus() if cpus is None else cpus
    return max(1, cpus // max(1, int(workers)))


def set_thread_count(threads: int) -> int:
    """Use `threads` threads in this process for numba, and for torch if it is imported.

    numba's count is capped by its pool size (`NUMBA_NUM_THREADS`, which defaults to the
    affinity mask), so a smaller limit the user set stays.

    Returns:
        numba's thread count now.
    """
    import numba

    count = max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(count)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(count)
    return count


def _user_limit(name: str) -> int | None:
    """The positive integer an environment variable holds, or None."""
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return None
    return value if value > 0 else None


@contextmanager
def worker_environment(threads: int) -> Iterator[None]:
    """Within the block, processes started get `threads` as their OpenMP, BLAS and numba thread
    counts (environment variables, restored afterwards); a smaller count the user set in one of
    them is kept."""
    names = (*THREAD_ENVIRONMENT_VARIABLES, "NUMBA_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    for name in names:
        limit = _user_limit(name)
        os.environ[name] = str(max(1, threads if limit is None else min(threads, limit)))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
