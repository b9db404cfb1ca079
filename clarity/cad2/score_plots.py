"""Picture of a run's HAAQI scores: per pair and ear, by hearing loss and by ensemble size.

``plot_scores`` draws three panels into one PNG (a matplotlib ``Figure`` on the Agg canvas: no
display and no pyplot state needed):

1. every scene-listener pair: the left- and right-ear HAAQI (triangles) and their average (bar,
   coloured by the listener's hearing-loss severity), pairs grouped by severity; the passthrough
   (lower) and oracle (upper) bounds of the same pair are short horizontal lines where computed;
2. the mean average HAAQI per severity group, with the bounds' means;
3. the mean average HAAQI per number of instruments in the scene's song, with the bounds' means.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from clarity.cad2.scores import SCORES_COLUMNS
from clarity.utils.flac_encoder import write_atomically

SEVERITY_ORDER = ("no loss", "mild", "moderate", "moderately severe", "severe", "profound")
BOUND_STYLES = {  # bound name -> (colour, line style, label)
    "passthrough": ("0.35", "--", "passthrough (no separation)"),
    "oracle": ("tab:green", "-", "oracle (true stems)"),
}
PLOT_FILE = "scores.png"
PAIR_PANEL_TOP = 1.12  # room above HAAQI = 1 for group labels and legends


def _check_scores(scores: pd.DataFrame, what: str) -> None:
    missing = [column for column in SCORES_COLUMNS if column not in scores.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {missing}; expected {list(SCORES_COLUMNS)}")
    if scores.empty:
        raise ValueError(f"{what}: no rows to plot")


def _severity_rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else len(SEVERITY_ORDER)


def _annotate(
    scores: pd.DataFrame,
    listener_severity: Mapping[str, str],
    scene_instrument_counts: Mapping[str, int],
    what: str,
) -> pd.DataFrame:
    """Add ``severity`` and ``instruments`` columns; ValueError naming ids without them."""
    unknown_listeners = sorted(set(scores["listener"]) - set(listener_severity))
    if unknown_listeners:
        raise ValueError(f"{what}: listener_severity has no entry for {unknown_listeners}")
    unknown_scenes = sorted(set(scores["scene"]) - set(scene_instrument_counts))
    if unknown_scenes:
        raise ValueError(f"{what}: scene_instrument_counts has no entry for {unknown_scenes}")
    annotated = scores.copy()
    annotated["severity"] = annotated["listener"].map(listener_severity)
    annotated["instruments"] = annotated["scene"].map(scene_instrument_counts).astype(int)
    return annotated


def _pair_panel(
    axis, system: pd.DataFrame, bounds: Mapping[str, pd.DataFrame], colours: Mapping[str, tuple]
) -> None:
    ordered = system.assign(rank=system["severity"].map(_severity_rank)).sort_values(
        ["rank", "scene", "listener"], kind="stable"
    )
    x = np.arange(len(ordered))
    axis.bar(
        x,
        ordered["avg_haaqi"],
        width=0.7,
        color=[colours[s] for s in ordered["severity"]],
        alpha=0.55,
        edgecolor="none",
    )
    axis.scatter(
        x - 0.15, ordered["left_haaqi"], marker="<", s=22, color="black", zorder=3, label="left ear"
    )
    axis.scatter(
        x + 0.15,
        ordered["right_haaqi"],
        marker=">",
        s=22,
        color="0.45",
        zorder=3,
        label="right ear",
    )
    keys = list(zip(ordered["scene"], ordered["listener"], strict=True))
    for name, frame in bounds.items():
        colour, style, label = BOUND_STYLES.get(name, ("tab:purple", ":", name))
        lookup = {
            (s, lst): v
            for s, lst, v in zip(frame["scene"], frame["listener"], frame["avg_haaqi"], strict=True)
        }
        values = np.array([lookup.get(key, np.nan) for key in keys], dtype=float)
        shown = ~np.isnan(values)
        axis.hlines(
            values[shown],
            x[shown] - 0.42,
            x[shown] + 0.42,
            colors=colour,
            linestyles=style,
            linewidth=1.8,
            label=label,
            zorder=4,
        )
    axis.set_xticks(x)
    axis.set_xticklabels(
        [
            f"{s}\n{lst}\n{n} inst."
            for (s, lst), n in zip(keys, ordered["instruments"], strict=True)
        ],
        fontsize=7,
    )
    axis.set_xlim(-0.6, len(ordered) - 0.4)
    axis.set_ylim(0.0, PAIR_PANEL_TOP)
    axis.set_yticks(np.linspace(0.0, 1.0, 6))
    axis.set_ylabel("HAAQI")
    axis.set_title("Every scene-listener pair (bar: mean of the two ears)", pad=24)
    axis.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=8, ncol=4, frameon=False)
    # severity groups: a label over each, a dotted line between them
    severity = ordered["severity"].to_numpy()
    for start in np.flatnonzero(severity[1:] != severity[:-1]) + 1:
        axis.axvline(start - 0.5, color="0.6", linestyle=":", linewidth=1.0)
    for group in dict.fromkeys(severity):
        positions = x[severity == group]
        axis.text(
            positions.mean(),
            1.04,
            f"{group} (n={positions.size})",
            ha="center",
            va="bottom",
            fontsize=9,
            color=colours[group],
            fontweight="bold",
        )


def _group_panel(
    axis,
    system: pd.DataFrame,
    bounds: Mapping[str, pd.DataFrame],
    column: str,
    order: list,
    colours: list,
    title: str,
    xlabel: str,
) -> None:
    means = system.groupby(column)["avg_haaqi"].mean().reindex(order)
    counts = system.groupby(column)["avg_haaqi"].size().reindex(order)
    x = np.arange(len(order))
    axis.bar(x, means.to_numpy(), width=0.6, color=colours, alpha=0.75)
    for name, frame in bounds.items():
        colour, style, label = BOUND_STYLES.get(name, ("tab:purple", ":", name))
        bound_means = frame.groupby(column)["avg_haaqi"].mean().reindex(order).to_numpy()
        shown = ~np.isnan(bound_means)
        axis.hlines(
            bound_means[shown],
            x[shown] - 0.38,
            x[shown] + 0.38,
            colors=colour,
            linestyles=style,
            linewidth=2.0,
            label=label,
        )
    for position, mean in zip(x, means.to_numpy(), strict=True):
        if np.isfinite(mean):
            axis.text(position, mean / 2, f"{mean:.3f}", ha="center", va="center", fontsize=8)
    axis.set_xticks(x)
    axis.set_xticklabels(
        [f"{g}\n(n={int(c)})" for g, c in zip(order, counts, strict=True)], fontsize=8
    )
    axis.set_xlabel(xlabel)
    axis.set_ylabel("mean HAAQI (both ears)")
    axis.set_title(title)
    axis.set_ylim(0.0, PAIR_PANEL_TOP)
    axis.set_yticks(np.linspace(0.0, 1.0, 6))
    if bounds:
        axis.legend(loc="upper center", fontsize=8, ncol=2, frameon=False)


def plot_scores(
    scores: pd.DataFrame,
    output_path: str | Path,
    listener_severity: Mapping[str, str],
    scene_instrument_counts: Mapping[str, int],
    bounds: Mapping[str, pd.DataFrame] | None = None,
) -> Path:
    """Draw a run's HAAQI scores (see the module docstring) and save them as a PNG, atomically.

    Args:
        scores: one row per scene-listener pair, columns ``scene``, ``song``, ``listener``,
            ``left_haaqi``, ``right_haaqi``, ``avg_haaqi`` (the recipe's ``scores.csv``).
        output_path: the PNG to write, or a folder to write ``scores.png`` in.
        listener_severity: listener id -> hearing-loss grade, e.g. ``"mild"``, ``"moderate"``
            (WHO grades are ordered from no loss to profound; other labels come last).
        scene_instrument_counts: scene id -> number of instruments in its song.
        bounds: optional reference runs on the same pairs, e.g. ``{"passthrough": df,
            "oracle": df}`` with the same columns; pairs they lack are simply not drawn.

    Returns:
        The path of the PNG written.

    Raises:
        ValueError: a frame misses a column or has no rows, or a listener / scene has no
            severity / instrument count.
    """
    _check_scores(scores, "scores")
    bounds = dict(bounds or {})
    for name, frame in bounds.items():
        _check_scores(frame, f"bounds[{name!r}]")
    system = _annotate(scores, listener_severity, scene_instrument_counts, "scores")
    annotated_bounds = {
        name: _annotate(
            frame[
                frame["scene"].isin(system["scene"]) & frame["listener"].isin(system["listener"])
            ],
            listener_severity,
            scene_instrument_counts,
            f"bounds[{name!r}]",
        )
        for name, frame in bounds.items()
    }

    severities = sorted(system["severity"].unique(), key=lambda s: (_severity_rank(s), s))
    palette = matplotlib.colormaps["viridis_r"](np.linspace(0.3, 0.95, max(len(severities), 2)))
    colours = {severity: tuple(palette[k]) for k, severity in enumerate(severities)}
    instrument_counts = sorted(system["instruments"].unique())

    figure = Figure(figsize=(max(10.0, 0.55 * len(system) + 4.0), 9.0), layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(2, 2, height_ratios=(1.15, 1.0))
    _pair_panel(figure.add_subplot(grid[0, :]), system, annotated_bounds, colours)
    _group_panel(
        figure.add_subplot(grid[1, 0]),
        system,
        annotated_bounds,
        "severity",
        severities,
        [colours[s] for s in severities],
        "By hearing-loss severity of the listener",
        "hearing-loss severity",
    )
    _group_panel(
        figure.add_subplot(grid[1, 1]),
        system,
        annotated_bounds,
        "instruments",
        instrument_counts,
        ["tab:blue"] * len(instrument_counts),
        "By number of instruments in the mixture",
        "instruments",
    )
    for axis in figure.axes:
        axis.grid(axis="y", alpha=0.3)
    figure.suptitle(
        f"HAAQI of {len(system)} scene-listener pairs, mean {system['avg_haaqi'].mean():.3f}",
        fontsize=12,
    )

    output_path = Path(output_path)
    if output_path.is_dir() or output_path.suffix.lower() != ".png":
        output_path = output_path / PLOT_FILE
    output_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(
        output_path, lambda temporary: figure.savefig(temporary, format="png", dpi=110)
    )
    return output_path
