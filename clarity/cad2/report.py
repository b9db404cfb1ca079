"""The listening report of an evaluated experiment: `<path.exp_folder>/report.html`.

One row per scored scene-listener pair: the gains the scene asks for (dB, per source), the
listener's hearing-loss grade, the left, right and mean HAAQI (and the bounds' mean HAAQI of the
same pair, when their runs exist), and players for the mixture, the enhanced signal and the
reference it was scored against. Columns sort on a click. Every link is relative to the report,
and every file it plays lies in the experiment folder, so the folder can be copied or served as
it is:

    report.html
    report_audio/<scene>_mixture.flac                    the mixture segment (written here)
    enhanced_signals/<split>/<scene>_<listener>_remix.flac   (enhance.py)
    references/<split>/<scene>_<listener>_reference.flac     (evaluate.py, evaluate.save_references)
    scores.png                                           (evaluate.py, evaluate.plot)

All audio is 16-bit FLAC at `remix_sample_rate`, clipped to [-1, 1] as the enhanced signals are.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from omegaconf import DictConfig

from clarity.cad2.audio_io import read_segment
from clarity.cad2.enhance import enhanced_path
from clarity.cad2.metadata import RecipeMetadata, split_of_scene
from clarity.cad2.scores import SCORES_COLUMNS, read_scores
from clarity.utils.flac_encoder import save_flac_signal, write_atomically

REPORT_FILE = "report.html"
MIXTURE_FOLDER = "report_audio"
REFERENCE_FOLDER = "references"

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.5em; vertical-align: middle; }
th.sortable { cursor: pointer; background: #f2f2f2; }
th.sortable:hover { background: #e0e0e0; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
audio { width: 14em; }
"""

# Sorts the rows of the pairs table by the clicked column (numbers as numbers); a second click on
# the same column reverses the order.
_SORT_SCRIPT = """
document.querySelectorAll("#pairs th.sortable").forEach(function (header, column) {
  header.addEventListener("click", function () {
    var body = document.querySelector("#pairs tbody");
    var rows = Array.from(body.rows);
    var descending = header.dataset.order !== "descending";
    rows.sort(function (a, b) {
      var x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
      var order = isNaN(x) || isNaN(y) ? x.localeCompare(y) : Number(x) - Number(y);
      return descending ? -order : order;
    });
    header.dataset.order = descending ? "descending" : "ascending";
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


def reference_path(exp_folder: str | Path, scene_id: str, listener_id: str) -> Path:
    """Where evaluate saves the reference a pair was scored against (`save_references`)."""
    return (
        Path(exp_folder)
        / REFERENCE_FOLDER
        / split_of_scene(scene_id)
        / f"{scene_id}_{listener_id}_reference.flac"
    )


def _mixture_file(config: DictConfig, metadata: RecipeMetadata, scene_id: str) -> Path:
    """The scene's mixture segment as a FLAC in the report folder, written once."""
    path = Path(config.path.exp_folder) / MIXTURE_FOLDER / f"{scene_id}_mixture.flac"
    if not path.is_file():
        mixture = metadata.song_of(scene_id).mixture
        signal = read_segment(
            Path(config.path.music_dir) / mixture.track,
            config.input_sample_rate,
            mixture.start,
            mixture.duration,
        )
        save_flac_signal(
            signal=signal,
            filename=path,
            signal_sample_rate=config.input_sample_rate,
            output_sample_rate=config.remix_sample_rate,
            do_clip_signal=True,
        )
    return path


def _player(path: Path, folder: Path) -> str:
    if not path.is_file():
        return "<td>not saved</td>"
    link = html.escape(Path(os.path.relpath(path, folder)).as_posix())
    return f'<td><audio controls preload="metadata" src="{link}"></audio></td>'


def _number_cell(value: float | None) -> str:
    if value is None:
        return '<td class="number" data-value="-1">-</td>'
    return f'<td class="number" data-value="{value:.6f}">{value:.4f}</td>'


def _text_cell(text: str) -> str:
    escaped = html.escape(text)
    return f'<td data-value="{escaped}">{escaped}</td>'


def _average(row: list[str]) -> float:
    """The mean-HAAQI column of a scores row."""
    return float(row[SCORES_COLUMNS.index("avg_haaqi")])


def _summary_row(system: str, scores: list[float]) -> str:
    mean = sum(scores) / len(scores) if scores else None
    return f"<tr><td>{html.escape(system)}</td>{_number_cell(mean)}<td>{len(scores)}</td></tr>"


def _bound_scores(config: DictConfig, scores_name: str, exp_folder: Path) -> dict[str, dict]:
    """Bound name -> {(scene, listener): mean HAAQI} for the bound runs whose file exists."""
    bounds = {}
    for name, folder in config.evaluate.plot_bounds.items():
        path = Path(folder) / scores_name
        if path.is_file() and path.resolve() != (exp_folder / scores_name).resolve():
            scored = read_scores(path)
            bounds[name] = dict(zip(scored.pairs, map(_average, scored.rows), strict=True))
    return bounds


def write_report(
    config: DictConfig, metadata: RecipeMetadata, scores_file: str | Path
) -> Path:
    """Write `report.html` (see the module docstring) for the rows of `scores_file`.

    Args:
        config: the recipe config (paths, sample rates, `evaluate.plot_bounds`).
        metadata: the recipe metadata the scores were computed from.
        scores_file: the run's scores CSV, in `path.exp_folder`.

    Returns:
        The report's path.
    """
    from clarity.cad2.evaluate import listener_severity
    from clarity.cad2.experiment import separator_identity

    exp_folder = Path(config.path.exp_folder)
    scores_file = Path(scores_file)
    scored = read_scores(scores_file)
    bounds = _bound_scores(config, scores_file.name, exp_folder)
    headers = ["scene", "song", "listener", "hearing loss", "gains (dB)", "left HAAQI",
               "right HAAQI", "mean HAAQI", *(f"{name} mean" for name in bounds)]  # fmt: skip
    rows = []
    for (scene_id, listener_id), row in zip(scored.pairs, scored.rows, strict=True):
        song = metadata.song_of(scene_id)
        gains = ", ".join(
            f"{song.sources[source].instrument} {gain:+g}"
            for source, gain in metadata.gains_of(scene_id).items()
        )
        cells = [
            _text_cell(scene_id),
            _text_cell(song.name),
            _text_cell(listener_id),
            _text_cell(listener_severity(metadata.listeners[listener_id])),
            _text_cell(gains),
            *(_number_cell(float(value)) for value in row[3:6]),
            *(_number_cell(pairs.get((scene_id, listener_id))) for pairs in bounds.values()),
            _player(_mixture_file(config, metadata, scene_id), exp_folder),
            _player(enhanced_path(exp_folder, scene_id, listener_id), exp_folder),
            _player(reference_path(exp_folder, scene_id, listener_id), exp_folder),
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    summary = [_summary_row(f"{exp_folder.name} (this run)", list(map(_average, scored.rows)))]
    summary += [_summary_row(name, list(pairs.values())) for name, pairs in bounds.items()]
    plot = scores_file.with_suffix(".png")
    picture = (
        f'<p><img src="{html.escape(plot.name)}" alt="HAAQI scores" width="900"></p>'
        if plot.is_file()
        else ""
    )
    separator = ", ".join(f"{key} {value}" for key, value in separator_identity(config).items())
    header_cells = "".join(f'<th class="sortable">{html.escape(h)}</th>' for h in headers)
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>HAAQI listening report: {html.escape(exp_folder.name)}</title>
<link rel="icon" href="data:,">
<style>{_STYLE}</style>
</head>
<body>
<h1>HAAQI listening report</h1>
<p>{html.escape(str(scores_file.name))}: {len(scored.rows)} scene-listener pair(s). Click a column
title to sort. Audio: 16-bit FLAC at {config.remix_sample_rate} Hz, clipped to [-1, 1].</p>
<p>Separator: {html.escape(separator)}.</p>
<table id="summary">
<thead><tr><th>system</th><th>mean HAAQI</th><th>pairs</th></tr></thead>
<tbody>{"".join(summary)}</tbody>
</table>
{picture}
<table id="pairs">
<thead><tr>{header_cells}<th>mixture</th><th>enhanced</th><th>reference</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
<script>{_SORT_SCRIPT}</script>
</body>
</html>
"""
    path = exp_folder / REPORT_FILE
    write_atomically(path, lambda temporary: temporary.write_text(page, encoding="utf-8"))
    return path


def run_report(config: DictConfig) -> Path:
    """Write the report of the scores file of this config's batch (`baseline/report.py`).

    Raises:
        ValueError: the scores file does not exist (run evaluate.py first).
    """
    from clarity.cad2.evaluate import scores_path
    from clarity.cad2.metadata import load_recipe_metadata

    path = scores_path(config)
    if not path.is_file():
        raise ValueError(f"scores file {path} not found: run baseline/evaluate.py first")
    return write_report(config, load_recipe_metadata(config.path), path)
