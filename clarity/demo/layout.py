"""Where the demo keeps its dataset, models and experiment folders, and its summary table.

The demo itself is driven by ``baseline/run_demo.py`` (``make demo``), beside the recipe scripts
it runs. The small (default) size uses the recipe's default paths under the workspace (the
folder the scripts run from): ``demo_data/cad2``, ``demo_data/models``, ``exp`` and
``exp/<bound>_noncausal``, so ``python baseline/enhance.py`` and ``python baseline/evaluate.py``
run on it afterwards with no arguments but ``separator.wiener_filter=true`` (the demo's ConvTasNet
system; without it they refuse ``exp``, which holds Wiener-filtered outputs, and take another
``path.exp_folder``). The tiny size (for CI) lives in ``demo_data/tiny/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clarity.cad2.experiment import default_exp_folder
from clarity.cad2.scores import mean_scores
from clarity.demo.models import CAUSALITY

BOUNDS = ("passthrough", "oracle")
SYSTEMS = (*BOUNDS, "convtasnet")  # bounds first: every plot shows them
# The demo's ConvTasNet system beyond the baseline: estimates re-made by Wiener masks of the
# mixture, which the small demo models need to score above passthrough (docs/demo.md, Results),
# and the name the summary gives it.
CONVTASNET_OVERRIDES = ("separator.wiener_filter=true",)
LABELS = {"convtasnet": "convtasnet+wiener"}


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


def demo_paths(size: str, workspace: Path) -> DemoPaths:
    """Paths of a demo size under ``workspace``: the recipe's defaults for "small",
    ``demo_data/tiny/`` for "tiny"."""
    workspace = Path(workspace)
    if size == "small":
        return DemoPaths(
            workspace / "demo_data" / "cad2", workspace / "demo_data" / "models", workspace
        )
    base = workspace / "demo_data" / size
    return DemoPaths(base / "cad2", base / "models", base)


def summary_table(paths: DemoPaths) -> str:
    """Mean left, right and average HAAQI of each system, as a text table."""
    lines = [f"{'system':<18} {'pairs':>5} {'left':>7} {'right':>7} {'mean HAAQI':>10}"]
    for system in SYSTEMS:
        label = LABELS.get(system, system)
        scores_file = paths.exp_folder(system) / "scores.csv"
        if not scores_file.is_file():
            lines.append(f"{label:<18} {'-':>5} (no scores: {scores_file} missing)")
            continue
        means = mean_scores(scores_file)
        with scores_file.open(encoding="utf-8") as file:
            pairs = sum(1 for _ in file) - 1
        lines.append(
            f"{label:<18} {pairs:>5} {means['left_haaqi']:>7.4f} {means['right_haaqi']:>7.4f} "
            f"{means['avg_haaqi']:>10.4f}"
        )
    return "\n".join(lines)
