"""Where HAAQI's time goes: each public stage of ``eb`` timed inside one HAAQI call, and the
primitive that bounds it timed alone.

    NUMBA_NUM_THREADS=1 python benchmarks/profile_haaqi.py [--seconds 10] [--runs 3]

Every public stage function of ``clarity.evaluator.haspi.eb`` that ``ear_model`` and
``haaqi_v1`` call is wrapped by a timer (they call them through the module, so the wrapper is
what runs); ``--runs`` seeded HAAQI calls on one ear of the benchmark music (as
``bench_haaqi.py``) follow a warm-up call, and each stage's median time per call is printed,
inclusive of what it calls, with its share of the total. Below that, the floor of the work of
the three stages that dominate, each primitive timed alone on the same sizes:

- envelope alignment: the real FFTs of its overlap-save correlations (32 bands x 2 signals,
  ``scipy.fft``), nothing else;
- noise draws: NumPy's own legacy Gaussian generator (``RandomState.standard_normal``, C) for
  the same number of draws, the same sequence as the one HAAQI's noise must reproduce;
- memory: one read and one write of a ``(32, samples)`` float64 array (``np.copyto``), the
  cost of a pass of any band-wise stage over its signal.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numba
import numpy as np
import scipy.fft

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_haaqi import AUDIOGRAM_FREQUENCIES, AUDIOGRAM_LEVELS, SAMPLE_RATE, music_like_noise

from clarity.evaluator.haaqi import compute_haaqi
from clarity.evaluator.haspi import eb
from clarity.utils.audiogram import Audiogram
from clarity.utils.machine import cpu_description
from clarity.utils.memory import keep_freed_memory

STAGES = (
    "ear_model", "center_frequency", "loss_parameters", "resample_24khz", "input_align",
    "middle_ear", "gammatone_basilar_membrane", "bandwidth_adjust",
    "env_compress_basilar_membrane", "envelope_align", "envelope_sl",
    "inner_hair_cell_adaptation", "basilar_membrane_add_noise", "group_delay_compensate",
    "convert_rms_to_sl", "env_smooth", "melcor9", "spectrum_diff", "bm_covary", "ave_covary2",
)  # fmt: skip
BANDS = 32


def timed_stages() -> dict[str, list[float]]:
    """Wrap every stage of ``STAGES`` in ``eb`` by a timer; returns name -> seconds per call."""
    seconds: dict[str, list[float]] = defaultdict(list)
    for name in STAGES:
        stage = getattr(eb, name)

        @functools.wraps(stage)
        def timer(*args, _stage=stage, _name=name, **kwargs):
            began = time.perf_counter()
            try:
                return _stage(*args, **kwargs)
            finally:
                seconds[_name].append(time.perf_counter() - began)

        setattr(eb, name, timer)
    return seconds


def best_of(function, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - began)
    return best


def alignment_fft_floor(samples: int) -> float:
    """Seconds of the FFTs of ``envelope_align``'s block correlations for two (32, samples)
    envelope pairs (the envelope and the basilar membrane), measured alone."""
    max_lag = int(np.rint(0.001 * 100 * SAMPLE_RATE))
    size = 1 << int(np.ceil(np.log2(16 * max_lag)))
    blocks = -(-samples // (size - 2 * max_lag))
    data = np.random.default_rng(0).standard_normal((blocks, size))

    def one_band() -> None:
        first = scipy.fft.rfft(data, axis=-1)
        second = scipy.fft.rfft(data, axis=-1)
        scipy.fft.irfft((first * second).sum(axis=0), size)

    return 2 * BANDS * best_of(one_band)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    reference = music_like_noise(args.seconds, SAMPLE_RATE, seed=0)
    processed = reference + 0.05 * music_like_noise(args.seconds, SAMPLE_RATE, seed=1)
    audiogram = Audiogram(
        levels=np.array(AUDIOGRAM_LEVELS), frequencies=np.array(AUDIOGRAM_FREQUENCIES)
    )
    keep_freed_memory()  # as evaluate.py runs
    print(f"CPU: {cpu_description()}; numba threads: {numba.get_num_threads()}")
    np.random.seed(0)
    compute_haaqi(processed, reference, SAMPLE_RATE, SAMPLE_RATE, audiogram)  # compile / load
    seconds = timed_stages()
    totals = []
    for _ in range(args.runs):
        np.random.seed(0)
        began = time.perf_counter()
        compute_haaqi(processed, reference, SAMPLE_RATE, SAMPLE_RATE, audiogram)
        totals.append(time.perf_counter() - began)
    total = statistics.median(totals)
    print(f"HAAQI one ear, {args.seconds:g} s at {SAMPLE_RATE} Hz: median {total:.3f} s "
          f"over {args.runs} calls")  # fmt: skip
    print(f"{'stage (inclusive)':32s} {'calls':>5s} {'s/HAAQI':>8s} {'share':>6s}")
    for name in STAGES:
        calls = seconds[name]
        per_call = sum(calls) / args.runs
        print(f"{name:32s} {len(calls) // args.runs:5d} {per_call:8.3f} {per_call / total:6.1%}")

    samples = int(args.seconds * SAMPLE_RATE)
    draws = 2 * BANDS * samples  # basilar_membrane_add_noise on both signals
    bands = np.random.default_rng(0).standard_normal((BANDS, samples))
    copy = np.empty_like(bands)
    state = np.random.RandomState(0)
    print("floors, each primitive alone:")
    print(f"  envelope_align FFTs ({BANDS} bands x 2: envelopes and basilar membrane): "
          f"{alignment_fft_floor(samples):.3f} s")  # fmt: skip
    print(f"  {draws} legacy Gaussian draws (NumPy's C generator): "
          f"{best_of(lambda: state.standard_normal(draws)):.3f} s")  # fmt: skip
    print(f"  one pass over ({BANDS}, {samples}) float64, read + write: "
          f"{best_of(lambda: np.copyto(copy, bands)):.4f} s")  # fmt: skip


if __name__ == "__main__":
    main()
