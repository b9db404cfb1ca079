"""The `clarity` API that pyClarity 0.9.0's CAD2 Task 2 recipe (baseline/enhance.py,
baseline/evaluate.py, process_dataset) uses: the names it imports, the keywords it passes,
the exception types it may catch, and the shapes it indexes into."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from clarity.cad2.testing import write_mini_dataset
from clarity.enhancer.multiband_compressor import MultibandCompressor
from clarity.evaluator.haaqi import compute_haaqi
from clarity.utils.audiogram import Audiogram, Listener
from clarity.utils.flac_encoder import read_flac_signal, save_flac_signal
from clarity.utils.results_support import ResultsFile
from clarity.utils.signal_processing import compute_rms, resample
from clarity.utils.source_separation_support import get_device, separate_sources


def accepts(function, *keywords: str) -> bool:
    """True when `function` can be called with every one of `keywords` as a keyword."""
    parameters = inspect.signature(function).parameters
    return all(
        name in parameters
        and parameters[name].kind
        in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        for name in keywords
    )


def test_keywords_the_recipe_passes():
    assert accepts(read_flac_signal, "filename")
    assert accepts(
        save_flac_signal, "signal", "filename", "signal_sample_rate", "output_sample_rate",
        "do_clip_signal", "do_soft_clip", "do_scale_signal",
    )
    assert accepts(ResultsFile, "file_name", "header_columns", "append_results")
    assert accepts(resample, "signal", "sample_rate", "new_sample_rate", "method")
    assert accepts(
        compute_haaqi, "processed_signal", "reference_signal", "processed_sample_rate",
        "reference_sample_rate", "audiogram", "equalisation", "level1",
    )
    assert accepts(MultibandCompressor, "crossover_frequencies", "sample_rate")
    assert accepts(
        MultibandCompressor.set_compressors, "attack", "release", "threshold", "ratio",
        "makeup_gain",
    )
    assert accepts(MultibandCompressor.__call__, "signal")
    assert accepts(separate_sources, "model", "mix", "sample_rate", "segment", "overlap", "device")
    defaults = inspect.signature(separate_sources).parameters
    assert (defaults["segment"].default, defaults["overlap"].default) == (10.0, 0.1)


def test_listeners_of_the_official_metadata_layout(tmp_path):
    root = write_mini_dataset(tmp_path / "cad2", duration=0.5, margin=0.1)
    listeners = Listener.load_listener_dict(root / "metadata" / "listeners.valid.json")
    listener = listeners["L0001"]
    assert listener.id == "L0001"
    for audiogram in (listener.audiogram_left, listener.audiogram_right):
        assert isinstance(audiogram, Audiogram)
        assert audiogram.levels.shape == audiogram.frequencies.shape == (8,)
    np.testing.assert_array_equal(listener.audiogram_left.levels, [10, 15, 20, 30, 40, 45, 50, 55])


def test_save_then_read_an_enhanced_signal_as_the_recipe_does(tmp_path):
    """enhance.py saves (samples, 2) at 44.1 kHz as 32 kHz FLAC; evaluate.py reads it back
    and takes one column per ear."""
    rng = np.random.default_rng(0)
    enhanced = rng.uniform(-1.2, 1.2, (4410, 2))
    filename = tmp_path / "enhanced_signals" / "valid" / "S50001_L0001_remix.flac"
    filename.parent.mkdir(parents=True)
    save_flac_signal(
        signal=enhanced, filename=filename, signal_sample_rate=44100,
        output_sample_rate=32000, do_clip_signal=True, do_soft_clip=False,
    )
    signal, sample_rate = read_flac_signal(filename=filename)
    assert sample_rate == 32000 and isinstance(sample_rate, float)
    assert signal.shape == (3200, 2) and signal.dtype == np.float32
    assert np.max(np.abs(signal)) <= 1.0
    left = resample(signal[:, 0], 32000, 24000)
    assert left.shape == (2400,)
    assert compute_rms(signal[:, 0]) > 0.1


def test_results_file_in_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    headers = ["scene", "song", "listener", "left_haaqi", "right_haaqi", "avg_haaqi"]
    results = ResultsFile("scores_1-2.csv", header_columns=headers)
    results.add_result(dict(zip(headers, ["S1", "song", "L1", 0.5, 0.25, 0.375], strict=True)))
    lines = (tmp_path / "scores_1-2.csv").read_text(encoding="utf-8").splitlines()
    assert lines == [",".join(headers), "S1,song,L1,0.5,0.25,0.375"]


def test_exception_types_code_written_for_pyclarity_catches(tmp_path):
    with pytest.raises(TypeError):
        Audiogram(None)
    with pytest.raises(ValueError):
        Audiogram([1])
    with pytest.raises(KeyError):
        ResultsFile(tmp_path / "s.csv", ["a", "b"]).add_result({"a": 1})
    with pytest.raises(FileNotFoundError):
        ResultsFile(tmp_path / "absent.csv", ["a"], append_results=True)
    with pytest.raises(KeyError):
        Listener.from_dict({"name": "L1"})
    with pytest.raises(FileNotFoundError):
        read_flac_signal(tmp_path / "absent.flac")
    with pytest.raises(ValueError):
        get_device("wrong")


def test_device_and_separation_shapes_the_recipe_unpacks():
    device, device_type = get_device("cpu")
    assert device == torch.device("cpu") and device_type == "cpu"

    class Halves(torch.nn.Module):
        def forward(self, chunk):
            return torch.stack([0.5 * chunk, 0.5 * chunk], dim=1)

    mixture = np.random.default_rng(1).normal(size=(2, 1500)).astype(np.float32)
    target, accompaniment = separate_sources(Halves(), mixture, 1000, device=device)[0]
    assert target.shape == accompaniment.shape == (2, 1500)
