"""JSON reading with errors that name the file."""

from __future__ import annotations

import pytest

from clarity.utils.json_files import read_json, read_json_object


def test_reads_a_json_object(tmp_path):
    path = tmp_path / "gains.json"
    path.write_text('{"gain_1": {"source_1": -3.0}}', encoding="utf-8")
    assert read_json_object(path, "gains") == {"gain_1": {"source_1": -3.0}}


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ValueError, match=r"listeners file not found: .*absent\.json"):
        read_json(tmp_path / "absent.json", "listeners")


def test_malformed_file_names_it(tmp_path):
    path = tmp_path / "scenes.json"
    path.write_text('{"S50001": ', encoding="utf-8")
    with pytest.raises(ValueError, match=r"scenes file .*scenes\.json is not valid JSON"):
        read_json(path, "scenes")


def test_top_level_must_be_an_object(tmp_path):
    path = tmp_path / "music.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match=r"expected a JSON object, got list"):
        read_json_object(path, "music")
