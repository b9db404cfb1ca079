"""The CUDA checks of separation and training, in one run, for a machine with a GPU.

    python benchmarks/gpu_check.py [--seconds 15] [--epochs 2]

1. Separation (``bench_separation.py --device cuda``): a published-size model separates
   ``--seconds`` of stereo in float32, one chunk and one model per call (the official
   schedule), against bfloat16 and float16 autocast with 8 chunks and the models of 8
   instruments per call (``chunks_per_call``, ``models_per_call``): times, real-time factors
   and the difference from float32.
2. Training on the GPU (``clarity.separation.training``, the loop of ``ConvTasNet/train.py``)
   of a small model on the generated dataset of ``tests/test_training.py``: float32, bfloat16
   and float16 autocast (gradient scaling), ``torch.compile``, and ``torchrun`` with NCCL over
   every GPU of the machine; the losses of each epoch and the seconds, checked finite and, for
   the autocast runs, within 5 % of float32.

Exits non-zero when a check fails. Needs PyTorch with CUDA, numpy, scipy, safetensors, soundfile
(and cffi), soxr, fast_bss_eval, tqdm and pytest (the dataset generator lives in the tests).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from clarity.separation.training import train

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_training import saved_history, torchrun_training, training_config, write_dataset

REPOSITORY = Path(__file__).resolve().parents[1]


def check_separation(seconds: float) -> None:
    """bench_separation.py on CUDA for each reduced precision (it prints its own figures)."""
    for dtype in ("bfloat16", "float16"):
        command = [sys.executable, str(REPOSITORY / "benchmarks" / "bench_separation.py"),
                   "--device", "cuda", "--dtype", dtype, "--chunks_per_call", "8",
                   "--instruments", "8", "--seconds", str(seconds), "--repeats", "2"]  # fmt: skip
        subprocess.run(command, check=True)


def check_training(root: Path, work: Path, epochs: int) -> list[str]:
    """Train the small model in each mode on the GPU; the failures found."""
    failures = []
    losses = {}
    for name, changes in (
        ("float32", {}),
        ("bfloat16", {"precision": "bfloat16"}),
        ("float16", {"precision": "float16"}),
        ("float32 compiled", {"compile": True}),
    ):
        config = training_config(root, work / name.replace(" ", "_"), epochs=epochs,
                                 device="cuda", **changes)  # fmt: skip
        began = time.perf_counter()
        result = train(config, progress=False)
        losses[name] = [entry["train_loss"] for entry in result.history]
        print(f"training {name:17s}: {time.perf_counter() - began:6.1f} s, train loss per "
              f"epoch {np.round(losses[name], 5).tolist()}")  # fmt: skip
        if not np.all(np.isfinite(losses[name])):
            failures.append(f"{name}: loss not finite")
    for name in ("bfloat16", "float16", "float32 compiled"):
        relative = abs(losses[name][0] - losses["float32"][0]) / losses["float32"][0]
        if relative > 0.05:
            failures.append(f"{name}: first-epoch loss {relative:.1%} away from float32")
    processes = torch.cuda.device_count()
    config = training_config(root, work / "torchrun", epochs=epochs, batch_size=4 * processes)
    began = time.perf_counter()
    finished = subprocess.run(torchrun_training(processes, config), capture_output=True, text=True)
    if finished.returncode != 0:
        failures.append(f"torchrun over {processes} GPU(s) failed:\n{finished.stderr[-2000:]}")
    else:
        curve = [entry["train_loss"] for entry in saved_history(config.exp_dir)]
        print(f"torchrun, {processes} GPU(s), NCCL: {time.perf_counter() - began:6.1f} s, train "
              f"loss per epoch {np.round(curve, 5).tolist()}")  # fmt: skip
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="audio separated, s")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each training run")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device")
    print(f"torch {torch.__version__}, {torch.cuda.device_count()} x "
          f"{torch.cuda.get_device_name(0)}")  # fmt: skip
    check_separation(args.seconds)
    with tempfile.TemporaryDirectory() as work:
        root = write_dataset(Path(work) / "data")
        failures = check_training(root, Path(work), args.epochs)
    for failure in failures:
        print(f"FAILED {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
