"""Workers x threads fit the CPUs a process may use, in this process and in worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import types

import numba
import pytest

from clarity.cad2 import runner
from clarity.utils import threads


def report_threads(pair: tuple[str, str]) -> dict:
    """Task run by the workers: what the process it runs in sees."""
    return {
        "pid": os.getpid(),
        "numba": numba.get_num_threads(),
        "omp": os.environ.get("OMP_NUM_THREADS"),
        "openblas": os.environ.get("OPENBLAS_NUM_THREADS"),
    }


def report_threads_for_a_while(pair: tuple[str, str]) -> dict:
    """`report_threads`, holding its worker 2 s: long enough for every spawned worker to start
    before the first finishes, so no fast worker takes a second pair queued for another."""
    time.sleep(2.0)
    return report_threads(pair)


def run_collecting(pairs, task, num_workers: int) -> tuple[dict, runner.RunSummary]:
    """Run `task` on every pair; its results by pair and the run summary."""
    results = {}
    summary = runner.run_pairs(
        pairs,
        task,
        stage="threads",
        is_done=lambda _pair: False,
        on_result=results.__setitem__,
        num_workers=num_workers,
    )
    return results, summary


def run_reporting(pairs: list[tuple[str, str]], num_workers: int) -> dict:
    results, summary = run_collecting(pairs, report_threads, num_workers)
    assert not summary.failed
    return results


PAIRS = [(f"S{n}", "L0001") for n in range(4)]


def clear_thread_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*threads.THREAD_ENVIRONMENT_VARIABLES, "NUMBA_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)


def pretend_cpus(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(count)), raising=False)


@pytest.mark.parametrize("cpus", [1, 2, 3, 4, 7, 16, 64])
@pytest.mark.parametrize("requested", [1, 2, 3, 4, 5, 8, 100])
def test_workers_times_threads_never_exceed_the_cpus(cpus, requested):
    workers = threads.worker_count(requested, cpus)
    per_worker = threads.threads_per_worker(workers, cpus)
    assert 1 <= workers <= min(requested, cpus)
    assert per_worker >= 1
    assert workers * per_worker <= cpus
    # no CPU left idle that a worker could have used as a thread
    assert cpus - workers * per_worker < workers


def test_usable_cpus_is_the_affinity_mask(monkeypatch):
    assert threads.usable_cpus() == len(os.sched_getaffinity(0))
    pretend_cpus(monkeypatch, 3)
    assert threads.usable_cpus() == 3
    assert threads.threads_per_worker(2) == 1


def test_usable_cpus_without_affinity_falls_back_to_the_cpu_count(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert threads.usable_cpus() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert threads.usable_cpus() == 1


def test_a_process_pinned_to_one_cpu_uses_one_thread():
    cpu = min(os.sched_getaffinity(0))
    code = (
        "import os, sys, numba\n"
        f"os.sched_setaffinity(0, {{{cpu}}})\n"
        "from clarity.utils.threads import set_thread_count, threads_per_worker, usable_cpus\n"
        "print(usable_cpus(), threads_per_worker(1), set_thread_count(threads_per_worker(1)),\n"
        "      numba.get_num_threads(), 'torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.split() == ["1", "1", "1", "1", "False"]


def test_set_thread_count_is_capped_by_numba_pool_and_reaches_an_imported_torch(monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(set_num_threads=calls.append))
    before = numba.get_num_threads()
    try:
        assert threads.set_thread_count(1) == 1
        assert numba.get_num_threads() == 1
        assert calls == [1]
        limit = numba.config.NUMBA_NUM_THREADS
        assert threads.set_thread_count(limit + 5) == limit
        assert numba.get_num_threads() == limit
        assert calls == [1, limit]
    finally:
        numba.set_num_threads(before)


def test_worker_environment_sets_and_restores_and_keeps_a_smaller_user_limit(monkeypatch):
    clear_thread_environment(monkeypatch)
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "8")
    with threads.worker_environment(3):
        assert os.environ["OMP_NUM_THREADS"] == "3"
        assert os.environ["OPENBLAS_NUM_THREADS"] == "3"
        assert os.environ["MKL_NUM_THREADS"] == "1"
        assert os.environ["NUMBA_NUM_THREADS"] == "3"
    assert "OMP_NUM_THREADS" not in os.environ
    assert "NUMBA_NUM_THREADS" not in os.environ
    assert os.environ["OPENBLAS_NUM_THREADS"] == "8"
    assert os.environ["MKL_NUM_THREADS"] == "1"


def test_in_process_run_uses_all_usable_cpus():
    before = numba.get_num_threads()
    try:
        results = run_reporting(PAIRS[:2], num_workers=1)
    finally:
        numba.set_num_threads(before)
    expected = min(threads.usable_cpus(), numba.config.NUMBA_NUM_THREADS)
    assert {row["pid"] for row in results.values()} == {os.getpid()}
    assert {row["numba"] for row in results.values()} == {expected}


@pytest.mark.parametrize(
    ("cpus", "requested", "workers", "per_worker"),
    [
        (2, 2, 2, 1),  # this machine's case: two workers of one thread
        (4, 2, 2, 2),
        (5, 2, 2, 2),  # one CPU left over rather than oversubscribed
        (4, 3, 3, 1),
        (2, 4, 2, 1),  # more workers asked for than CPUs: one per CPU
    ],
)
def test_worker_processes_get_their_share(monkeypatch, cpus, requested, workers, per_worker):
    """The spawned workers are real processes; the CPU count is pretended so the shares of
    bigger machines are checked here too (a worker's numba pool is sized from its environment,
    so it can hold more threads than this machine has)."""
    clear_thread_environment(monkeypatch)
    pretend_cpus(monkeypatch, cpus)
    own_threads = numba.get_num_threads()
    results, summary = run_collecting(PAIRS, report_threads_for_a_while, requested)
    assert not summary.failed
    rows = list(results.values())
    assert len(rows) == len(PAIRS)
    pids = {row["pid"] for row in rows}
    # this process is one of the workers: it scores while the others start, and every
    # spawned worker takes a pair
    assert os.getpid() in pids
    assert len(pids) == workers
    assert {row["numba"] for row in rows} == {per_worker}
    assert {row["omp"] for row in rows} == {str(per_worker)}
    assert {row["openblas"] for row in rows} == {str(per_worker)}
    assert "OMP_NUM_THREADS" not in os.environ  # this process's environment is restored
    assert numba.get_num_threads() == own_threads  # and its main thread's numba count


def fail_on_s0_and_s2(pair: tuple[str, str]) -> int:
    """S0 goes to the spawned worker first, S2 is done by this process."""
    if pair[0] in ("S0", "S2"):
        raise ValueError(f"no {pair[0]}")
    return os.getpid()


def test_a_failing_pair_in_any_worker_is_recorded_and_the_others_run(monkeypatch):
    pretend_cpus(monkeypatch, 2)
    results, summary = run_collecting(PAIRS, fail_on_s0_and_s2, num_workers=2)
    assert set(summary.failed) == {("S0", "L0001"), ("S2", "L0001")}
    assert "ValueError: no S0" in summary.failed[("S0", "L0001")]
    assert sorted(results) == [("S1", "L0001"), ("S3", "L0001")]


def test_no_more_workers_than_pairs(monkeypatch):
    pretend_cpus(monkeypatch, 4)
    before = numba.get_num_threads()
    try:
        results = run_reporting(PAIRS[:1], num_workers=4)
    finally:
        numba.set_num_threads(before)
    (row,) = results.values()
    assert row["pid"] == os.getpid()
