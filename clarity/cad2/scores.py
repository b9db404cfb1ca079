"""The scores CSV: open it for resuming, record its settings, merge the batch files, summarise.

A scores file holds one row per scene-listener pair with finite HAAQI scores. Beside it,
`<name>.settings.json` records the batch it holds and the settings its scores depend on (with
their SHA-256), so a resumed run and the merge of batch files can check that every row was
scored the same way.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from clarity.cad2.batching import scores_file_name
from clarity.utils.flac_encoder import write_atomically
from clarity.utils.results_support import ResultsFile

SCORES_COLUMNS = ["scene", "song", "listener", "left_haaqi", "right_haaqi", "avg_haaqi"]
SCORE_COLUMNS = ("left_haaqi", "right_haaqi", "avg_haaqi")
MERGED_FILE_NAME = "scores.csv"
# The config keys the scores of a run depend on (paths excepted: the same data may be mounted
# elsewhere on another node).
SETTINGS_KEYS = (
    "input_sample_rate",
    "remix_sample_rate",
    "HAAQI_sample_rate",
    "soft_clip",
    "enhancer",
    "separator.type",
    "separator.causality",
    "separator.add_residual",
    "separator.separation",
    "evaluate.set_random_seed",
    "evaluate.small_test",
)
# Settings that came after score files were first written, with their baseline default: recorded
# only when set otherwise, so that the records written before them still match.
LATER_SETTINGS_KEYS = {"separator.wiener_filter": False}

Pair = tuple[str, str]

logger = logging.getLogger(__name__)


class MergeError(ValueError):
    """The batch score files do not add up to the experiment's pairs; the message says how."""


@dataclass
class ScoredRows:
    """The usable rows of a scores file.

    Attributes:
        rows: rows with every column and finite scores, the first one of each pair, in order.
        dropped: one description per line left out (cut short, malformed, non-finite, or a
            pair already seen).
        repeated: pairs that had more than one usable row.
    """

    rows: list[list[str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    repeated: list[Pair] = field(default_factory=list)

    @property
    def pairs(self) -> list[Pair]:
        """(scene id, listener id) of each row."""
        return [_pair_of(row) for row in self.rows]


def _pair_of(row: list[str]) -> Pair:
    """(scene id, listener id) of a scores row."""
    return row[SCORES_COLUMNS.index("scene")], row[SCORES_COLUMNS.index("listener")]


def _row_problem(row: list[str]) -> str | None:
    """Why a data row is unusable, or None."""
    if len(row) != len(SCORES_COLUMNS):
        return f"{len(row)} fields, expected {len(SCORES_COLUMNS)}"
    for column in SCORE_COLUMNS:
        text = row[SCORES_COLUMNS.index(column)]
        try:
            value = float(text)
        except ValueError:
            return f"{column}={text!r} is not a number"
        if not math.isfinite(value):
            return f"{column}={text} is not finite"
    return None


def read_scores(path: str | Path) -> ScoredRows:
    """The usable rows of a scores file (see `ScoredRows`).

    A last line without its newline was cut short by an interrupted write and is dropped even
    when it parses (its last number may be truncated).

    Raises:
        ValueError: the file's header is not `SCORES_COLUMNS`.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    scored = ScoredRows()
    if not lines:
        return scored
    header = next(csv.reader([lines[0]]))
    if header != SCORES_COLUMNS:
        raise ValueError(
            f"{path}: header {header}, expected {SCORES_COLUMNS}; move the file away or pass "
            "overwrite=true"
        )
    seen: set[Pair] = set()
    for number, line in enumerate(lines[1:], start=2):
        row = next(csv.reader([line]), [])
        problem = _row_problem(row)
        if problem is None and not line.endswith("\n"):
            problem = "cut short (no end of line)"
        if problem is None:
            pair = _pair_of(row)
            if pair in seen:
                scored.repeated.append(pair)
                problem = f"scene {pair[0]} listener {pair[1]} already scored above"
            seen.add(pair)
        if problem is None:
            scored.rows.append(row)
        else:
            scored.dropped.append(f"line {number}: {problem}")
    return scored


def score_settings(config: DictConfig) -> dict[str, Any]:
    """The values of `SETTINGS_KEYS` in `config` (resolved, plain Python), and those of
    `LATER_SETTINGS_KEYS` that are not at their default."""
    settings = {}
    for key in SETTINGS_KEYS:
        value = OmegaConf.select(config, key, throw_on_missing=True)
        settings[key] = (
            OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        )
    for key, default in LATER_SETTINGS_KEYS.items():
        value = OmegaConf.select(config, key, default=default)
        if value != default:
            settings[key] = value
    return settings


def settings_path(path: str | Path) -> Path:
    """`<scores file stem>.settings.json` beside the scores file."""
    path = Path(path)
    return path.with_name(f"{path.stem}.settings.json")


def settings_digest(settings: dict[str, Any]) -> str:
    """SHA-256 of the settings as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 text to `path` through a temporary file in its folder."""
    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def _write_settings(path: Path, settings: dict[str, Any], batch: int, batch_size: int) -> None:
    record = {
        "batch": batch,
        "batch_size": batch_size,
        "settings_sha256": settings_digest(settings),
        "settings": settings,
    }
    write_text_atomic(settings_path(path), json.dumps(record, indent=2, sort_keys=True) + "\n")


def read_settings(path: str | Path) -> dict[str, Any]:
    """The settings record of a scores file.

    Raises:
        ValueError: the record is missing, not JSON, or lacks a key; the message names it.
    """
    record_path = settings_path(path)
    if not record_path.is_file():
        raise ValueError(f"{record_path} not found: the settings {Path(path).name} was scored with")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{record_path} is not valid JSON: {error}") from error
    for key in ("batch", "batch_size", "settings_sha256", "settings"):
        if not isinstance(record, dict) or key not in record:
            raise ValueError(f"{record_path}: key {key!r} missing")
    return record


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [
        f"{key}: {old.get(key)!r} -> {new.get(key)!r}"
        for key in keys
        if old.get(key) != new.get(key)
    ]


def open_scores_file(
    path: str | Path,
    overwrite: bool,
    settings: dict[str, Any],
    batch: int = 0,
    batch_size: int = 1,
) -> tuple[ResultsFile, set[Pair]]:
    """Open a scores file to add rows to, keeping what an earlier run scored.

    With `overwrite`, or when the file does not exist, a new file with the header is started and
    its settings record written. Otherwise the settings must equal the recorded ones; the usable
    rows are kept (the file is rewritten atomically without any dropped line, so a pair with a
    cut-short, non-finite or repeated row is scored again) and their pairs returned.

    Args:
        path: the scores CSV.
        overwrite: start a new file even if one exists.
        settings: what the scores depend on (see `clarity.cad2.evaluate.score_settings`).
        batch, batch_size: the batch this file holds (0-based batch of `batch_size`).

    Returns:
        The results file and the set of (scene id, listener id) already scored.

    Raises:
        ValueError: the existing file was scored with other settings or another batch, or its
            header is not `SCORES_COLUMNS`; the message names the file and the differences.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if overwrite or not path.is_file():
        results = ResultsFile(path, header_columns=SCORES_COLUMNS)
        _write_settings(path, settings, batch, batch_size)
        return results, set()
    if settings_path(path).is_file():
        record = read_settings(path)
        changed = _differences(record["settings"], settings)
        if (record["batch"], record["batch_size"]) != (batch, batch_size):
            changed.append(
                f"batch {record['batch']} of {record['batch_size']} -> {batch} of {batch_size}"
            )
        if changed:
            raise ValueError(
                f"{path} was scored with other settings ({'; '.join(changed)}); pass "
                "overwrite=true to score it again, or use another path.exp_folder"
            )
    else:
        logger.warning("%s has no settings record; recording the current settings", path)
        _write_settings(path, settings, batch, batch_size)
    scored = read_scores(path)
    if scored.dropped:
        logger.warning("%s: dropping %s", path, "; ".join(scored.dropped))
        write_text_atomic(path, _csv_text([SCORES_COLUMNS, *scored.rows]))
    return ResultsFile(path, header_columns=SCORES_COLUMNS, append_results=True), set(scored.pairs)


def _csv_text(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _pair_list(pairs: Sequence[Pair], limit: int = 10) -> str:
    names = [f"{scene}/{listener}" for scene, listener in pairs[:limit]]
    more = f" and {len(pairs) - limit} more" if len(pairs) > limit else ""
    return ", ".join(names) + more


def merge_batch_scores(
    exp_folder: str | Path, batch_pairs: Sequence[Sequence[Pair]], allow_partial: bool = False
) -> tuple[Path, list[Pair]]:
    """Verify the batch files `scores_<b>-<N>.csv` of an experiment and join them into
    `scores.csv` (with its settings record).

    Every batch file must exist with its settings record, hold exactly the pairs of its batch
    (no pair missing, none from another batch, none twice), and every batch must have the same
    settings. With `allow_partial`, missing files and missing pairs are reported in the log and
    the rows that exist are merged; repeated pairs, pairs in the wrong batch and different
    settings still stop the merge.

    Args:
        exp_folder: folder holding the batch files.
        batch_pairs: for each batch b (0-based), the pairs `select_batch` gives it.
        allow_partial: merge what is there instead of failing on what is missing.

    Returns:
        The merged file and the pairs missing from it (empty unless `allow_partial`).

    Raises:
        MergeError: naming each batch file and pair that is wrong; nothing is written.
    """
    exp_folder = Path(exp_folder)
    batch_size = len(batch_pairs)
    fatal: list[str] = []
    incomplete: list[str] = []
    missing_pairs: list[Pair] = []
    rows: list[list[str]] = []
    digests: dict[str, list[str]] = {}
    owner: dict[Pair, str] = {}
    settings: dict[str, Any] | None = None
    for batch, expected in enumerate(batch_pairs):
        path = exp_folder / scores_file_name(batch, batch_size)
        if not path.is_file():
            incomplete.append(f"{path.name}: not found (batch {batch + 1} of {batch_size})")
            missing_pairs.extend(expected)
            continue
        try:
            record = read_settings(path)
            scored = read_scores(path)
        except ValueError as error:
            fatal.append(str(error))
            continue
        if (record["batch"], record["batch_size"]) != (batch, batch_size):
            fatal.append(
                f"{path.name}: holds batch {record['batch']} of {record['batch_size']}, "
                f"expected batch {batch} of {batch_size}"
            )
        digests.setdefault(record["settings_sha256"], []).append(path.name)
        settings = record["settings"]
        if scored.repeated:
            fatal.append(f"{path.name}: pairs scored twice: {_pair_list(scored.repeated)}")
        expected_set, scored_set = set(expected), set(scored.pairs)
        foreign = [pair for pair in scored.pairs if pair not in expected_set]
        if foreign:
            fatal.append(f"{path.name}: pairs of another batch: {_pair_list(foreign)}")
        for pair in scored.pairs:
            if pair in owner:
                fatal.append(f"{pair[0]}/{pair[1]}: in {owner[pair]} and {path.name}")
            owner[pair] = path.name
        absent = [pair for pair in expected if pair not in scored_set]
        if absent:
            incomplete.append(
                f"{path.name}: {len(absent)} pair(s) not scored: {_pair_list(absent)}"
            )
            missing_pairs.extend(absent)
        rows.extend(scored.rows)
    if len(digests) > 1:
        groups = "; ".join(
            f"{', '.join(names)}: {digest[:12]}" for digest, names in digests.items()
        )
        fatal.append(f"batches scored with different settings ({groups})")
    if fatal or (incomplete and not allow_partial):
        hint = "" if fatal else " (allow_partial merges what is there)"
        raise MergeError(
            f"cannot merge the scores in {exp_folder}{hint}:\n  " + "\n  ".join(fatal + incomplete)
        )
    if incomplete:
        logger.warning("Merging a partial experiment: %s", "; ".join(incomplete))
    if not rows or settings is None:
        raise MergeError(f"no scores to merge in {exp_folder}")
    output = exp_folder / MERGED_FILE_NAME
    write_text_atomic(output, _csv_text([SCORES_COLUMNS, *rows]))
    _write_settings(output, settings, 0, 1)
    return output, missing_pairs


def mean_scores(path: str | Path) -> dict[str, float]:
    """Mean left, right and average HAAQI over the usable rows of a scores file (NaN when there
    are none)."""
    rows = read_scores(path).rows
    return {
        column: math.fsum(float(row[SCORES_COLUMNS.index(column)]) for row in rows) / len(rows)
        if rows else math.nan
        for column in SCORE_COLUMNS
    }
