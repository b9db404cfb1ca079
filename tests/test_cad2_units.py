"""Unit tests of the CAD2 recipe pieces: metadata, remix, batching, scores file, seeds."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyloudnorm as pyln
import pytest
from omegaconf import OmegaConf

from clarity.cad2.batching import scores_file_name, select_batch
from clarity.cad2.experiment import SEPARATOR_FILE, claim_exp_folder
from clarity.cad2.metadata import (
    load_compressor_params,
    load_music,
    load_recipe_metadata,
    scene_listener_pairs,
    split_of_scene,
)
from clarity.cad2.remix import (
    adjust_level,
    apply_gains,
    average_repeated_instrument_gains,
    level_adjustment_db,
    remix_stems,
)
from clarity.cad2.seeding import seed_from_text
from clarity.cad2.train_scenes import generate_scene_listeners, generate_scenes

SAMPLE_RATE = 44100


def metadata_paths(root):
    folder = root / "metadata"
    return {
        "gains_file": folder / "gains.json",
        "scenes_file": folder / "scenes.valid.json",
        "scene_listeners_file": folder / "scene_listeners.valid.json",
        "music_file": folder / "music.valid.json",
        "listeners_file": folder / "listeners.valid.json",
        "enhancer_params_file": folder / "compressor_params.valid.json",
    }


def test_metadata_loads_in_file_order(mini_dataset):
    metadata = load_recipe_metadata(metadata_paths(mini_dataset))
    song = metadata.song_of("S50001")
    assert list(song.sources) == ["source_1", "source_2", "source_3"]
    assert song.source_instruments() == {
        "source_1": "Violin", "source_2": "Violin", "source_3": "Cello"
    }
    assert song.mixture.instrument == "Mixture" and song.mixture.duration == 3.0
    assert scene_listener_pairs(metadata.scene_listeners) == [
        ("S50001", "L0001"), ("S50001", "L0002"), ("S50002", "L0002")
    ]
    assert metadata.compressor_params["L0001"].num_bands == 6


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"song": {"source_1": {"instrument": "Cello", "track": "a.flac", "start": 0}}},
         "song 'song': missing key 'mixture'"),
        ({"song": {"mixture": {"instrument": "Mixture", "track": "m.flac", "start": 0,
                               "duration": 1}, "source_1": {"instrument": "Cello",
                               "track": "a.flac", "start": 0}}},
         "key 'source_1': missing key 'duration'"),
        ({"song": {"mixture": {"instrument": "Violin", "track": "m.flac", "start": 0,
                               "duration": 1}}},
         "instrument must be 'Mixture'"),
    ],
)
def test_music_errors_name_the_file_and_key(tmp_path, content, message):
    path = tmp_path / "music.valid.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message) as error:
        load_music(path)
    assert str(path) in str(error.value)


def test_compressor_params_need_one_value_per_band(tmp_path):
    path = tmp_path / "compressor_params.valid.json"
    path.write_text(
        json.dumps({"L1": {"cr_l": [1, 2], "cr_r": [1, 2], "gain_l": [0], "gain_r": [0, 1]}})
    )
    with pytest.raises(ValueError, match="listener 'L1': all keys need one value per band"):
        load_compressor_params(path)
    path.write_text(
        json.dumps({"L1": {"cr_l": [1], "cr_r": [1], "gain_l": ["loud"], "gain_r": [0]}})
    )
    with pytest.raises(ValueError, match=r"key 'gain_l'\[0\]: expected a number"):
        load_compressor_params(path)


def test_gain_missing_a_source_of_the_song(mini_dataset):
    paths = metadata_paths(mini_dataset)
    gains = json.loads(paths["gains_file"].read_text())
    del gains["gain_0002"]["source_3"]
    paths["gains_file"].write_text(json.dumps(gains))
    with pytest.raises(ValueError, match=r"gain 'gain_0002' \(scene 'S50002'\) has no gain for"):
        load_recipe_metadata(paths)


def test_split_of_scene_uses_the_challenge_ranges():
    assert [split_of_scene(s) for s in ("S10001", "S49998", "S50001", "S59998")] == [
        "train", "train", "valid", "valid"
    ]
    # The challenge's bounds are exclusive: these ids fall through to "test".
    assert [split_of_scene(s) for s in ("S49999", "S50000", "S59999", "S60001")] == ["test"] * 4
    with pytest.raises(ValueError, match="scene id 'scene7'"):
        split_of_scene("scene7")


def test_repeated_instruments_share_the_mean_gain():
    gains = {"source_1": 6.0, "source_2": -2.0, "source_3": 10.0}
    instruments = {"source_1": "Violin", "source_2": "Violin", "source_3": "Cello"}
    assert average_repeated_instrument_gains(gains, instruments) == {
        "source_1": 2.0, "source_2": 2.0, "source_3": 10.0
    }
    distinct = {"source_1": "Violin", "source_2": "Viola", "source_3": "Cello"}
    assert average_repeated_instrument_gains(gains, distinct) == gains
    # As in the challenge baseline, all repeated sources share one mean, across instruments.
    four = {"source_1": 4.0, "source_2": 0.0, "source_3": -8.0, "source_4": 0.0}
    pairs = {"source_1": "Violin", "source_2": "Violin", "source_3": "Cello", "source_4": "Cello"}
    assert set(average_repeated_instrument_gains(four, pairs).values()) == {-1.0}


def test_gains_change_loudness_by_the_gain():
    rng = np.random.default_rng(0)
    stems = {
        "source_1": 0.1 * rng.standard_normal((SAMPLE_RATE * 2, 2)),
        "source_2": 0.02 * rng.standard_normal((SAMPLE_RATE * 2, 2)),
        "source_3": np.zeros((SAMPLE_RATE * 2, 2)),
    }
    gains = {"source_1": -6.0, "source_2": 4.5, "source_3": 10.0}
    out = apply_gains(stems, SAMPLE_RATE, gains)
    meter = pyln.Meter(SAMPLE_RATE)
    for source in ("source_1", "source_2"):
        change = meter.integrated_loudness(out[source]) - meter.integrated_loudness(stems[source])
        assert change == pytest.approx(gains[source], abs=1e-9)
    np.testing.assert_array_equal(out["source_3"], 0.0)
    np.testing.assert_allclose(remix_stems(out), out["source_1"] + out["source_2"])


def test_level_adjustment_undoes_the_mean_power_gain():
    assert level_adjustment_db({"a": 0.0, "b": 0.0}) == 0.0
    gains = {"a": 10.0, "b": -10.0, "c": 0.0}
    mean_power = (10.0 + 0.1 + 1.0) / 3
    assert level_adjustment_db(gains) == pytest.approx(-10 * np.log10(mean_power))
    np.testing.assert_allclose(adjust_level(np.ones(4), gains), np.ones(4) / np.sqrt(mean_power))


def test_batches_are_strided_and_named_as_the_challenge():
    pairs = list(range(7))
    assert select_batch(pairs, 0, 3) == [0, 3, 6]
    assert select_batch(pairs, 2, 3) == [2, 5]
    assert sorted(pair for b in range(3) for pair in select_batch(pairs, b, 3)) == pairs
    assert scores_file_name(0, 1) == "scores.csv"
    assert scores_file_name(1, 4) == "scores_2-4.csv"
    with pytest.raises(ValueError, match="batch must be in"):
        select_batch(pairs, 3, 3)


def test_seed_is_the_md5_modulo_10_to_the_8():
    # md5("") = d41d8cd98f00b204e9800998ecf8427e (RFC 1321 test suite)
    assert seed_from_text("") == int("d41d8cd98f00b204e9800998ecf8427e", 16) % 10**8
    assert seed_from_text("S50001") == int(hashlib.md5(b"S50001").hexdigest(), 16) % 10**8


def test_train_scenes_follow_the_legacy_generator():
    music = {
        "duet": {"source_1": {}, "source_2": {}, "mixture": {}},
        "trio": {"source_1": {}, "source_2": {}, "source_3": {}, "mixture": {}},
    }
    gains_meta = {"2": {f"gain_2_{i}": {} for i in range(5)},
                  "3": {f"gain_3_{i}": {} for i in range(7)}}
    scenes = generate_scenes(music, gains_meta, 3, "Cadenza2-train")
    assert list(scenes) == ["S10001", "S10002", "S10003", "S10004", "S10005", "S10006"]
    assert [scene["music"] for scene in scenes.values()] == ["duet"] * 3 + ["trio"] * 3
    # The challenge seeds NumPy's global legacy generator and draws in this order.
    np.random.seed(seed_from_text("Cadenza2-train"))
    expected = [np.random.choice(list(gains_meta[str(n)])) for n in (2, 2, 2, 3, 3, 3)]
    assert [scene["gain"] for scene in scenes.values()] == expected

    listeners = generate_scene_listeners(list(scenes), ["L1", "L2", "L3"], 2)
    np.random.seed(seed_from_text("Cadenza2-scene"))
    assert listeners == {s: list(np.random.choice(["L1", "L2", "L3"], 2)) for s in scenes}
    with pytest.raises(ValueError, match="no gains for 3 sources"):
        generate_scenes(music, {"2": gains_meta["2"]}, 1, "seed")


def test_default_experiment_folders_follow_the_official_layout():
    folders = OmegaConf.create(
        {
            "baseline": "${cad2_exp_folder:convtasnet,causal}",
            "oracle": "${cad2_exp_folder:oracle,noncausal}",
            "passthrough": "${cad2_exp_folder:passthrough,causal}",
        }
    )
    assert folders.baseline == "exp"  # exp/enhanced_signals/<split>/..., as the official recipe
    assert folders.oracle == "exp/oracle_noncausal"
    assert folders.passthrough == "exp/passthrough_causal"


def test_an_experiment_folder_holds_one_separator(tmp_path):
    def run(kind, causality="noncausal", checkpoints=None, overwrite=False):
        return OmegaConf.create(
            {
                "path": {"exp_folder": str(tmp_path)},
                "separator": {"type": kind, "causality": causality, "checkpoint_dir": checkpoints},
                "overwrite": overwrite,
            }
        )

    claim_exp_folder(run("convtasnet"))
    recorded = json.loads((tmp_path / SEPARATOR_FILE).read_text())
    assert recorded == {"type": "convtasnet", "causality": "noncausal", "checkpoint_dir": None}
    claim_exp_folder(run("convtasnet"))  # the same separator resumes
    with pytest.raises(ValueError, match="holds the outputs of separator"):
        claim_exp_folder(run("convtasnet", checkpoints=str(tmp_path / "models")))
    claim_exp_folder(run("convtasnet", checkpoints=str(tmp_path / "models"), overwrite=True))
    claim_exp_folder(run("convtasnet", checkpoints=str(tmp_path / "models")))
    claim_exp_folder(run("convtasnet", checkpoints=str(tmp_path / "models" / ".." / "models")))
    recorded = json.loads((tmp_path / SEPARATOR_FILE).read_text())
    for other in (run("oracle"), run("convtasnet", "causal"), run("convtasnet", checkpoints=None)):
        with pytest.raises(ValueError, match=r"holds the outputs of separator .*overwrite=true"):
            claim_exp_folder(other)
    assert json.loads((tmp_path / SEPARATOR_FILE).read_text()) == recorded
    claim_exp_folder(run("oracle", overwrite=True))  # redoing every pair takes the folder over
    assert json.loads((tmp_path / SEPARATOR_FILE).read_text()) == {"type": "oracle"}


def test_wiener_filtered_outputs_are_another_separator(tmp_path):
    def run(wiener_filter, overwrite=False):
        return OmegaConf.create(
            {
                "path": {"exp_folder": str(tmp_path)},
                "separator": {"type": "convtasnet", "causality": "noncausal",
                              "checkpoint_dir": None, "wiener_filter": wiener_filter},
                "overwrite": overwrite,
            }
        )

    claim_exp_folder(run(False))
    assert "wiener_filter" not in json.loads((tmp_path / SEPARATOR_FILE).read_text())
    with pytest.raises(ValueError, match="holds the outputs of separator"):
        claim_exp_folder(run(True))
    claim_exp_folder(run(True, overwrite=True))
    assert json.loads((tmp_path / SEPARATOR_FILE).read_text())["wiener_filter"] is True
    with pytest.raises(ValueError, match="holds the outputs of separator"):
        claim_exp_folder(run(False))
