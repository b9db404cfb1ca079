"""Real-time factor of chunked Conv-TasNet separation: ours vs the official loop.

A random-weight model of the published size (6.6 M parameters) separates a 15 s stereo 44.1 kHz
random mixture. The baseline is a plain re-implementation of the official CAD2 Task 2
``separate_sources`` loop: full-length fade multiplications (torchaudio ``Fade`` semantics) and
the layer-by-layer model forward under ``torch.no_grad``. The machine may be shared: CPU seconds
(all threads) are printed beside wall-clock seconds. Run:

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_separation.py [--causal] [--repeats 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from clarity.separation.convtasnet import ConvTasNetStereo
from clarity.separation.inference import separate_sources

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from official_separation_loop import official_loop


def best_time(function, repeats: int) -> tuple[float, float, torch.Tensor]:
    """Best wall-clock and CPU (all threads) seconds over ``repeats`` runs, and the result."""
    best_wall, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--causal", action="store_true", help="causal cLN model")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    args = parser.parse_args()

    torch.manual_seed(0)
    sample_rate = 44100
    model = ConvTasNetStereo(causal=args.causal, norm_type="cLN" if args.causal else "gLN").eval()
    mix = 0.1 * torch.randn(1, 2, int(args.seconds * sample_rate))
    print(f"threads={torch.get_num_threads()} causal={args.causal} audio={args.seconds:.1f} s")

    t_ours, cpu_ours, ours = best_time(
        lambda: separate_sources(model, mix, sample_rate), args.repeats
    )
    t_official, cpu_official, official = best_time(
        lambda: official_loop(model, mix, sample_rate), args.repeats
    )
    for name, wall, cpu in (
        ("official loop", t_official, cpu_official),
        ("ours", t_ours, cpu_ours),
    ):
        print(f"{name:13s}: {wall:7.2f} s wall  RTF {wall / args.seconds:.3f}   CPU {cpu:7.2f} s")
    print(f"speed-up      : {t_official / t_ours:.2f}x wall, {cpu_official / cpu_ours:.2f}x CPU")
    print(f"max |ours - official| = {(ours - official).abs().max().item():.3e}")


if __name__ == "__main__":
    main()
