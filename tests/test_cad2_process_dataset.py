"""Dataset preparation from small packages laid out like the challenge's Zenodo downloads."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import soundfile as sf

from clarity.cad2.seeding import seed_from_text
from clarity.cad2.testing import synthetic_stem
from clarity.cad2.zenodo import prepare_dataset, unpack_packages
from clarity.utils.generated_files import check_replaceable, write_generated_text

SAMPLE_RATE = 44100
TRACKS = {  # package, top folder, track path in the dataset folder
    "wood_flute": ("CadenzaWoodwind", "CadenzaWoodwind", "wood_piece/Flute.flac"),
    "wood_mix": ("CadenzaWoodwind", "CadenzaWoodwind", "wood_piece/mix_wood_piece.flac"),
    "violin": ("EnsembleSet_Mix_1", "EnsembleSet", "string_piece/Mix_1/Violin_1.flac"),
    "cello": ("EnsembleSet_Mix_1", "EnsembleSet", "string_piece/Mix_1/Cello.flac"),
    "string_mix": ("EnsembleSet_Mix_1", "EnsembleSet", "string_piece/Mix_1/mix_string_piece.flac"),
}
MUSIC_TRACKS_TRAIN = {
    "wood_piece": {
        "dataset": "CadenzaWoodwind",
        "stems_path": ["wood_piece/Flute.flac"],
        "mixture_path": "wood_piece/mix_wood_piece.flac",
    },
    "string_piece": {
        "dataset": "EnsembleSet",
        "stems_path": ["string_piece/Mix_1/Violin_1.flac", "string_piece/Mix_1/Cello.flac"],
        "mixture_path": "string_piece/Mix_1/mix_string_piece.flac",
    },
}
TO_GENERATE = {
    "mixed_piece_000": {
        "source_1": {"source_dataset": "EnsembleSet", "instrument": "Violin_1",
                     "track": "string_piece/Mix_1/Violin_1.flac", "start": 0.5, "duration": 1.0},
        "source_2": {"source_dataset": "CadenzaWoodwind", "instrument": "Flute",
                     "track": "wood_piece/Flute.flac", "start": 0.25, "duration": 1.0},
        "mixture_target": {"track": "valid/mixed_piece_000/mixture.flac"},
    }
}


@pytest.fixture
def downloads(tmp_path):
    """A download folder with the three packages, and the audio written into them."""
    folder = tmp_path / "zenodo"
    folder.mkdir()
    rng = np.random.default_rng(3)
    audio = {}
    for name, (package, top, track) in TRACKS.items():
        instrument = "Flute" if "flute" in name else "Cello"
        audio[name] = synthetic_stem(instrument, 0.5, 2.0, SAMPLE_RATE, rng)
        source = tmp_path / "files" / top / track
        source.parent.mkdir(parents=True, exist_ok=True)
        sf.write(source, audio[name], SAMPLE_RATE, subtype="PCM_16")
        with zipfile.ZipFile(folder / f"{package}.zip", "a") as zipped:
            zipped.write(source, f"{top}/{track}")
    metadata = {
        "music_tracks.train.json": MUSIC_TRACKS_TRAIN,
        "music.valid.to_generate.json": TO_GENERATE,
        "gains.json": {"gain_0001": {"source_1": 0, "source_2": 3}},
    }
    with zipfile.ZipFile(folder / "metadata.zip", "w") as zipped:
        for name, content in metadata.items():
            zipped.writestr(f"metadata/{name}", json.dumps(content))
    return folder, audio


def test_prepare_dataset_from_packages(downloads, tmp_path, run_script):
    folder, audio = downloads
    root = tmp_path / "cad2" / "task2"
    arguments = [
        f"path.zenodo_download_path={folder}", f"path.root={root}", f"hydra.run.dir={tmp_path}/log"
    ]
    result = run_script("process_dataset/process_zenodo_download.py", arguments)
    assert result.returncode == 0, result.stderr[-3000:]

    for name in ("wood_flute", "wood_mix", "violin", "cello", "string_mix"):
        copied, rate = sf.read(root / "audio" / "train" / TRACKS[name][2], dtype="float32")
        assert rate == SAMPLE_RATE
        np.testing.assert_allclose(copied, audio[name], atol=1 / 32768)

    valid = root / "audio" / "valid" / "mixed_piece_000"
    names = sorted(path.name for path in valid.iterdir())
    assert names == ["Flute.flac", "Violin_1.flac", "mixture.flac"]
    violin, _ = sf.read(valid / "Violin_1.flac", dtype="float32")
    flute, _ = sf.read(valid / "Flute.flac", dtype="float32")
    mixture, _ = sf.read(valid / "mixture.flac", dtype="float32")
    expected_violin = sf.read(root / "audio" / "train" / TRACKS["violin"][2], dtype="float32")[0]
    np.testing.assert_array_equal(violin, expected_violin[22050:66150])
    assert flute.shape == (44100, 2)
    np.testing.assert_allclose(mixture, violin + flute, atol=1 / 32768)
    assert json.loads((root / "metadata" / "gains.json").read_text()) == {
        "gain_0001": {"source_1": 0, "source_2": 3}
    }

    stamps = {path: path.stat().st_mtime_ns for path in (root / "audio").rglob("*.flac")}
    (folder / "EnsembleSet_Mix_1.zip").unlink()  # already unzipped: not needed any more
    result = run_script("process_dataset/process_zenodo_download.py", arguments)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {path: path.stat().st_mtime_ns for path in (root / "audio").rglob("*.flac")} == stamps


def test_missing_package_is_named(downloads, tmp_path):
    folder, _ = downloads
    (folder / "metadata.zip").unlink()
    with pytest.raises(ValueError, match=r"package\(s\) not found: \['metadata.zip'\]"):
        unpack_packages(folder)


def test_missing_source_file_is_named(downloads, tmp_path):
    folder, _ = downloads
    unpack_packages(folder)
    (folder / "CadenzaWoodwind" / "wood_piece" / "Flute.flac").unlink()
    root = tmp_path / "root"
    with pytest.raises(ValueError, match=r"track 'wood_piece': file not found: .*Flute\.flac"):
        prepare_dataset(folder, root, root / "audio", root / "metadata")


def _train_metadata(tmp_path):
    metadata = tmp_path / "root" / "metadata"
    metadata.mkdir(parents=True)
    music = {"duet": {"source_1": {}, "source_2": {}, "mixture": {}}}
    (metadata / "music.train.json").write_text(json.dumps(music))
    (metadata / "gains_meta.json").write_text(json.dumps({"2": {"gain_a": {}, "gain_b": {}}}))
    listeners = {f"L000{i}": {} for i in range(1, 4)}
    (metadata / "listeners.train.json").write_text(json.dumps(listeners))
    return metadata, listeners


def _official_draws(metadata, gains_per_track, listener_per_scene):
    """What the official generator writes for one song of two sources: the same legacy draws
    (seed text Cad2Task2_2024, then Cadenza2-scene) and json.dump(..., indent=4)."""
    np.random.seed(seed_from_text("Cad2Task2_2024"))
    scenes = {
        f"S{10001 + i}": {"music": "duet", "gain": np.random.choice(["gain_a", "gain_b"])}
        for i in range(gains_per_track)
    }
    listeners = list(json.loads((metadata / "listeners.train.json").read_text()))
    np.random.seed(seed_from_text("Cadenza2-scene"))
    scene_listeners = {
        scene: list(np.random.choice(listeners, listener_per_scene)) for scene in scenes
    }
    return json.dumps(scenes, indent=4), json.dumps(scene_listeners, indent=4)


def test_generate_train_scenes_script(tmp_path, run_script):
    metadata, listeners = _train_metadata(tmp_path)
    arguments = [
        f"path.root={tmp_path / 'root'}", f"hydra.run.dir={tmp_path}/log",
        "gains_per_track=5", "listener_per_scene=3",
    ]
    result = run_script("process_dataset/generate_train_scenes.py", arguments)
    assert result.returncode == 0, result.stderr[-3000:]
    scenes_text = (metadata / "scenes.train2.json").read_text()
    scene_listeners_text = (metadata / "scene_listeners.train2.json").read_text()
    assert (scenes_text, scene_listeners_text) == _official_draws(metadata, 5, 3)
    scenes = json.loads(scenes_text)
    assert list(scenes) == [f"S1000{i}" for i in range(1, 6)]
    scene_listeners = json.loads(scene_listeners_text)
    assert list(scene_listeners) == list(scenes)
    for chosen in scene_listeners.values():
        assert len(chosen) == 3 and set(chosen) <= set(listeners)
    # a second run may replace the files it wrote itself
    result = run_script("process_dataset/generate_train_scenes.py", arguments)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (metadata / "scenes.train2.json").read_text() == scenes_text


def test_generate_train_scenes_keeps_released_metadata(tmp_path, run_script):
    metadata, _ = _train_metadata(tmp_path)
    released = metadata / "scene_listeners.train.json"
    released.write_text('{"S10001": ["L0001"]}')
    arguments = [
        f"path.root={tmp_path / 'root'}", f"hydra.run.dir={tmp_path}/log",
        f"path.scene_listeners_file={released}",
    ]
    result = run_script("process_dataset/generate_train_scenes.py", arguments)
    assert result.returncode != 0
    assert f"refusing to replace {released}" in result.stderr
    assert released.read_text() == '{"S10001": ["L0001"]}'
    assert not (metadata / "scenes.train2.json").exists()  # nothing written before the check
    result = run_script("process_dataset/generate_train_scenes.py", [*arguments, "overwrite=true"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert released.read_text() == _official_draws(metadata, 4, 2)[1]


def test_a_generated_file_edited_by_hand_is_not_replaced(tmp_path):
    path = tmp_path / "scenes.train2.json"
    write_generated_text(path, "{}")
    check_replaceable([path], overwrite=False)
    path.write_text('{"edited": 1}')
    with pytest.raises(FileExistsError, match=r"scenes\.train2\.json"):
        check_replaceable([path], overwrite=False)
    check_replaceable([path], overwrite=True)
