"""Real-time factor of chunked Conv-TasNet separation: ours vs the official loop.

A random-weight model of the published size (6.6 M parameters) separates a 15 s stereo 44.1 kHz
random mixture. The baseline is a plain re-implementation of the official CAD2 Task 2
``separate_sources`` loop (tests/official_separation_loop.py): full-length fade multiplications
(torchaudio ``Fade`` semantics) and the official model's layer arithmetic under
``torch.no_grad``. Also timed: the same loop calling our model's (one) forward. Ours is
``clarity.separation.inference.separate_sources``: the same forward on the copy made by
``clarity.separation.fast_inference.prepare_for_inference``, under ``torch.inference_mode``.
The machine may be shared: all are timed in the same run, in ``--repeats`` rounds of the
three (best of each kept), and CPU seconds (all threads) are printed beside wall-clock
seconds. The process keeps freed memory for reuse, as the recipe's enhance does
(``clarity.utils.memory``; ``--default-allocator`` for glibc's own), for all three. Run:

    .venv/bin/python benchmarks/bench_separation.py [--causal] [--repeats 2] [--threads 2]
    .venv/bin/python benchmarks/bench_separation.py --device cuda --dtype bfloat16 \
        --chunks_per_call 8 --instruments 8

With ``--device cuda``, a ``--dtype`` other than float32 or more than one ``--instruments`` it
times ours only (``separate_instruments`` of that many random-weight models of the published
size): float32, one chunk and one model per call (the official schedule) against ``--dtype``
autocast with ``--chunks_per_call`` chunks and all the instruments' models stacked per call
(``clarity.separation.stacked``), and prints the difference from float32.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from clarity.separation.convtasnet import ConvTasNetStereo
from clarity.separation.inference import separate_instruments, separate_sources

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from official_separation_loop import official_convtasnet_forward, official_loop

from clarity.utils.machine import cpu_description
from clarity.utils.memory import allocator_policy


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
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: as is)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda: ours only)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                        help="autocast dtype of ours (prints the float32 difference)")  # fmt: skip
    parser.add_argument("--chunks_per_call", type=int, default=1,
                        help="chunks stacked per model call with --dtype / --device")  # fmt: skip
    parser.add_argument("--instruments", type=int, default=1,
                        help="models separated, stacked into one call (ours only)")  # fmt: skip
    parser.add_argument("--default-allocator", action="store_true",
                        help="glibc's own policy (enhance.py keeps freed memory)")  # fmt: skip
    args = parser.parse_args()
    policy = allocator_policy(args.default_allocator)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    sample_rate = 44100
    model = ConvTasNetStereo(causal=args.causal, norm_type="cLN" if args.causal else "gLN").eval()
    mix = 0.1 * torch.randn(1, 2, int(args.seconds * sample_rate))
    print(f"cpu: {cpu_description()}; {policy} (all runs)")
    print(f"threads={torch.get_num_threads()} causal={args.causal} audio={args.seconds:.1f} s "
          f"device={args.device} dtype={args.dtype}")  # fmt: skip
    if args.device != "cpu" or args.dtype != "float32" or args.instruments > 1:
        compare_on_device(model, mix, sample_rate, args)
        return

    official_forward = partial(official_convtasnet_forward, model)
    runs = {
        "official loop": lambda: official_loop(model, mix, sample_rate, forward=official_forward),
        "loop, our forward": lambda: official_loop(model, mix, sample_rate),
        "ours": lambda: separate_sources(model, mix, sample_rate),
    }
    timed = {name: (float("inf"), float("inf"), None) for name in runs}
    for _ in range(args.repeats):  # rounds of all three, so a change of load hits each
        for name, run in runs.items():
            wall, cpu, result = best_time(run, 1)
            timed[name] = (min(wall, timed[name][0]), min(cpu, timed[name][1]), result)
    (t_official, cpu_official, official), (t_plain, cpu_plain, plain), (t_ours, cpu_ours, ours) = (
        timed.values()
    )
    for name, wall, cpu in (
        ("official loop", t_official, cpu_official),
        ("loop, our forward", t_plain, cpu_plain),
        ("ours", t_ours, cpu_ours),
    ):
        print(f"{name:17s}: {wall:7.2f} s wall  RTF {wall / args.seconds:.3f}   CPU {cpu:7.2f} s")
    print(f"speed-up vs official loop: {t_official / t_ours:.2f}x wall, "
          f"{cpu_official / cpu_ours:.2f}x CPU")  # fmt: skip
    print(f"speed-up vs the loop with our forward: {t_plain / t_ours:.2f}x wall")
    print(f"max |ours - official| = {(ours - official).abs().max().item():.3e}, "
          f"max |ours - our plain forward| = {(ours - plain).abs().max().item():.3e}")  # fmt: skip


def compare_on_device(model, mix, sample_rate: int, args: argparse.Namespace) -> None:
    """Ours on ``args.device`` for ``args.instruments`` models (``model`` and random others):
    float32 with one chunk and one model per call, then ``args.dtype`` autocast with
    ``args.chunks_per_call`` chunks and all models per call; times and the difference."""
    device = torch.device(args.device)
    models = {"0": model.to(device)}
    for index in range(1, args.instruments):
        torch.manual_seed(index)
        models[str(index)] = ConvTasNetStereo(config=model.config).eval().to(device)
    mixture = mix[0].numpy()

    def ours(precision: str, chunks_per_call: int, models_per_call: int) -> torch.Tensor:
        separated = separate_instruments(
            models, mixture, sample_rate, list(models), segment=10.0, device=device,
            chunks_per_call=chunks_per_call, precision=precision,
            models_per_call=models_per_call,
        )  # fmt: skip
        return torch.from_numpy(np.stack([target for target, _ in separated.values()]))

    t_full, _, full = best_time(lambda: ours("float32", 1, 1), args.repeats)
    t_low, _, low = best_time(
        lambda: ours(args.dtype, args.chunks_per_call, args.instruments), args.repeats
    )
    stacked = f"{args.dtype}, {args.chunks_per_call} chunks, {args.instruments} models/call"
    for name, wall in (("float32, 1 chunk, 1 model/call", t_full), (stacked, t_low)):
        print(f"ours {name:40s}: {wall:7.2f} s wall  RTF {wall / args.seconds:.4f}")
    error = (low - full).abs().max().item()
    relative = ((low - full).norm() / full.norm()).item()
    print(f"speed-up {t_full / t_low:.2f}x; max |{args.dtype} - float32| = {error:.3e} "
          f"(relative L2 {relative:.3e})")  # fmt: skip


if __name__ == "__main__":
    main()
