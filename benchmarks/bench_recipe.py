"""Seconds per scene-listener pair of the CAD2 recipe on generated 15 s scenes.

    python benchmarks/bench_recipe.py [--duration 15] [--repeats 2]

Writes the miniature dataset (3 pairs, `--duration` seconds each) in a temporary folder, then
times `run_enhance` and `run_evaluate` for the oracle separator and for ConvTasNet with random
weights of the published size (N=256, L=20, B=256, H=512, P=3, X=8, R=3, ~6.6 M parameters).
The first round warms up the numba kernels and is not reported; each reported figure is the
best of `--repeats` rounds (overwrite=true), divided by the number of pairs. For scale: the
official toolkit takes about 30 s to evaluate one 15 s scene.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from clarity.cad2.enhance import run_enhance
from clarity.cad2.evaluate import run_evaluate
from clarity.cad2.testing import write_mini_dataset
from clarity.separation.convtasnet import ConvTasNetStereo

REPO_ROOT = Path(__file__).resolve().parent.parent
INSTRUMENTS = ("Cello", "Flute", "Violin")
PUBLISHED_SIZE = {"N": 256, "L": 20, "B": 256, "H": 512, "P": 3, "X": 8, "R": 3, "C": 2}


def recipe_config(root: Path, exp: Path, separator: str, checkpoints: Path | None):
    overrides = [
        f"path.root={root}",
        f"path.exp_folder={exp}",
        f"separator.type={separator}",
        f"separator.checkpoint_dir={checkpoints if checkpoints else 'null'}",
        "separator.device=cpu",
        "overwrite=true",
        "evaluate.plot=false",
    ]
    with initialize_config_dir(config_dir=str(REPO_ROOT), version_base=None):
        return compose(config_name="config", overrides=overrides)


def best_seconds_per_pair(run, config, repeats: int) -> float:
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run(config)
        summary = result[0] if isinstance(result, tuple) else result
        timings.append((time.perf_counter() - start) / len(summary.processed))
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="scene length, s")
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds (best is kept)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        root = write_mini_dataset(folder / "cad2", duration=args.duration)
        checkpoints = folder / "models"
        torch.manual_seed(0)
        for instrument in INSTRUMENTS:
            model = ConvTasNetStereo(**PUBLISHED_SIZE, audio_channels=2, samplerate=44100)
            model.save_pretrained(checkpoints / f"ConvTasNet_{instrument}_NonCausal")

        print(f"{args.duration:g} s scenes, 3 pairs, torch threads {torch.get_num_threads()}")
        for separator in ("oracle", "convtasnet"):
            config = recipe_config(
                root, folder / separator, separator, checkpoints if separator != "oracle" else None
            )
            run_enhance(config)  # warm-up round
            run_evaluate(config)
            enhance = best_seconds_per_pair(run_enhance, config, args.repeats)
            evaluate = best_seconds_per_pair(run_evaluate, config, args.repeats)
            print(
                f"{separator:>10}: enhance {enhance:6.2f} s/scene, evaluate {evaluate:6.2f} s/scene"
            )


if __name__ == "__main__":
    main()
