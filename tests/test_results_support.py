"""ResultsFile: header, one flushed row per result, resume by appending, bad rows."""

import csv

import pytest

from clarity.utils.results_support import MissingColumnsError, ResultsFile

COLUMNS = ["scene", "listener", "haaqi"]


def read_rows(path):
    with open(path, encoding="utf-8", newline="") as csv_file:
        return list(csv.reader(csv_file))


def test_new_file_has_header_and_rows_in_order(tmp_path):
    path = tmp_path / "scores.csv"
    results = ResultsFile(path, COLUMNS)
    assert read_rows(path) == [COLUMNS]
    results.add_result({"haaqi": 0.5, "scene": "S001", "listener": "L1"})
    # readable as soon as it is added, without closing anything
    assert read_rows(path) == [COLUMNS, ["S001", "L1", "0.5"]]
    results.add_result({"scene": "S, quoted", "listener": "L2", "haaqi": 0.25})
    assert read_rows(path)[-1] == ["S, quoted", "L2", "0.25"]


def test_resume_appends_and_new_file_restarts(tmp_path):
    path = tmp_path / "scores.csv"
    ResultsFile(path, COLUMNS).add_result({"scene": "S1", "listener": "L1", "haaqi": 0.1})
    resumed = ResultsFile(path, COLUMNS, append_results=True)
    resumed.add_result({"scene": "S2", "listener": "L1", "haaqi": 0.2})
    assert [row[0] for row in read_rows(path)] == ["scene", "S1", "S2"]
    ResultsFile(path, COLUMNS)
    assert read_rows(path) == [COLUMNS]


def test_append_to_empty_file_writes_header(tmp_path):
    path = tmp_path / "scores.csv"
    path.touch()
    ResultsFile(path, COLUMNS, append_results=True).add_result(
        {"scene": "S1", "listener": "L1", "haaqi": 1.0}
    )
    assert read_rows(path) == [COLUMNS, ["S1", "L1", "1.0"]]


def test_append_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.csv"):
        ResultsFile(tmp_path / "missing.csv", COLUMNS, append_results=True)
    path = tmp_path / "other.csv"
    ResultsFile(path, ["a", "b"])
    with pytest.raises(ValueError, match="header"):
        ResultsFile(path, COLUMNS, append_results=True)


def test_missing_column_is_a_key_error_as_in_pyclarity(tmp_path):
    results = ResultsFile(tmp_path / "scores.csv", COLUMNS)
    with pytest.raises(KeyError, match="haaqi") as error:
        results.add_result({"scene": "S1", "listener": "L1"})
    assert isinstance(error.value, (MissingColumnsError, ValueError))
    assert read_rows(tmp_path / "scores.csv") == [COLUMNS]


def test_bad_rows_name_the_columns(tmp_path):
    results = ResultsFile(tmp_path / "scores.csv", COLUMNS)
    with pytest.raises(ValueError, match=r"missing \['haaqi'\], unexpected \[\]"):
        results.add_result({"scene": "S1", "listener": "L1"})
    with pytest.raises(ValueError, match=r"unexpected \['extra'\]") as extra:
        results.add_result({"scene": "S1", "listener": "L1", "haaqi": 0.1, "extra": 1})
    assert not isinstance(extra.value, KeyError)
    assert read_rows(tmp_path / "scores.csv") == [COLUMNS]
    with pytest.raises(ValueError, match="unique"):
        ResultsFile(tmp_path / "dup.csv", ["a", "a"])
