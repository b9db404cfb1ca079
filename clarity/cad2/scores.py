"""The scores CSV: open it for resuming, merge the batch files, summarise."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import pandas as pd

from clarity.cad2.batching import scores_file_name
from clarity.utils.flac_encoder import write_atomically
from clarity.utils.results_support import ResultsFile

SCORES_COLUMNS = ["scene", "song", "listener", "left_haaqi", "right_haaqi", "avg_haaqi"]
SCORE_COLUMNS = ("left_haaqi", "right_haaqi", "avg_haaqi")

logger = logging.getLogger(__name__)


def _complete_rows(path: Path) -> tuple[list[list[str]], bool]:
    """Rows of a scores file with every column present and numeric scores; and whether it
    held other rows (e.g. one cut short by an interrupted run).

    Raises:
        ValueError: the file's header is not `SCORES_COLUMNS`.
    """
    with path.open("r", encoding="utf-8", newline="") as file:
        rows = list(csv.reader(file))
    if not rows:
        return [], False
    if rows[0] != SCORES_COLUMNS:
        raise ValueError(
            f"{path}: header {rows[0]}, expected {SCORES_COLUMNS}; move the file away or pass "
            "overwrite=true"
        )
    complete = []
    for row in rows[1:]:
        try:
            if len(row) != len(SCORES_COLUMNS):
                raise ValueError
            for column in SCORE_COLUMNS:
                float(row[SCORES_COLUMNS.index(column)])
        except ValueError:
            continue
        complete.append(row)
    return complete, len(complete) != len(rows) - 1


def open_scores_file(path: str | Path, overwrite: bool) -> tuple[ResultsFile, set[tuple[str, str]]]:
    """Open a scores file to add rows to, keeping what an earlier run scored.

    With `overwrite`, or when the file does not exist, a new file with the header is started.
    Otherwise its complete rows are kept (an incomplete last row from an interrupted run is
    dropped, rewriting the file atomically) and their (scene, listener) pairs returned.

    Returns:
        The results file and the set of (scene id, listener id) already scored.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if overwrite or not path.is_file():
        return ResultsFile(path, header_columns=SCORES_COLUMNS), set()
    rows, dropped = _complete_rows(path)
    if dropped:
        logger.warning("%s: dropping rows that are incomplete or malformed", path)
        write_text_atomic(path, _csv_text([SCORES_COLUMNS, *rows]))
    scene, listener = SCORES_COLUMNS.index("scene"), SCORES_COLUMNS.index("listener")
    done = {(row[scene], row[listener]) for row in rows}
    return ResultsFile(path, header_columns=SCORES_COLUMNS, append_results=True), done


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 text to `path` through a temporary file in its folder."""
    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def _csv_text(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


def merge_batch_scores(exp_folder: str | Path, batch_size: int) -> Path:
    """Join `scores_<b>-<batch_size>.csv` (b = 1..batch_size) into `scores.csv`.

    Raises:
        ValueError: a batch file is missing.
    """
    exp_folder = Path(exp_folder)
    files = [exp_folder / scores_file_name(batch, batch_size) for batch in range(batch_size)]
    missing = [str(file) for file in files if not file.is_file()]
    if missing:
        raise ValueError(f"batch score file(s) not found: {missing}")
    merged = pd.concat([pd.read_csv(file) for file in files], ignore_index=True)
    output = exp_folder / "scores.csv"
    write_text_atomic(output, merged.to_csv(index=False))
    return output


def mean_scores(path: str | Path) -> dict[str, float]:
    """Mean left, right and average HAAQI over the rows of a scores file."""
    scores = pd.read_csv(path)
    return {column: float(scores[column].mean()) for column in SCORE_COLUMNS}
