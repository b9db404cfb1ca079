"""Audiogram and Listener: validation, interpolation, severity, Clarity JSON files."""

import json

import numpy as np
import pytest

from clarity.utils.audiogram import (
    AUDIOGRAM_MODERATE,
    AUDIOGRAM_REF,
    FULL_STANDARD_AUDIOGRAM_FREQUENCIES,
    Audiogram,
    AudiogramShapeError,
    Listener,
    ListenerFileNotFoundError,
    ListenerKeyError,
)

SIX = np.array([250, 500, 1000, 2000, 4000, 6000])


def test_resample_interpolates_on_log_frequency_and_holds_ends():
    audiogram = Audiogram(levels=np.array([10.0, 30.0]), frequencies=np.array([1000.0, 4000.0]))
    resampled = audiogram.resample(np.array([500.0, 2000.0, 8000.0]))
    # 2 kHz is half way between 1 and 4 kHz in log frequency
    np.testing.assert_allclose(resampled.levels, [10.0, 20.0, 30.0])
    np.testing.assert_array_equal(resampled.frequencies, [500.0, 2000.0, 8000.0])


def test_resample_linear_frequency():
    audiogram = Audiogram(levels=np.array([10.0, 40.0]), frequencies=np.array([1000.0, 4000.0]))
    resampled = audiogram.resample(np.array([2000.0]), linear_frequency=True)
    np.testing.assert_allclose(resampled.levels, [20.0])


def test_resample_fills_a_missing_frequency():
    audiogram = Audiogram(levels=[10, 20, 40, 50, 60], frequencies=[250, 500, 2000, 4000, 6000])
    assert not audiogram.has_frequencies(SIX)
    resampled = audiogram.resample(SIX)
    assert resampled.has_frequencies(SIX)
    np.testing.assert_allclose(resampled.levels, [10, 20, 30, 40, 50, 60])


@pytest.mark.parametrize(
    ("levels", "expected"),
    [(0, "NOTHING"), (15, "NOTHING"), (20, "MILD"), (36, "MODERATE"), (60, "SEVERE")],
)
def test_severity_uses_mean_loss_from_2_to_8_khz(levels, expected):
    frequencies = np.array([250, 500, 1000, 2000, 4000, 8000])
    audiogram = Audiogram(
        levels=np.array([90, 90, 90, levels, levels, levels]), frequencies=frequencies
    )
    assert audiogram.severity == expected


def test_severity_of_reference_audiograms():
    assert AUDIOGRAM_REF.severity == "NOTHING"
    assert AUDIOGRAM_MODERATE.severity == "MODERATE"
    assert len(AUDIOGRAM_REF.frequencies) == len(FULL_STANDARD_AUDIOGRAM_FREQUENCIES)


@pytest.mark.parametrize(
    ("levels", "frequencies", "message"),
    [
        ([10, 20], [250, 500, 1000], "same length"),
        ([10, np.nan], [250, 500], "NaN"),
        ([10, 20], [500, 250], "strictly increasing"),
        ([10, 20], [500, 500], "strictly increasing"),
        ([10, 20], [0, 500], "> 0"),
    ],
)
def test_bad_audiograms_raise(levels, frequencies, message):
    with pytest.raises(ValueError, match=message):
        Audiogram(levels=np.array(levels, dtype=float), frequencies=np.array(frequencies))


@pytest.mark.parametrize("levels", [None, 3.0])
def test_unsized_levels_raise_both_type_and_value_error(levels):
    """pyClarity raises TypeError for Audiogram(None); this package's check is a ValueError."""
    for expected in (TypeError, ValueError):
        with pytest.raises(expected, match="1-D"):
            Audiogram(levels)
    with pytest.raises(AudiogramShapeError):
        Audiogram(levels=[[10, 20]], frequencies=[[250, 500]])


def test_levels_of_the_wrong_length_for_the_default_frequencies():
    with pytest.raises(ValueError, match="same length") as error:
        Audiogram([1])
    assert not isinstance(error.value, TypeError)
    assert len(Audiogram(list(range(8))).frequencies) == 8


def _listener_entry(name):
    return {
        "name": name,
        "audiogram_cfs": [250, 500, 1000, 2000, 4000, 6000],
        "audiogram_levels_l": [10, 15, 20, 30, 40, 50],
        "audiogram_levels_r": [5, 10, 15, 20, 25, 30],
    }


def test_listener_from_dict():
    listener = Listener.from_dict(_listener_entry("L0001"))
    assert listener.id == "L0001"
    np.testing.assert_array_equal(listener.audiogram_left.levels, [10, 15, 20, 30, 40, 50])
    np.testing.assert_array_equal(listener.audiogram_right.frequencies, SIX)


def test_load_listener_dict(tmp_path):
    path = tmp_path / "listeners.json"
    path.write_text(
        json.dumps({"L0001": _listener_entry("L0001"), "L0002": _listener_entry("L0002")})
    )
    listeners = Listener.load_listener_dict(path)
    assert sorted(listeners) == ["L0001", "L0002"]
    assert listeners["L0002"].id == "L0002"


def test_missing_key_names_listener_and_key(tmp_path):
    entry = _listener_entry("L0007")
    del entry["audiogram_levels_r"]
    path = tmp_path / "listeners.json"
    path.write_text(json.dumps({"L0007": entry}))
    with pytest.raises(ValueError, match=r"L0007.*audiogram_levels_r"):
        Listener.load_listener_dict(path)
    with pytest.raises(KeyError) as error:  # pyClarity's exception type
        Listener.from_dict(entry)
    assert isinstance(error.value, ListenerKeyError)
    assert str(error.value) == "Listener 'L0007': missing key(s) ['audiogram_levels_r']"


def test_missing_listener_file_is_a_file_not_found_error(tmp_path):
    for expected in (FileNotFoundError, ValueError):
        with pytest.raises(expected, match="listeners file not found"):
            Listener.load_listener_dict(tmp_path / "absent.json")
    assert issubclass(ListenerFileNotFoundError, FileNotFoundError)


def test_errors_keep_their_type_when_the_file_name_is_added(tmp_path):
    entry = _listener_entry("L0004")
    entry["audiogram_levels_l"] = None
    path = tmp_path / "listeners.json"
    path.write_text(json.dumps({"L0004": entry}))
    with pytest.raises(TypeError, match=r"listeners\.json: Listener 'L0004', field "):
        Listener.load_listener_dict(path)


def test_mismatched_levels_name_the_field():
    entry = _listener_entry("L0003")
    entry["audiogram_levels_l"] = [10, 20]
    with pytest.raises(ValueError, match=r"L0003.*audiogram_levels_l"):
        Listener.from_dict(entry)
