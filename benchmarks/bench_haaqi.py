"""Time HAAQI on one ear: 10 s of music-like noise at 24 kHz.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/bench_haaqi.py [--seconds 10] [--runs 5]``.
The ear model's bands and the BM covariances run in ``NUMBA_NUM_THREADS`` threads
(default: all cores); set ``NUMBA_NUM_THREADS=1`` to time one thread.
Prints the median wall time of ``haaqi_v1`` over several runs after a warm-up call
(which also compiles or loads the numba kernels), the median CPU time of this process
(less sensitive to other processes on a shared machine), and the score for reference.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numba
import numpy as np
from scipy.signal import butter, lfilter

from clarity.evaluator.haaqi import haaqi_v1
from clarity.utils.audiogram import Audiogram

SAMPLE_RATE = 24000


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    reference = music_like_noise(args.seconds, SAMPLE_RATE, seed=1)
    rng = np.random.default_rng(2)
    b, a = butter(2, 4000 / (0.5 * SAMPLE_RATE))
    processed = lfilter(b, a, reference) + 0.05 * rng.standard_normal(len(reference))
    audiogram = Audiogram(
        levels=np.array([20, 25, 30, 40, 50, 60]),
        frequencies=np.array([250, 500, 1000, 2000, 4000, 6000]),
    )

    def run() -> tuple[float, float]:
        np.random.seed(0)
        start, start_cpu = time.perf_counter(), time.process_time()
        score = haaqi_v1(reference, SAMPLE_RATE, processed, SAMPLE_RATE, audiogram, 2, 65.0)[0]
        elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        run.score = score
        return elapsed, cpu

    warm, _ = run()
    times, cpu_times = zip(*(run() for _ in range(args.runs)), strict=True)
    print(
        f"HAAQI, {args.seconds:g} s at {SAMPLE_RATE} Hz, one ear, "
        f"{numba.config.NUMBA_NUM_THREADS} band threads: "
        f"median {statistics.median(times):.3f} s "
        f"(min {min(times):.3f}, max {max(times):.3f}, {args.runs} runs; warm-up {warm:.3f} s); "
        f"median CPU {statistics.median(cpu_times):.3f} s; score {run.score:.6f}"
    )


if __name__ == "__main__":
    main()
