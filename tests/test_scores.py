"""Scores files: resuming, settings records, torn and non-finite rows, merging batches, locks."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from clarity.cad2.scores import (
    SCORES_COLUMNS,
    MergeError,
    merge_batch_scores,
    open_scores_file,
    read_scores,
    score_settings,
    settings_path,
)
from clarity.utils.file_lock import FileLockedError, exclusive_lock

SETTINGS = {"HAAQI_sample_rate": 24000, "separator": {"type": "oracle"}}
HEADER = ",".join(SCORES_COLUMNS) + "\n"


def row(scene, listener, score):
    return {"scene": scene, "song": "song", "listener": listener,
            "left_haaqi": score, "right_haaqi": score, "avg_haaqi": score}


def test_resume_keeps_complete_rows_and_drops_a_torn_one(tmp_path):
    path = tmp_path / "scores.csv"
    results, done = open_scores_file(path, False, SETTINGS)
    assert done == set()
    results.add_result(row("S1", "L1", 0.5))
    results.add_result(row("S2", "L1", 0.25))
    with path.open("a") as file:
        file.write("S3,song,L1,0.1,0.1,0.12")  # every field parses, but the row was cut short
    _, done = open_scores_file(path, False, SETTINGS)
    assert done == {("S1", "L1"), ("S2", "L1")}
    assert path.read_text() == HEADER + "S1,song,L1,0.5,0.5,0.5\nS2,song,L1,0.25,0.25,0.25\n"
    _, done = open_scores_file(path, True, SETTINGS)
    assert done == set() and path.read_text() == HEADER


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "", "0.5x"])
def test_a_row_without_a_finite_score_is_not_done(tmp_path, bad):
    path = tmp_path / "scores.csv"
    open_scores_file(path, False, SETTINGS)
    with path.open("a") as file:
        file.write(f"S1,song,L1,0.5,{bad},0.5\nS2,song,L1,0.5,0.5,0.5\n")
    scored = read_scores(path)
    assert scored.pairs == [("S2", "L1")]
    assert len(scored.dropped) == 1 and scored.dropped[0].startswith("line 2: right_haaqi")
    _, done = open_scores_file(path, False, SETTINGS)
    assert done == {("S2", "L1")}
    assert "S1" not in path.read_text()


def test_a_repeated_pair_is_kept_once(tmp_path):
    path = tmp_path / "scores.csv"
    path.write_text(HEADER + "S1,song,L1,0.5,0.5,0.5\nS1,song,L1,0.7,0.7,0.7\n")
    scored = read_scores(path)
    assert scored.pairs == [("S1", "L1")] and scored.repeated == [("S1", "L1")]
    assert scored.rows[0][3] == "0.5"


def test_resume_with_other_settings_is_refused(tmp_path):
    path = tmp_path / "scores_1-2.csv"
    results, _ = open_scores_file(path, False, SETTINGS, batch=0, batch_size=2)
    results.add_result(row("S1", "L1", 0.5))
    record = json.loads(settings_path(path).read_text())
    assert record["batch"] == 0 and record["batch_size"] == 2 and record["settings"] == SETTINGS
    other = {**SETTINGS, "HAAQI_sample_rate": 16000}
    with pytest.raises(ValueError, match=r"scores_1-2\.csv was scored with other settings "
                                         r"\(HAAQI_sample_rate: 24000 -> 16000\)"):
        open_scores_file(path, False, other, batch=0, batch_size=2)
    with pytest.raises(ValueError, match=r"batch 0 of 2 -> 1 of 2"):
        open_scores_file(path, False, SETTINGS, batch=1, batch_size=2)
    assert "S1,song,L1" in path.read_text()


def test_a_later_setting_at_its_default_leaves_older_records_valid(tmp_path):
    config = OmegaConf.load(Path(__file__).resolve().parents[1] / "config.yaml")
    older = score_settings(config)
    assert "separator.wiener_filter" not in older
    path = tmp_path / "scores.csv"
    open_scores_file(path, False, older)
    config.separator.wiener_filter = False
    open_scores_file(path, False, score_settings(config))  # the same settings: resumes
    config.separator.wiener_filter = True
    changed = score_settings(config)
    assert changed["separator.wiener_filter"] is True
    with pytest.raises(ValueError, match=r"separator\.wiener_filter: None -> True"):
        open_scores_file(path, False, changed)


def test_other_header_is_refused_and_kept(tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("scene,score\nS1,0.5\n")
    with pytest.raises(ValueError, match="header"):
        open_scores_file(other, False, SETTINGS)
    assert other.read_text() == "scene,score\nS1,0.5\n"


BATCHES = [[("S1", "L1"), ("S3", "L1")], [("S2", "L1"), ("S4", "L1")]]


def write_batch(tmp_path, batch, pairs, settings=SETTINGS):
    results, _ = open_scores_file(
        tmp_path / f"scores_{batch + 1}-2.csv", False, settings, batch=batch, batch_size=2
    )
    for scene, listener in pairs:
        results.add_result(row(scene, listener, 0.5))


def test_merge_joins_complete_batches(tmp_path):
    write_batch(tmp_path, 0, BATCHES[0])
    write_batch(tmp_path, 1, BATCHES[1])
    merged, missing = merge_batch_scores(tmp_path, BATCHES)
    assert missing == []
    assert [line.split(",")[0] for line in merged.read_text().splitlines()[1:]] == [
        "S1", "S3", "S2", "S4"
    ]
    assert json.loads(settings_path(merged).read_text())["settings"] == SETTINGS


def test_merge_refuses_a_missing_batch_or_pair_and_allows_partial_on_request(tmp_path):
    write_batch(tmp_path, 0, BATCHES[0][:1])
    with pytest.raises(MergeError) as error:
        merge_batch_scores(tmp_path, BATCHES)
    message = str(error.value)
    assert "scores_1-2.csv: 1 pair(s) not scored: S3/L1" in message
    assert "scores_2-2.csv: not found (batch 2 of 2)" in message
    assert not (tmp_path / "scores.csv").exists()
    merged, missing = merge_batch_scores(tmp_path, BATCHES, allow_partial=True)
    assert missing == [("S3", "L1"), ("S2", "L1"), ("S4", "L1")]
    assert merged.read_text() == HEADER + "S1,song,L1,0.5,0.5,0.5\n"


def test_merge_refuses_repeats_foreign_pairs_and_other_settings(tmp_path):
    write_batch(tmp_path, 0, [*BATCHES[0], ("S2", "L1")])
    write_batch(tmp_path, 1, BATCHES[1], settings={**SETTINGS, "HAAQI_sample_rate": 16000})
    with pytest.raises(MergeError) as error:
        merge_batch_scores(tmp_path, BATCHES, allow_partial=True)
    message = str(error.value)
    assert "scores_1-2.csv: pairs of another batch: S2/L1" in message
    assert "S2/L1: in scores_1-2.csv and scores_2-2.csv" in message
    assert "batches scored with different settings" in message
    assert not (tmp_path / "scores.csv").exists()


def test_a_second_writer_stops_at_once_naming_the_holder(tmp_path, lock_holder):
    path = tmp_path / "scores.csv"
    with lock_holder(path) as holder:
        start = time.monotonic()
        with pytest.raises(FileLockedError, match=rf"scores\.csv is being written by process "
                                                  rf"{holder.pid} on "), exclusive_lock(path):
            pass
        assert time.monotonic() - start < 5


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path, lock_holder):
    path = tmp_path / "scores.csv"
    with lock_holder(path) as holder:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        with exclusive_lock(path, wait=True) as lock_path:
            assert json.loads(lock_path.read_text())["pid"] == os.getpid()
