"""The whole recipe on the embedded demo data, with no download (``make demo``).

    python baseline/run_demo.py [--size small|tiny] [--seed 0] [--train]

Steps: render the demo dataset (``clarity.demo.dataset``; the training split only with
``--train``); take the demo models shipped with
the project (``clarity.demo.models.SHIPPED_MODELS``, one per instrument, checked against the
dataset's rendering version) or, with ``--train``, train one small Conv-TasNet per instrument of
the validation split for a few minutes each (``clarity.demo.models``); then run ``enhance.py`` and
``evaluate.py`` beside this script (as subprocesses, with Hydra overrides) on the validation
scenes for the passthrough, oracle and ConvTasNet separators, and print the mean HAAQI of each.
The ConvTasNet row Wiener-filters the models' estimates (``separator.wiener_filter=true``,
``CONVTASNET_OVERRIDES``), which the challenge baseline does not; docs/demo.md gives both.
Each evaluation writes its listening report, ``<exp folder>/report.html``, with the references
saved beside the scores so that every row can be listened to.

The folders are those of ``clarity.demo.layout`` under the folder this script is started from.
A rerun reuses the data, models, enhanced signals and scores that exist; what depends on songs
rendered or models trained in this run is redone.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from clarity.demo.dataset import make_dataset
from clarity.demo.layout import (
    BOUNDS,
    CONVTASNET_OVERRIDES,
    SYSTEMS,
    DemoPaths,
    demo_paths,
    summary_table,
)
from clarity.demo.models import (
    CAUSALITY,
    MANIFEST_FILE,
    SHIPPED_MODELS,
    check_shipped_models,
    train_demo_models,
)
from clarity.demo.songs import SIZES
from clarity.utils.flac_encoder import write_atomically

RECIPE = Path(__file__).resolve().parent
SCORING_WORKERS = 2
CONVTASNET_RUN_FILE = "demo_run.json"  # the models and overrides of the scores in exp/


def run_recipe(
    script: str, system: str, paths: DemoPaths, models: Path, redo: bool
) -> None:
    """Run ``<script>.py`` (beside this file) for one separator with the demo's paths.

    Raises:
        subprocess.CalledProcessError: if it fails.
    """
    overrides = [
        f"separator.type={system}",
        f"separator.causality={CAUSALITY}",
        f"path.root={paths.root}",
        f"separator.checkpoint_dir={models}",
        f"path.exp_folder={paths.exp_folder(system)}",
        f"overwrite={'true' if redo else 'false'}",
    ]
    if system == "convtasnet":
        overrides += CONVTASNET_OVERRIDES
    if script == "evaluate":
        overrides += [
            f"evaluate.num_workers={SCORING_WORKERS}",
            "evaluate.save_references=true",
            *(f"evaluate.plot_bounds.{bound}={paths.exp_folder(bound)}" for bound in BOUNDS),
        ]
    program = RECIPE / f"{script}.py"
    subprocess.run([sys.executable, str(program), *overrides], cwd=paths.workspace, check=True)


def run_demo(
    size: str = "small", seed: int = 0, workspace: Path | None = None, train: bool = False
) -> str:
    """Build the demo data (and models with ``train``), enhance and evaluate the three systems.

    Args:
        size: "small" or "tiny".
        seed: dataset and training seed.
        workspace: folder of ``demo_data/`` and ``exp/``; default: the current folder.
        train: train models for a few minutes each instead of using the shipped ones.

    Returns:
        The summary table (also printed), followed by the time each stage took.
    """
    paths = demo_paths(size, Path.cwd() if workspace is None else workspace)
    times: dict[str, float] = {}
    began = time.perf_counter()
    # the shipped models need only the validation audio; training needs both splits
    splits = ("train", "valid") if train else ("valid",)
    dataset = make_dataset(paths.root, size, seed, splits=splits)
    times["dataset"] = time.perf_counter() - began

    began = time.perf_counter()
    if train:
        models_dir = paths.models
        train_demo_models(paths.root, models_dir, size, seed)
    else:
        models_dir = check_shipped_models(paths.root)
    # models trained in this run have a new manifest, so this covers them as well
    convtasnet_changed = _convtasnet_run_changed(paths.exp_folder("convtasnet"), models_dir)
    times["models"] = time.perf_counter() - began

    for system in SYSTEMS:
        redo = dataset.rendered > 0 or (system == "convtasnet" and convtasnet_changed)
        for script in ("enhance", "evaluate"):
            began = time.perf_counter()
            run_recipe(script, system, paths, models_dir, redo)
            times[f"{script} {system}"] = time.perf_counter() - began

    _remember_convtasnet_run(paths.exp_folder("convtasnet"), models_dir)
    table = summary_table(paths)
    timing = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in times.items())
    total = sum(times.values())
    text = f"{table}\n\ntimes: {timing}; total {total:.0f} s ({total / 60:.1f} min)"
    print(f"\nDemo ({size}) mean HAAQI on the validation scenes:\n{text}")
    convtasnet = paths.exp_folder("convtasnet")
    print(f"Plots: {convtasnet / 'scores.png'}; listening report: {convtasnet / 'report.html'}")
    return text


def _convtasnet_run(models_dir: Path) -> dict:
    """The demo's ConvTasNet run: the manifest of the models and the overrides it uses."""
    manifest = json.loads((models_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    return {"models": manifest, "overrides": list(CONVTASNET_OVERRIDES)}


def _convtasnet_run_changed(exp_folder: Path, models_dir: Path) -> bool:
    """Whether ``exp_folder`` was last enhanced and scored with other models (by their
    manifests) or other overrides than this run's, so that its ConvTasNet pairs must be redone."""
    seen = exp_folder / CONVTASNET_RUN_FILE
    if not seen.is_file():
        return True
    return json.loads(seen.read_text(encoding="utf-8")) != _convtasnet_run(models_dir)


def _remember_convtasnet_run(exp_folder: Path, models_dir: Path) -> None:
    """Record in ``exp_folder`` the models and overrides its scores were made with."""
    text = json.dumps(_convtasnet_run(models_dir), indent=2, sort_keys=True) + "\n"
    write_atomically(exp_folder / CONVTASNET_RUN_FILE, lambda temporary: temporary.write_text(text))


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and run the demo."""
    parser = argparse.ArgumentParser(description="Run the CAD2 Task 2 recipe on the demo data.")
    parser.add_argument("--size", choices=SIZES, default="small", help="demo size (%(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="data and training seed (%(default)s)")
    parser.add_argument(
        "--train", action="store_true",
        help=f"train models for a few minutes each instead of using those in {SHIPPED_MODELS}",
    )  # fmt: skip
    args = parser.parse_args(argv)
    run_demo(args.size, args.seed, train=args.train)


if __name__ == "__main__":
    main()
