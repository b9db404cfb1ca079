"""Time the multiband compressor on 10 s of 44.1 kHz audio against pyClarity 0.9.0.

Usage::

    python benchmarks/bench_compressor.py [--repeats 15]
        [--official-python /path/to/pyclarity-venv/bin/python] [--official-runs 3]

Prints the CPU (model and SIMD level), the load average (timings on a shared machine are
noisy: compare the ratios measured in one run) and the allocator policy (freed memory kept
for reuse, as the recipe's scripts run, `clarity.utils.memory`; `--default-allocator` for
glibc's own), then the median wall time of several calls
after a warm-up call (which loads or compiles the numba kernels): ours on mono and stereo,
with numba's threads and with one thread, and the crossover alone; then pyClarity 0.9.0's
MultibandCompressor on the same mono signal with the same settings, timed in a subprocess of
its own virtual environment (`--official-python`, default `$PYCLARITY_PYTHON`; skipped with
a message if neither is given), the ratio of the medians, and the largest difference between
the two outputs. The input is 1/f noise at 0.1 RMS with the 6-band settings of the recipe's
reference case, so that many band samples reach the compressors.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from clarity.enhancer.multiband_compressor import MultibandCompressor
from clarity.utils.machine import cpu_description
from clarity.utils.memory import allocator_policy

SAMPLE_RATE = 44100
DURATION_S = 10.0
CROSSOVER_HZ = [353.55, 707.11, 1414.21, 2828.43, 5656.85]
SETTINGS = {
    "attack": [11, 11, 14, 13, 11, 11],
    "release": [80, 80, 80, 80, 100, 100],
    "threshold": -30.0,
    "ratio": [1.0, 1.2, 1.5, 1.8, 2.0, 2.4],
    "makeup_gain": [0.0, 2.0, 4.0, 8.0, 12.0, 15.0],
}

# run by the official environment's python in an empty temporary folder (so that `clarity`
# is pyClarity 0.9.0): argv = signal.npy, output.npy, settings JSON, number of timed calls
OFFICIAL_SNIPPET = """
import json, sys, time
import numpy as np
from clarity.enhancer.multiband_compressor import MultibandCompressor
signal_path, output_path = sys.argv[1], sys.argv[2]
settings, runs = json.loads(sys.argv[3]), int(sys.argv[4])
signal = np.load(signal_path)
mbc = MultibandCompressor(settings["crossover"], settings["sample_rate"])
mbc.set_compressors(**settings["compressors"])
times = []
for _ in range(runs):
    start = time.perf_counter()
    output = mbc(signal.copy())
    times.append(time.perf_counter() - start)
np.save(output_path, output)
print(json.dumps(times))
"""


def music_like_noise(n_channels: int, n_samples: int) -> np.ndarray:
    """(channels, samples) noise with a 1/f spectrum scaled to 0.1 RMS."""
    rng = np.random.default_rng(0)
    spectrum = np.fft.rfft(rng.standard_normal((n_channels, n_samples)), axis=-1)
    spectrum /= np.sqrt(np.maximum(np.arange(spectrum.shape[-1]), 1.0))
    noise = np.fft.irfft(spectrum, n=n_samples, axis=-1)
    return 0.1 * noise / np.sqrt(np.mean(noise**2))


def median_seconds(repeats: int, function, *args) -> float:
    """Median wall time of `repeats` calls after one warm-up call."""
    function(*args)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def official_run(python: str, signal: np.ndarray, runs: int) -> tuple[float, np.ndarray]:
    """Median time of pyClarity's MultibandCompressor on `signal` and its output."""
    settings = {"crossover": CROSSOVER_HZ, "sample_rate": SAMPLE_RATE, "compressors": SETTINGS}
    with tempfile.TemporaryDirectory() as folder:
        signal_path, output_path = Path(folder, "signal.npy"), Path(folder, "output.npy")
        np.save(signal_path, signal)
        command = [python, "-c", OFFICIAL_SNIPPET, str(signal_path), str(output_path)]
        command += [json.dumps(settings), str(runs)]
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the official run failed:\n{done.stderr}")
        times = json.loads(done.stdout.strip().splitlines()[-1])
        return statistics.median(times), np.load(output_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--official-python", default=os.environ.get("PYCLARITY_PYTHON"))
    parser.add_argument("--official-runs", type=int, default=3)
    parser.add_argument(
        "--default-allocator",
        action="store_true",
        help="keep glibc's default policy (enhance.py keeps freed memory for reuse)",
    )
    args = parser.parse_args()

    policy = allocator_policy(args.default_allocator)
    print(
        f"CPU: {cpu_description()}; load average {os.getloadavg()[0]:.2f} (shared machine);"
        f" {policy}"
    )
    mbc = MultibandCompressor(CROSSOVER_HZ, SAMPLE_RATE)
    mbc.set_compressors(**SETTINGS)
    n_samples = int(DURATION_S * SAMPLE_RATE)
    mono = music_like_noise(1, n_samples)
    threads = numba.get_num_threads()
    ours_mono = None
    for label, signal in (("mono", mono), ("stereo", music_like_noise(2, n_samples))):
        total = median_seconds(args.repeats, mbc, signal)
        numba.set_num_threads(1)
        single = median_seconds(args.repeats, mbc, signal)
        numba.set_num_threads(threads)
        crossover = median_seconds(args.repeats, mbc.crossover, signal)
        ours_mono = total if ours_mono is None else ours_mono
        print(
            f"ours {label:>6}: {DURATION_S:.0f} s at {SAMPLE_RATE} Hz, {mbc.num_compressors}"
            f" bands: {total * 1e3:6.1f} ms ({threads} numba threads),"
            f" {single * 1e3:6.1f} ms (1 thread); crossover alone {crossover * 1e3:5.1f} ms;"
            f" median of {args.repeats}"
        )
    if not args.official_python:
        print("pyClarity 0.9.0: not timed (give --official-python or set PYCLARITY_PYTHON)")
        return
    official, official_output = official_run(args.official_python, mono, args.official_runs)
    difference = float(np.max(np.abs(mbc(mono) - official_output)))
    print(
        f"pyClarity 0.9.0 mono: {official * 1e3:.0f} ms (median of {args.official_runs});"
        f" ours {official / ours_mono:.0f}x faster; max |ours - official| = {difference:.2e}"
    )
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
