"""The whole recipe on the embedded demo data, with no download (``make demo``).

    python baseline/run_demo.py [--size small|tiny] [--seed 0]

Steps: render the demo dataset (``clarity.demo.dataset``), train one small Conv-TasNet per
instrument of the validation split (``clarity.demo.models``), then run ``enhance.py`` and
``evaluate.py`` beside this script (as subprocesses, with Hydra overrides) on the validation
scenes for the passthrough, oracle and ConvTasNet separators, and print the mean HAAQI of each.
Each evaluation writes its listening report, ``<exp folder>/report.html``, with the references
saved beside the scores so that every row can be listened to.

The folders are those of ``clarity.demo.layout`` under the folder this script is started from.
A rerun reuses the data, models, enhanced signals and scores that exist; what depends on songs
rendered or models trained in this run is redone.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from clarity.demo.dataset import make_dataset
from clarity.demo.layout import BOUNDS, SYSTEMS, DemoPaths, demo_paths, summary_table
from clarity.demo.models import CAUSALITY, train_demo_models
from clarity.demo.songs import SIZES

RECIPE = Path(__file__).resolve().parent
SCORING_WORKERS = 2


def run_recipe(script: str, system: str, paths: DemoPaths, redo: bool) -> None:
    """Run ``<script>.py`` (beside this file) for one separator with the demo's paths.

    Raises:
        subprocess.CalledProcessError: if it fails.
    """
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
            "evaluate.save_references=true",
            *(f"evaluate.plot_bounds.{bound}={paths.exp_folder(bound)}" for bound in BOUNDS),
        ]
    program = RECIPE / f"{script}.py"
    subprocess.run([sys.executable, str(program), *overrides], cwd=paths.workspace, check=True)


def run_demo(size: str = "small", seed: int = 0, workspace: Path | None = None) -> str:
    """Build the demo data and models, enhance and evaluate the three systems.

    Args:
        size: "small" or "tiny".
        seed: dataset and training seed.
        workspace: folder of ``demo_data/`` and ``exp/``; default: the current folder.

    Returns:
        The summary table (also printed), followed by the time each stage took.
    """
    paths = demo_paths(size, Path.cwd() if workspace is None else workspace)
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

    table = summary_table(paths)
    timing = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in times.items())
    total = sum(times.values())
    text = f"{table}\n\ntimes: {timing}; total {total:.0f} s ({total / 60:.1f} min)"
    print(f"\nDemo ({size}) mean HAAQI on the validation scenes:\n{text}")
    convtasnet = paths.exp_folder("convtasnet")
    print(f"Plots: {convtasnet / 'scores.png'}; listening report: {convtasnet / 'report.html'}")
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
