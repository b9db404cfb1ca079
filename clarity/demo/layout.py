"""The whole recipe on the embedded demo data, with no download (``make demo``).

    python -m clarity.demo.run_demo [--size small|tiny]

Steps: render the demo dataset (``clarity.demo.dataset``), train one small Conv-TasNet per
instrument of the validation split (``clarity.demo.models``), then run ``baseline/enhance.py`` and
``baseline/evaluate.py`` (as subprocesses, with Hydra overrides) on the validation scenes for the
passthrough, oracle and ConvTasNet separators, and print the mean HAAQI of each.

The small (default) size uses the recipe's default paths (``demo_data/cad2``,
``demo_data/models``, ``exp`` and ``exp/<bound>_noncausal``), so ``python baseline/enhance.py`` and
``python baseline/evaluate.py`` run on it afterwards with no arguments. The tiny size (for CI)
lives in ``demo_data/tiny/``. A rerun reuses the data, models, enhanced signals and scores that
exist; what depends on songs rendered or models trained in this run is redone.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from clarity.cad2.experiment import default_exp_folder
from clarity.cad2.scores import mean_scores
from clarity.demo.dataset import make_dataset
from clarity.demo.models import CAUSALITY, train_demo_models
from clarity.demo.songs import SIZES

REPOSITORY = Path(__file__).resolve().parents[2]
BOUNDS = ("passthrough", "oracle")
SYSTEMS = (*BOUNDS, "convtasnet")  # bounds first: every plot shows them
SCORING_WORKERS = 2


@dataclass(frozen=True)
class DemoPaths:
    """Where one demo size keeps its dataset, models and experiment folders."""

    root: Path
    models: Path
    workspace: Path  # the folder holding exp/

    def exp_folder(self, system: str) -> Path:
        """The recipe's default experiment folder of ``system`` (``exp`` for ConvTasNet,
        ``exp/<system>_noncausal`` for the bounds), under ``workspace``."""
        return self.workspace / default_exp_folder(system, CAUSALITY)


def demo_paths(size: str, repository: Path = REPOSITORY) -> DemoPaths:
    """Paths of a demo size: the recipe's defaults for "small", ``demo_data/tiny/`` for "tiny"."""
    if size == "small":
        return DemoPaths(
            repository / "demo_data" / "cad2", repository / "demo_data" / "models", repository
        )
    base = repository / "demo_data" / size
    return DemoPaths(base / "cad2", base / "models", base)


def run_recipe(script: str, system: str, paths: DemoPaths, redo: bool) -> None:
    """Run ``baseline/<script>.py`` for one separator with the demo's paths.

    Raises:
        ValueError: if the baseline script is missing.
        subprocess.CalledProcessError: if it fails.
    """
    program = REPOSITORY / "baseline" / f"{script}.py"
    if not program.is_file():
        raise ValueError(f"{program} not found: run the demo from a checkout of the repository")
    overrides = [
        f"separator.type={system}",
        f"separator.causality={CAUSALITY}",
        f"path.root={paths.root}",
        f"separator.checkpoint_dir={paths.models}",
        f"path.exp_folder={paths.exp_folder(system)}",
        f"overwrite={'true' if redo else 'false'}",
    ]
    if script == "evaluate":
        overrides += [
            f"evaluate.num_workers={SCORING_WORKERS}",
            *(f"evaluate.plot_bounds.{bound}={paths.exp_folder(bound)}" for bound in BOUNDS),
        ]
    subprocess.run([sys.executable, str(program), *overrides], cwd=REPOSITORY, check=True)


def summary_table(paths: DemoPaths) -> str:
    """Mean left, right and average HAAQI of each system, as a text table."""
    lines = [f"{'system':<12} {'pairs':>5} {'left':>7} {'right':>7} {'mean HAAQI':>10}"]
    for system in SYSTEMS:
        scores_file = paths.exp_folder(system) / "scores.csv"
        if not scores_file.is_file():
            lines.append(f"{system:<12} {'-':>5} (no scores: {scores_file} missing)")
            continue
        means = mean_scores(scores_file)
        with scores_file.open(encoding="utf-8") as file:
            pairs = sum(1 for _ in file) - 1
        lines.append(
            f"{system:<12} {pairs:>5} {means['left_haaqi']:>7.4f} {means['right_haaqi']:>7.4f} "
            f"{means['avg_haaqi']:>10.4f}"
        )
    return "\n".join(lines)


def run_demo(size: str = "small", seed: int = 0) -> str:
    """Build the demo data and models, enhance and evaluate the three systems.

    Returns:
        The summary table (also printed), followed by the time each stage took.
    """
    paths = demo_paths(size)
    times: dict[str, float] = {}
    began = time.perf_counter()
    dataset = make_dataset(paths.root, size, seed)
    times["dataset"] = time.perf_counter() - began

    began = time.perf_counter()
    models = train_demo_models(paths.root, paths.models, size, seed)
    times["models"] = time.perf_counter() - began

    for system in SYSTEMS:
        redo = dataset.rendered > 0 or (system == "convtasnet" and bool(models.trained))
        for script in ("enhance", "evaluate"):
            began = time.perf_counter()
            run_recipe(script, system, paths, redo)
            times[f"{script} {system}"] = time.perf_counter() - began

    report = summary_table(paths)
    timing = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in times.items())
    total = sum(times.values())
    text = f"{report}\n\ntimes: {timing}; total {total:.0f} s ({total / 60:.1f} min)"
    print(f"\nDemo ({size}) mean HAAQI on the validation scenes:\n{text}")
    print(f"Plots: {paths.exp_folder('convtasnet') / 'scores.png'} (and per system)")
    return text


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and run the demo."""
    parser = argparse.ArgumentParser(description="Run the CAD2 Task 2 recipe on the demo data.")
    parser.add_argument("--size", choices=SIZES, default="small", help="demo size (%(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="data and training seed (%(default)s)")
    args = parser.parse_args(argv)
    run_demo(args.size, args.seed)


if __name__ == "__main__":
    main()
