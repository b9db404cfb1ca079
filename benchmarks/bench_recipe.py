"""Evaluate from a fresh process: this project's baseline/evaluate.py against the official one.

    python benchmarks/bench_recipe.py [--duration 3 15] [--repeats 2]
        [--official-python $PYCLARITY_PYTHON] [--official-recipe $CLARITY_RECIPES]

For each `--duration` (seconds per pair; default 3 and 15, the challenge's segment length) it
writes the miniature dataset (3 scene-listener pairs), makes the enhanced FLACs with this
project's enhance (oracle separator: no model) in the official layout
(`<exp>/enhanced_signals/valid/<scene>_<listener>_remix.flac`), then times, each in a fresh
process started by this script, on the same FLACs:

- ours, first run: `baseline/evaluate.py` with an empty numba cache (`NUMBA_CACHE_DIR` is a new
  folder), so every kernel compiles;
- ours, later runs (best of `--repeats`): the kernels load from that cache;
- ours with `evaluate.num_workers=2` (cached kernels), to compare with one worker;
- ours, start-up: the interpreter importing what `baseline/evaluate.py` imports;
- ours, first score: a run that scores one pair (`evaluate.batch_size=3 evaluate.batch=0`);
- official: `recipes/cad2/task2/baseline/evaluate.py`, unmodified, run by `--official-python`
  (a virtual environment with pyclarity 0.9.0) with `PYTHONPATH=--official-recipe` (a folder
  holding `recipes/cad2/task2`) from a temporary working folder; its config.yaml is the
  official one, the dataset and experiment folders are Hydra overrides. Without an official
  Python the comparison is skipped, saying so.

It prints the wall and CPU times (CPU: of the process and its workers; steadier than the wall
time when other jobs share the machine), the ratios official / ours, how much slower our first
run is, and the largest difference between the two scores files (they agree to about 1e-9).
Our timed runs draw no plot and write no report (`evaluate.plot=false evaluate.report=false`)
because the official script does neither; one more run with the config's defaults is timed
apart. The dataset is written without margins around the segments (`margin=0`) because the
official evaluate.py scores the whole source tracks where this project cuts them to the
mixture's segment.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from clarity.utils.machine import cpu_description

REPO_ROOT = Path(__file__).resolve().parent.parent
OUR_EVALUATE = REPO_ROOT / "baseline" / "evaluate.py"
OUR_ENHANCE = REPO_ROOT / "baseline" / "enhance.py"
OFFICIAL_EVALUATE = Path("recipes") / "cad2" / "task2" / "baseline" / "evaluate.py"
SCORE_COLUMNS = ("left_haaqi", "right_haaqi", "avg_haaqi")
PAIRS = 3  # pairs of the miniature dataset
AGREEMENT = 1e-9
# What the official evaluate.py does not do: no score plot, no listening report.
OFFICIAL_WORK = ("evaluate.plot=false", "++evaluate.report=false")


@dataclass
class Run:
    """A finished fresh-process run.

    Attributes:
        seconds: wall time.
        cpu_seconds: user + system CPU time of the process and the processes it waited for
            (its workers); less sensitive than the wall time to other jobs on the machine.
        output: what it printed.
    """

    seconds: float
    cpu_seconds: float
    output: str


def run_fresh(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> Run:
    """Run a command in a new process, time it, keep its output in `log`; stop on failure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    output = result.stdout + result.stderr
    log.write_text(output, encoding="utf-8")
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited with {result.returncode}; last output:\n{output[-3000:]}"
        )
    return Run(seconds, cpu_seconds, output)


def read_scores(path: Path) -> dict[tuple[str, str], dict[str, float]]:
    """(scene, listener) -> HAAQI columns of a scores file."""
    with path.open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    return {
        (row["scene"], row["listener"]): {column: float(row[column]) for column in SCORE_COLUMNS}
        for row in rows
    }


def largest_difference(ours: Path, official: Path) -> tuple[float, str]:
    """Largest |ours - official| over the score columns and pairs, and where it is."""
    mine, theirs = read_scores(ours), read_scores(official)
    if set(mine) != set(theirs):
        raise RuntimeError(f"the scores files hold other pairs: {sorted(mine)} != {sorted(theirs)}")
    worst, where = -1.0, ""
    for pair, row in mine.items():
        for column in SCORE_COLUMNS:
            difference = abs(row[column] - theirs[pair][column])
            if difference > worst:
                worst, where = difference, f"{column} of scene {pair[0]} listener {pair[1]}"
    return worst, where


def show(label: str, run: Run, note: str = "") -> None:
    print(f"  {label:<50} {run.seconds:7.2f} s (CPU {run.cpu_seconds:6.2f} s)  {note}".rstrip())


def ours_overrides(root: Path, exp: Path, *extra: str) -> list[str]:
    return [
        f"path.root={root}",
        f"path.exp_folder={exp}",
        "separator.type=oracle",
        "overwrite=true",
        *extra,
    ]


def official_version(python: str) -> str:
    result = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('pyclarity'))"],
        cwd=tempfile.gettempdir(), capture_output=True, text=True, check=False,
    )
    return result.stdout.strip() or "unknown version"


def bench_duration(
    duration: float, folder: Path, repeats: int, official_python: str | None,
    official_recipe: Path | None,
) -> None:
    """Time and compare one pair length (see the module docstring)."""
    from clarity.cad2.testing import write_mini_dataset

    root = write_mini_dataset(folder / "cad2", duration=duration, margin=0.0)
    exp = folder / "exp"
    logs = folder / "logs"
    logs.mkdir()
    env = {**os.environ, "NUMBA_CACHE_DIR": str(folder / "numba-cache"), "HYDRA_FULL_ERROR": "1"}
    run_fresh(
        [sys.executable, str(OUR_ENHANCE), *ours_overrides(root, exp)], REPO_ROOT, env,
        logs / "enhance.log",
    )

    defaults = [sys.executable, str(OUR_EVALUATE), *ours_overrides(root, exp)]
    evaluate = [*defaults, *OFFICIAL_WORK]
    first = run_fresh(evaluate, REPO_ROOT, env, logs / "ours-1.log")
    later = min(
        (run_fresh(evaluate, REPO_ROOT, env, logs / f"ours-{n + 2}.log") for n in range(repeats)),
        key=lambda run: run.seconds,
    )
    scores = folder / "scores_ours.csv"
    scores.write_bytes((exp / "scores.csv").read_bytes())
    two_workers = run_fresh(
        [*evaluate, "evaluate.num_workers=2"], REPO_ROOT, env, logs / "ours-2-workers.log"
    )
    with_outputs = run_fresh(defaults, REPO_ROOT, env, logs / "ours-defaults.log")
    startup = run_fresh(
        [sys.executable, "-c", "import hydra, omegaconf, clarity.cad2.evaluate"], REPO_ROOT,
        env, logs / "imports.log",
    )
    one_pair = run_fresh(
        [*evaluate, "evaluate.batch_size=3", "evaluate.batch=0"], REPO_ROOT, env,
        logs / "ours-one-pair.log",
    )

    print(f"\n{duration:g} s pairs, {PAIRS} pairs, each run a fresh process (wall, CPU):")
    show("ours, first run (empty numba cache: compiles)", first,
         f"x{first.seconds / later.seconds:.2f} the wall time of a later run")
    show(f"ours, later runs (cached kernels, best of {repeats})", later)
    show("ours, evaluate.num_workers=2", two_workers,
         f"x{later.seconds / two_workers.seconds:.2f} the speed of 1 worker")
    show("ours, config defaults (plot and report drawn too)", with_outputs)
    show("ours, start-up (interpreter + imports)", startup)
    show("ours, to the first score (1 pair)", one_pair)

    if official_python is None or official_recipe is None:
        print("  official: skipped (give --official-python / $PYCLARITY_PYTHON and "
              "--official-recipe / $CLARITY_RECIPES)")
        return
    official_exp = folder / "official_exp"
    official_exp.mkdir()
    (official_exp / "enhanced_signals").symlink_to(exp / "enhanced_signals")
    workdir = folder / "official_cwd"
    workdir.mkdir()
    official_env = {
        name: value for name, value in os.environ.items()
        if name not in ("PYTHONPATH", "VIRTUAL_ENV", "NUMBA_CACHE_DIR")
    }
    official_env["PYTHONPATH"] = str(official_recipe)
    official = run_fresh(
        [official_python, str(official_recipe / OFFICIAL_EVALUATE),
         f"path.root={root}", f"path.exp_folder={official_exp}"],
        workdir, official_env, logs / "official.log",
    )
    difference, where = largest_difference(scores, official_exp / "scores.csv")
    show(f"official (pyclarity {official_version(official_python)})", official)
    print(f"  official / ours, wall: x{official.seconds / later.seconds:.1f} (later runs), "
          f"x{official.seconds / first.seconds:.1f} (first run); CPU: "
          f"x{official.cpu_seconds / later.cpu_seconds:.1f} (later runs)")
    verdict = "agree" if difference <= AGREEMENT else f"DIFFER by more than {AGREEMENT:g}"
    print(f"  largest score difference {difference:.2e} ({where}): {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, nargs="+", default=[3.0, 15.0],
                        help="seconds per pair, one benchmark each (default: 3 15)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="later runs of ours (the best is kept)")
    parser.add_argument("--official-python", default=os.environ.get("PYCLARITY_PYTHON"),
                        help="Python of a virtual environment with pyclarity 0.9.0")
    parser.add_argument("--official-recipe", type=Path,
                        default=os.environ.get("CLARITY_RECIPES"),
                        help="folder holding recipes/cad2/task2 of the official toolkit")
    args = parser.parse_args()
    recipe = Path(args.official_recipe) if args.official_recipe else None
    if recipe is not None and not (recipe / OFFICIAL_EVALUATE).is_file():
        parser.error(f"{recipe / OFFICIAL_EVALUATE} not found")

    from clarity.utils.threads import usable_cpus

    print(f"CPU: {cpu_description()}; {usable_cpus()} usable CPU(s)")
    for duration in args.duration:
        with tempfile.TemporaryDirectory(prefix="bench_recipe_") as folder:
            bench_duration(duration, Path(folder), args.repeats, args.official_python, recipe)


if __name__ == "__main__":
    main()
