"""Time HAAQI on one ear (10 s of music-like noise at 24 kHz) against pyClarity 0.9.0.

Usage::

    python benchmarks/bench_haaqi.py [--seconds 10] [--runs 5]
        [--official-python /path/to/venv/bin/python] [--official-runs 1]

Prints the CPU model and SIMD level, numba's thread count (set it with
``NUMBA_NUM_THREADS``), the allocator policy (freed memory kept for reuse, as the recipe's
evaluate runs, ``clarity.utils.memory``; ``--default-allocator`` for glibc's own), the time
of the first call in this process (with numba's on-disk cache a second process loads the
compiled kernels instead of compiling them: run the benchmark twice to see both), the median
of the following calls, and, when a Python with the official pyclarity 0.9.0 is given
(``--official-python``, default: the ``PYCLARITY_PYTHON`` environment variable), its time
on the same inputs measured in the same run, the ratio, and the difference between the two
scores. Both are seeded with
``np.random.seed(0)`` before each call, so the scores agree to about 1e-11.

The official code runs in a subprocess of that Python started from a temporary folder,
so that ``import clarity`` there finds pyClarity and not this checkout: it runs this
file with ``--official-worker``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.signal import butter, lfilter

SAMPLE_RATE = 24000
AUDIOGRAM_LEVELS = [20, 25, 30, 40, 50, 60]
AUDIOGRAM_FREQUENCIES = [250, 500, 1000, 2000, 4000, 6000]


def music_like_noise(seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """Harmonic notes with decaying envelopes over pink-ish noise, RMS 1, ``(samples,)``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    signal = np.zeros(n)
    note_length = int(0.25 * sample_rate)
    for start in range(0, n, note_length):
        f0 = 110.0 * 2 ** (rng.integers(0, 36) / 12)
        stop = min(start + 2 * note_length, n)
        local = t[start:stop] - t[start]
        envelope = np.exp(-local / 0.3)
        for harmonic in range(1, 8):
            if harmonic * f0 < 0.45 * sample_rate:
                partial = np.sin(2 * np.pi * harmonic * f0 * local) / harmonic
                signal[start:stop] += envelope * partial
    b, a = butter(1, 2000 / (0.5 * sample_rate))
    signal += 0.1 * lfilter(b, a, rng.standard_normal(n))
    return signal / np.sqrt(np.mean(signal**2))


def benchmark_signals(seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Reference and processed (4 kHz low-pass plus noise) signals ``(samples,)``."""
    reference = music_like_noise(seconds, SAMPLE_RATE, seed=1)
    b, a = butter(2, 4000 / (0.5 * SAMPLE_RATE))
    noise = 0.05 * np.random.default_rng(2).standard_normal(len(reference))
    return reference, lfilter(b, a, reference) + noise


def time_haaqi(reference: np.ndarray, processed: np.ndarray, runs: int) -> dict:
    """Seconds (wall, CPU) of ``runs`` seeded calls of whichever ``clarity`` is imported."""
    from clarity.evaluator.haaqi import haaqi_v1
    from clarity.utils.audiogram import Audiogram

    audiogram = Audiogram(
        levels=np.array(AUDIOGRAM_LEVELS), frequencies=np.array(AUDIOGRAM_FREQUENCIES)
    )
    wall, cpu, score = [], [], None
    for _ in range(runs):
        np.random.seed(0)
        start, start_cpu = time.perf_counter(), time.process_time()
        score = haaqi_v1(reference, SAMPLE_RATE, processed, SAMPLE_RATE, audiogram, 2, 65.0)[0]
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"wall": wall, "cpu": cpu, "score": float(score)}


def official_worker(inputs: Path, runs: int) -> None:
    """In the official environment: time pyClarity on the saved inputs, print JSON."""
    import clarity

    signals = np.load(inputs)
    result = time_haaqi(signals["reference"], signals["processed"], runs)
    result["clarity_file"] = clarity.__file__
    print(json.dumps(result))


def time_official(
    python: str, reference: np.ndarray, processed: np.ndarray, runs: int
) -> dict | None:
    """pyClarity's timings from a subprocess of ``python`` run in a temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        inputs = Path(folder) / "signals.npz"
        np.savez(inputs, reference=reference, processed=processed)
        command = [python, str(Path(__file__).resolve()), "--official-worker", str(inputs)]
        command += ["--official-runs", str(runs)]
        environment = {**os.environ, "PYTHONPATH": ""}
        done = subprocess.run(
            command, cwd=folder, env=environment, capture_output=True, text=True, check=False
        )
    if done.returncode != 0:
        print(f"pyclarity run failed:\n{done.stderr[-2000:]}")
        return None
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if Path(result["clarity_file"]).resolve().is_relative_to(Path(__file__).resolve().parents[1]):
        raise RuntimeError(f"the official run imported this checkout: {result['clarity_file']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=5, help="timed calls after the first")
    parser.add_argument(
        "--official-python",
        default=os.environ.get("PYCLARITY_PYTHON"),
        help="Python of a venv with pyclarity 0.9.0 (default: $PYCLARITY_PYTHON)",
    )
    parser.add_argument("--official-runs", type=int, default=1)
    parser.add_argument(
        "--default-allocator",
        action="store_true",
        help="keep glibc's default policy (evaluate.py keeps freed memory for reuse)",
    )
    parser.add_argument("--official-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.official_worker is not None:
        official_worker(args.official_worker, args.official_runs)
        return

    import numba

    from clarity.utils.machine import cpu_description
    from clarity.utils.memory import allocator_policy

    reference, processed = benchmark_signals(args.seconds)
    policy = allocator_policy(args.default_allocator)
    print(f"CPU: {cpu_description()}; numba threads: {numba.get_num_threads()}; {policy}")
    first = time_haaqi(reference, processed, 1)
    ours = time_haaqi(reference, processed, args.runs)
    median = statistics.median(ours["wall"])
    print(
        f"HAAQI one ear, {args.seconds:g} s at {SAMPLE_RATE} Hz: first call in this process "
        f"{first['wall'][0]:.3f} s (kernels loaded from numba's cache or compiled); then median "
        f"{median:.3f} s (min {min(ours['wall']):.3f}, max {max(ours['wall']):.3f}, "
        f"{args.runs} runs), median CPU {statistics.median(ours['cpu']):.3f} s; "
        f"score {ours['score']:.12f}"
    )
    if not args.official_python:
        print("pyclarity 0.9.0 not timed: give --official-python or set PYCLARITY_PYTHON")
        return
    official = time_official(args.official_python, reference, processed, args.official_runs)
    if official is None:
        return
    official_median = statistics.median(official["wall"])
    official_cpu = statistics.median(official["cpu"])
    print(
        f"pyclarity 0.9.0 (same inputs, same run): median {official_median:.3f} s, CPU "
        f"{official_cpu:.3f} s ({args.official_runs} runs); ratio {official_median / median:.1f}x "
        f"(CPU time ratio {official_cpu / statistics.median(ours['cpu']):.1f}x, less sensitive "
        f"to other processes); |score difference| {abs(official['score'] - ours['score']):.1e}"
    )


if __name__ == "__main__":
    sys.exit(main())
