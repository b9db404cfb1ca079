"""The embedded demo: dataset generation, listeners and compressor fit, the score plot."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy.ndimage import uniform_filter1d
from scipy.signal import find_peaks, welch

from clarity.cad2.metadata import load_recipe_metadata, split_of_scene
from clarity.cad2.score_plots import plot_scores
from clarity.demo.dataset import LISTENERS_PER_SCENE, SCENES_PER_SONG, make_dataset
from clarity.demo.layout import LABELS, SYSTEMS, demo_paths, summary_table
from clarity.demo.listeners import (
    band_centres,
    compressor_params,
    fit_compressor,
    make_listeners,
    severity,
    standard_audiogram,
)
from clarity.demo.render import RENDERING_VERSION, SOUNDFONT, render_voice
from clarity.demo.scenes import draw_gains
from clarity.demo.songs import plan_songs
from clarity.separation.checkpoints import INSTRUMENTS

SPLITS = ("train", "valid")
SCORE_COLUMNS = ["scene", "song", "listener", "left_haaqi", "right_haaqi", "avg_haaqi"]


def audio_digest(root: Path) -> str:
    """SHA-256 of every FLAC's decoded samples under ``root/audio``, in path order."""
    digest = hashlib.sha256()
    for path in sorted((root / "audio").rglob("*.flac")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(sf.read(path, dtype="int16")[0].tobytes())
    return digest.hexdigest()


def recipe_paths(root: Path, split: str) -> dict[str, Path]:
    """The recipe config's `path` group for one split of a dataset."""
    metadata = root / "metadata"
    return {
        "gains_file": metadata / "gains.json",
        "scenes_file": metadata / f"scenes.{split}.json",
        "scene_listeners_file": metadata / f"scene_listeners.{split}.json",
        "music_file": metadata / f"music.{split}.json",
        "listeners_file": metadata / f"listeners.{split}.json",
        "enhancer_params_file": metadata / f"compressor_params.{split}.json",
    }


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "cad2"
    summary = make_dataset(root, "tiny", seed=0, log=lambda line: None)
    assert summary.rendered == len(plan_songs("tiny")) and summary.kept == 0
    return root


def test_same_seed_same_audio_other_seed_other_audio(tiny_root, tmp_path):
    again = tmp_path / "again"
    make_dataset(again, "tiny", seed=0, log=lambda line: None)
    assert audio_digest(again) == audio_digest(tiny_root)
    for name in ("music.valid.json", "listeners.valid.json", "scenes.train.json", "gains.json"):
        assert (again / "metadata" / name).read_bytes() == (
            tiny_root / "metadata" / name
        ).read_bytes()
    other = tmp_path / "other"
    make_dataset(other, "tiny", seed=1, log=lambda line: None)
    assert audio_digest(other) != audio_digest(tiny_root)


def test_rerun_keeps_existing_files(tiny_root):
    stamps = {p: p.stat().st_mtime_ns for p in tiny_root.rglob("*") if p.is_file()}
    summary = make_dataset(tiny_root, "tiny", seed=0, log=lambda line: None)
    assert summary.rendered == 0 and summary.kept == len(plan_songs("tiny"))
    assert {p: p.stat().st_mtime_ns for p in tiny_root.rglob("*") if p.is_file()} == stamps


def test_another_seed_in_the_same_root_renders_again(tmp_path):
    root = tmp_path / "cad2"
    make_dataset(root, "tiny", seed=0, log=lambda line: None)
    first = audio_digest(root)
    assert make_dataset(root, "tiny", seed=3, log=lambda line: None).rendered > 0
    assert audio_digest(root) != first
    assert json.loads((root / "demo_dataset.json").read_text()) == {
        "size": "tiny",
        "seed": 3,
        "rendering": RENDERING_VERSION,
    }


def test_another_soundfont_is_recorded_and_renders_again(tmp_path):
    root = tmp_path / "cad2"
    make_dataset(root, "tiny", seed=0, log=lambda line: None)
    other = tmp_path / "Other_GM.sf2"
    shutil.copyfile(SOUNDFONT, other)  # the same samples under another name
    summary = make_dataset(root, "tiny", seed=0, log=lambda line: None, soundfont=other)
    assert summary.rendered == len(plan_songs("tiny"))
    assert json.loads((root / "demo_dataset.json").read_text())["soundfont"] == "Other_GM.sf2"
    with pytest.raises(ValueError, match=r"soundfont .*missing\.sf2: no such file"):
        render_voice(np.array([[0.0, 0.5, 60, 90]]), "Flute", 1.0,
                     soundfont=tmp_path / "missing.sf2")  # fmt: skip


def test_audio_of_an_older_renderer_is_rendered_again(tmp_path):
    root = tmp_path / "cad2"
    make_dataset(root, "tiny", seed=0, log=lambda line: None)
    marker = root / "demo_dataset.json"
    marker.write_text(json.dumps({"size": "tiny", "seed": 0}))  # as rendering version 1 wrote it
    assert make_dataset(root, "tiny", seed=0, log=lambda line: None).rendered > 0
    assert json.loads(marker.read_text())["rendering"] == RENDERING_VERSION


def test_validation_audio_alone_then_the_rest_and_stale_audio_is_not_kept(tiny_root, tmp_path):
    root = tmp_path / "cad2"
    summary = make_dataset(root, "tiny", seed=0, log=lambda line: None, splits=("valid",))
    assert summary.rendered == sum(plan.split == "valid" for plan in plan_songs("tiny"))
    assert not (root / "audio" / "train").exists()
    assert (root / "metadata" / "music.train.json").read_bytes() == (
        tiny_root / "metadata" / "music.train.json"
    ).read_bytes()
    summary = make_dataset(root, "tiny", seed=0, log=lambda line: None)
    assert summary.rendered == sum(plan.split == "train" for plan in plan_songs("tiny"))
    assert audio_digest(root) == audio_digest(tiny_root)
    # another seed, validation only: the training audio of seed 0 is removed, not kept as seed 1
    make_dataset(root, "tiny", seed=1, log=lambda line: None, splits=("valid",))
    assert not any((root / "audio" / "train").rglob("*.flac"))
    with pytest.raises(ValueError, match=r"splits \['test'\]: expected 'train' and/or 'valid'"):
        make_dataset(root, "tiny", seed=0, log=lambda line: None, splits=("test",))


@pytest.mark.parametrize("split", SPLITS)
def test_metadata_passes_the_recipe_checks(tiny_root, split):
    metadata = load_recipe_metadata(recipe_paths(tiny_root, split))
    assert {split_of_scene(scene) for scene in metadata.scenes} == {split}
    expected_listener_prefix = {"train": "L0", "valid": "L5"}[split]
    assert all(name.startswith(expected_listener_prefix) for name in metadata.listeners)
    for song in metadata.songs.values():
        assert 2 <= len(song.sources) <= 5
        assert (tiny_root / "audio" / song.mixture.track).is_file()
        assert song.mixture.track.startswith(f"{split}/{song.name}/")
        for track in song.sources.values():
            assert sf.info(str(tiny_root / "audio" / track.track)).samplerate == 44100
    for params in metadata.compressor_params.values():
        assert params.num_bands == 6


def test_music_entries_follow_the_official_order_and_labels(tiny_root):
    music = json.loads((tiny_root / "metadata" / "music.train.json").read_text())
    quartet = music["haydn_op74no1_i_000"]
    assert list(quartet) == ["source_1", "source_2", "source_3", "source_4", "mixture"]
    assert [entry["instrument"] for entry in quartet.values()] == [
        "Violin_1", "Violin_2", "Viola", "Cello", "Mixture",
    ]  # fmt: skip


def test_stems_sum_to_the_mixture(tiny_root):
    for split in SPLITS:
        music = json.loads((tiny_root / "metadata" / f"music.{split}.json").read_text())
        for entries in music.values():
            mixture = sf.read(tiny_root / "audio" / entries["mixture"]["track"])[0]
            stems = [
                sf.read(tiny_root / "audio" / entry["track"])[0]
                for key, entry in entries.items()
                if key != "mixture"
            ]
            assert (
                mixture.shape
                == stems[0].shape
                == (round(entries["mixture"]["duration"] * 44100), 2)
            )
            np.testing.assert_array_equal(mixture, np.sum(stems, axis=0))


def pitch_deviation(signal: np.ndarray, sample_rate: int) -> tuple[float, int]:
    """Median distance (semitones) of the 8 strongest spectral peaks (60 Hz-4 kHz) from the
    equal-tempered A440 scale, and how many pitch classes those peaks fall in."""
    frequencies, power = welch(signal, sample_rate, nperseg=16384)
    band = (frequencies > 60) & (frequencies < 4000)
    frequencies, power = frequencies[band], power[band]
    peaks, _ = find_peaks(power, distance=3)
    strongest = peaks[np.argsort(power[peaks])[-8:]]
    semitones = 12 * np.log2(frequencies[strongest] / 440.0)
    deviation = float(np.median(np.abs(semitones - np.round(semitones))))
    return deviation, len(set(np.round(semitones).astype(int) % 12))


def test_audio_is_music_not_silence_or_noise(tiny_root):
    for path in sorted((tiny_root / "audio").rglob("*.flac")):
        signal, sample_rate = sf.read(path)
        mono = signal.mean(axis=1)
        level = 10 * np.log10(np.mean(mono**2))
        assert -60 < level < -20, path
        deviation, pitch_classes = pitch_deviation(mono, sample_rate)
        assert deviation < 0.12, path  # spectral peaks on musical pitches
        assert pitch_classes >= 3, path  # several notes, not one tone
    # the same check rejects noise: its peaks fall anywhere between semitones
    noise = np.random.default_rng(0).standard_normal(44100 * 4)
    assert pitch_deviation(noise, 44100)[0] > 0.15


@pytest.mark.parametrize("instrument", ["Flute", "Viola"])
def test_rendered_voice_plays_its_notes(instrument):
    notes = np.array([[0.0, 0.9, 69.0, 90.0], [1.0, 0.9, 76.0, 90.0]])  # A4 then E5
    audio = render_voice(notes, instrument, 2.0)
    assert audio.shape == (88200,)
    assert audio.dtype == np.float32
    first, second = audio[2205:39690], audio[46305:83790]
    for part, expected in ((first, 440.0), (second, 659.26)):
        frequencies, power = welch(part, 44100, nperseg=8192)
        strongest = frequencies[np.argmax(power)]
        # the strongest partial is the note or one of its harmonics
        assert (
            abs(12 * np.log2(strongest / expected) - round(12 * np.log2(strongest / expected)))
            < 0.2
        )
        assert round(12 * np.log2(strongest / expected)) in (0, 12, 19, 24)
    assert np.sqrt(np.mean(audio[88200 // 2 - 2000 : 88200 // 2] ** 2)) > 0  # still sounding


def _resonance_shift(audio: np.ndarray, reference: np.ndarray) -> float:
    """Semitones by which the smoothed spectral envelope of ``audio`` sits above that of
    ``reference`` (negative: lower), searched within an octave in quarter tones."""

    def envelope(signal: np.ndarray) -> np.ndarray:
        frequencies, power = welch(signal, 44100, nperseg=4096)
        grid = 200 * 2 ** (np.arange(5 * 48) / 48)  # 200 Hz .. 6.4 kHz, 48 points per octave
        return uniform_filter1d(np.interp(grid, frequencies, 10 * np.log10(power + 1e-20)), 16)

    audio_envelope, reference_envelope = envelope(audio), envelope(reference)
    middle = slice(60, len(reference_envelope) - 60)

    def match(shift: int) -> float:
        moved = audio_envelope[60 + shift : len(audio_envelope) - 60 + shift]
        return np.corrcoef(moved, reference_envelope[middle])[0, 1]

    return max(range(-48, 49), key=match) / 4


def test_viola_resonances_sit_below_the_violin():
    # the soundfont's Viola preset plays the Violin samples (1.25 semitones apart here);
    # the renderer scales the violin body down by a fourth
    chromatic = np.array([[0.3 * k, 0.28, 62.0 + k, 90.0] for k in range(13)])  # D4 .. D5
    violin = render_voice(chromatic, "Violin", 4.0)
    assert _resonance_shift(violin, violin) == 0
    assert _resonance_shift(render_voice(chromatic, "Viola", 4.0), violin) <= -3


def test_bad_inputs_name_what_was_expected():
    with pytest.raises(ValueError, match="instrument 'Piano'"):
        render_voice(np.zeros((0, 4)), "Piano", 1.0)
    with pytest.raises(ValueError, match="demo size 'huge'"):
        plan_songs("huge")
    with pytest.raises(ValueError, match="num_sources"):
        draw_gains(1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="audiogram shape 'X9'"):
        standard_audiogram("X9")


def test_gains_follow_the_challenge_rule():
    rng = np.random.default_rng(0)
    for num_sources in (2, 3, 4, 5):
        for _ in range(20):
            gains = np.array(list(draw_gains(num_sources, rng).values()))
            altered = np.count_nonzero(gains)
            assert 1 <= altered <= num_sources - 1
            assert set(gains[gains != 0]) <= {-10.0, -6.0, -3.0, 3.0, 6.0, 10.0}


def test_band_centres_of_the_recipe_compressor():
    np.testing.assert_allclose(band_centres(), [250, 500, 1000, 2000, 4000, 8000], rtol=1e-4)


def test_worse_hearing_gets_more_gain_and_compression():
    mild, severe = standard_audiogram("N2"), standard_audiogram("N4")
    ratio_mild, gain_mild = fit_compressor(mild)
    ratio_severe, gain_severe = fit_compressor(severe)
    assert np.all(gain_severe >= gain_mild) and gain_severe.sum() > gain_mild.sum()
    assert np.all(ratio_severe >= ratio_mild) and ratio_severe.sum() > ratio_mild.sum()
    flat = [0, 0, 0, 0, 0, 0, 0, 0]
    ratio_none, gain_none = fit_compressor(flat)
    np.testing.assert_array_equal(gain_none, 0.0)
    np.testing.assert_array_equal(ratio_none, 1.0)
    # gain grows with the loss until its cap, band by band
    losses = np.arange(0, 121, 10)
    gains = np.array([fit_compressor([loss] * 8)[1] for loss in losses])
    assert np.all(np.diff(gains, axis=0) >= 0) and gains[-1, 0] > gains[1, 0]


def test_listeners_span_mild_to_severe():
    rng = np.random.default_rng(0)
    listeners = make_listeners(["L5001", "L5002"], ["N2", "N5"], rng)
    assert severity(listeners["L5001"]) == "mild"
    assert severity(listeners["L5002"]) == "severe"
    params = compressor_params(listeners)
    assert sum(params["L5002"]["gain_l"]) > sum(params["L5001"]["gain_l"])
    assert params["L5001"]["frequencies"] == [250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0]
    with pytest.raises(ValueError, match="one per listener"):
        make_listeners(["L5001"], ["N2", "N3"], rng)


def scores_frame(seed: int, scale: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    scenes = [f"S5000{k}" for k in range(1, 7)]
    listeners = ["L5001", "L5002", "L5003"] * 2
    left, right = rng.uniform(0.2, 0.8, (2, 6)) * scale
    return pd.DataFrame({
        "scene": scenes, "song": "song", "listener": listeners,
        "left_haaqi": left, "right_haaqi": right, "avg_haaqi": (left + right) / 2,
    })  # fmt: skip


def test_plot_scores_writes_a_png(tmp_path):
    severities = {"L5001": "mild", "L5002": "severe", "L5003": "moderate"}
    counts = {f"S5000{k}": 2 + k % 4 for k in range(1, 7)}
    bounds = {"passthrough": scores_frame(1, 0.8), "oracle": scores_frame(2, 1.2)}
    path = plot_scores(scores_frame(0), tmp_path / "run", severities, counts, bounds)
    assert path == tmp_path / "run" / "scores.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert not [p for p in path.parent.iterdir() if p != path]  # no temporary file left
    named = plot_scores(scores_frame(0), tmp_path / "named.png", severities, counts)
    assert named == tmp_path / "named.png" and named.is_file()
    with pytest.raises(ValueError, match="listener_severity has no entry"):
        plot_scores(scores_frame(0), tmp_path, {"L5001": "mild"}, counts)
    with pytest.raises(ValueError, match="missing column"):
        plot_scores(scores_frame(0).drop(columns="avg_haaqi"), tmp_path, severities, counts)


def test_summary_table_reports_each_system(tmp_path):
    paths = demo_paths("tiny", tmp_path)
    for offset, system in enumerate(SYSTEMS):
        folder = paths.exp_folder(system)
        folder.mkdir(parents=True, exist_ok=True)
        frame = scores_frame(0)
        frame["avg_haaqi"] = 0.1 * (offset + 1)
        frame.to_csv(folder / "scores.csv", index=False)
    table = summary_table(paths)
    for offset, system in enumerate(SYSTEMS):
        row = next(line for line in table.splitlines()
                   if line.split()[0] == LABELS.get(system, system))
        assert row.split()[1] == "6" and float(row.split()[-1]) == pytest.approx(0.1 * (offset + 1))


def test_small_training_split_gives_every_instrument_stems_in_the_roles_it_is_validated_in():
    plans = plan_songs("small")
    training = [plan for plan in plans if plan.split == "train"]
    stems = Counter(instrument for plan in training for _, instrument, _ in plan.sources())
    assert min(stems[instrument] for instrument in INSTRUMENTS) >= 30, stems

    def roles(split: str) -> set[tuple[str, bool]]:
        """(instrument, plays the top voice) of every source of the split."""
        return {
            (instrument, position == 0)
            for plan in plans if plan.split == split
            for position, (_, instrument, _) in enumerate(plan.sources())
        }  # fmt: skip

    assert roles("valid") <= roles("train")  # e.g. the flute below violins, not only on top
    assert len({plan.name for plan in plans}) == len(plans)


def test_small_validation_split_covers_every_instrument_of_the_recipe():
    plans = [plan for plan in plan_songs("small") if plan.split == "valid"]
    instruments = {instrument for plan in plans for _, instrument, _ in plan.sources()}
    assert instruments == set(INSTRUMENTS)
    assert sorted({len(plan.sources()) for plan in plans}) == [2, 3, 4, 5]
    assert any(label.endswith("_2") for plan in plans for label, _, _ in plan.sources())
    pairs = len(plans) * SCENES_PER_SONG["small"]["valid"] * LISTENERS_PER_SCENE["small"]["valid"]
    assert pairs >= 16
    training = {instrument for plan in plan_songs("small") if plan.split == "train"
                for _, instrument, _ in plan.sources()}
    assert training == set(INSTRUMENTS)
    assert not {plan.piece.slug for plan in plans} & {
        plan.piece.slug for plan in plan_songs("small") if plan.split == "train"
    }
