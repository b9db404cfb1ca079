"""Training data from CAD2 metadata and the resumable training loop, on generated FLAC stems."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from clarity.separation.checkpoints import load_separation_models
from clarity.separation.convtasnet import ConvTasNetStereo
from clarity.separation.dataset import RebalanceMusicDataset, load_music_metadata
from clarity.separation.evaluation import framewise_sdr, si_sdr
from clarity.separation.training import TrainingConfig, separation_loss, train

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
SAMPLE_RATE = 8000
TINY_MODEL = {"N": 16, "L": 8, "B": 12, "H": 16, "P": 3, "X": 2, "R": 1}
# song -> instruments (with voice suffixes) and their fundamental frequencies, Hz
SONGS = {
    "train": {
        "song_a": {"Violin_1": 660.0, "Violin_2": 440.0, "Cello": 130.0},
        "song_b": {"Flute": 880.0, "Cello": 110.0},
        "song_c": {"Violin": 550.0, "Flute": 990.0, "Oboe": 330.0},
    },
    "valid": {
        "song_v": {"Violin": 600.0, "Cello": 120.0},
        "song_w": {"Flute": 700.0, "Oboe": 300.0},
        "song_x": {"Violin": 500.0, "Oboe": 320.0},  # two valid songs to share out by process
    },
}
TIMBRE = {"Violin": 0.7, "Cello": 0.9, "Flute": 0.2, "Oboe": 0.5}  # harmonic decay


def stem_audio(instrument: str, frequency: float, seconds: float, seed: int) -> np.ndarray:
    """(samples, 2) harmonic tone with a slow tremolo; the decay of harmonics is the timbre."""
    time = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    decay = TIMBRE[instrument.split("_")[0]]
    tone = sum(decay ** (k - 1) * np.sin(2 * np.pi * k * frequency * time) for k in range(1, 5))
    tremolo = 0.6 + 0.4 * np.sin(2 * np.pi * (1.5 + seed) * time)
    mono = 0.2 * tone * tremolo / 2
    return np.stack([mono, 0.8 * mono], axis=1).astype(np.float32)


def write_dataset(root: Path, seconds: float = 2.0) -> Path:
    """Tiny CAD2-like folder: metadata/music.<split>.json and audio/<split>/<song>/<stem>.flac."""
    (root / "metadata").mkdir(parents=True)
    seed = 0
    for split, songs in SONGS.items():
        metadata = {}
        for song, stems in songs.items():
            entries = {}
            mixture = 0
            for index, (instrument, frequency) in enumerate(stems.items(), 1):
                track = f"{split}/{song}/{instrument}.flac"
                (root / "audio" / track).parent.mkdir(parents=True, exist_ok=True)
                audio = stem_audio(instrument, frequency, seconds, seed)
                sf.write(root / "audio" / track, audio, SAMPLE_RATE)
                mixture = mixture + audio
                seed += 1
                entries[f"source_{index}"] = {
                    "instrument": instrument, "track": track, "start": 0, "duration": seconds,
                }  # fmt: skip
            track = f"{split}/{song}/mixture.flac"
            sf.write(root / "audio" / track, mixture, SAMPLE_RATE)
            metadata[song] = {
                "mixture": {"instrument": "Mixture", "track": track, "start": 0,
                            "duration": seconds},
                **entries,
            }  # fmt: skip
        (root / "metadata" / f"music.{split}.json").write_text(json.dumps(metadata))
    return root


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("cad2"))


def test_training_items_mix_target_and_random_accompaniment(dataset_root):
    dataset = RebalanceMusicDataset(dataset_root, "train", "Violin", SAMPLE_RATE, segment=0.5,
                                    samples_per_track=4)  # fmt: skip
    assert len(dataset) == 3 * 4  # Violin_1, Violin_2 (song_a), Violin (song_c)
    assert sorted(dataset.accompaniment_songs) == ["Cello", "Flute", "Oboe"]
    torch.manual_seed(0)
    for index in range(len(dataset)):
        mixture, sources = dataset[index]
        assert mixture.shape == (2, 4000) and sources.shape == (2, 2, 4000)
        torch.testing.assert_close(mixture, sources.sum(dim=0))
        assert sources[1].abs().max() > 0  # at least one accompanying instrument
        assert sources[0].abs().max() <= 1.25 * 0.2 * 4  # gain augmentation stays in range


def test_a_training_item_depends_on_seed_epoch_and_index_only(dataset_root):
    """What lets processes (and data workers) share an epoch's items out among themselves."""
    dataset = RebalanceMusicDataset(dataset_root, "train", "Violin", SAMPLE_RATE, segment=0.5,
                                    samples_per_track=4, seed=3)  # fmt: skip
    first = dataset[5][1]
    torch.manual_seed(123)  # the global random state plays no part
    dataset[2]
    torch.testing.assert_close(dataset[5][1], first, rtol=0, atol=0)
    dataset.set_epoch(1)
    assert not torch.equal(dataset[5][1], first)
    other_seed = RebalanceMusicDataset(dataset_root, "train", "Violin", SAMPLE_RATE,
                                       segment=0.5, samples_per_track=4, seed=4)  # fmt: skip
    assert not torch.equal(other_seed[5][1], first)


def best_offset(excerpt: np.ndarray, stem: np.ndarray) -> int:
    """Sample offset at which ``excerpt`` (samples,) best matches ``stem`` (samples,)."""
    scores = np.correlate(stem, excerpt, mode="valid")
    norms = np.sqrt(np.convolve(stem**2, np.ones(len(excerpt)), mode="valid"))
    return int(np.argmax(np.abs(scores) / np.maximum(norms, 1e-12)))


def test_coherent_items_are_one_song_at_one_offset(dataset_root):
    """With coherent_probability=1 every item is its target stem's own song, all stems cut at
    the same offset: the target is a combination of that song's violin voices, the
    accompaniment of its other stems, at the offset where the accompaniment matches."""
    dataset = RebalanceMusicDataset(dataset_root, "train", "Violin", SAMPLE_RATE, segment=0.5,
                                    samples_per_track=4, coherent_probability=1.0)  # fmt: skip
    stems = {
        (song, name): sf.read(dataset_root / "audio" / "train" / song / f"{name}.flac",
                              dtype="float32")[0][:, 0]
        for song, names in SONGS["train"].items() for name in names
    }  # fmt: skip
    n = 4000
    # per item: its song, its other stems, and a source made of one stem, to find the offset
    items = [("song_a", ["Cello"], 1, "Cello")] * 8
    items += [("song_c", ["Flute", "Oboe"], 0, "Violin")] * 4
    for index, (song, others, single, stem) in enumerate(items):
        mixture, sources = dataset[index]
        torch.testing.assert_close(mixture, sources.sum(dim=0))
        voices = [name for name in SONGS["train"][song] if name.startswith("Violin")]
        offset = best_offset(sources[single, 0].numpy(), stems[(song, stem)])
        for source, names in ((sources[0], voices), (sources[1], others)):
            # each channel is some gain times the stem, the channels maybe swapped
            basis = np.stack([stems[(song, name)][offset : offset + n] for name in names], 1)
            for channel in source.numpy():
                fit = np.linalg.lstsq(basis, channel, rcond=None)
                residual = channel - basis @ fit[0]
                assert np.abs(residual).max() < 2e-3 * np.abs(channel).max(), (index, names)
    half = RebalanceMusicDataset(dataset_root, "train", "Violin", SAMPLE_RATE, segment=0.5,
                                 samples_per_track=4, coherent_probability=0.5)  # fmt: skip
    # one draw decides; after it, a coherent item draws what it would with probability 1
    coherent = [torch.equal(half[i][1], dataset[i][1]) for i in range(len(half))]
    assert 0 < sum(coherent) < len(half)
    with pytest.raises(ValueError, match=r"coherent_probability must be in \[0, 1\]"):
        RebalanceMusicDataset(dataset_root, "train", "Violin", coherent_probability=1.5)


def test_validation_items_are_whole_songs_with_all_target_voices(dataset_root):
    dataset = RebalanceMusicDataset(dataset_root, "valid", "Cello", SAMPLE_RATE)
    assert len(dataset) == 1
    mixture, sources = dataset[0]
    assert sources.shape == (2, 2, 2 * SAMPLE_RATE)
    torch.testing.assert_close(mixture, sources.sum(dim=0))
    cello = stem_audio("Cello", 120.0, 2.0, seed=9).T  # seeds count stems in writing order
    violin = stem_audio("Violin", 600.0, 2.0, seed=8).T
    np.testing.assert_allclose(sources[0].numpy(), cello, atol=1e-4)  # FLAC 16-bit
    np.testing.assert_allclose(sources[1].numpy(), violin, atol=1e-4)


def test_bad_metadata_and_missing_audio_are_named(tmp_path):
    root = write_dataset(tmp_path / "cad2", seconds=0.5)
    metadata_file = root / "metadata" / "music.train.json"
    songs = json.loads(metadata_file.read_text())
    del songs["song_b"]["source_1"]["duration"]
    metadata_file.write_text(json.dumps(songs))
    with pytest.raises(ValueError, match=r"song 'song_b' key 'source_1': missing fields \['dur"):
        load_music_metadata(metadata_file)

    songs["song_b"]["source_1"]["duration"] = 0.5
    songs["song_b"]["source_1"]["instrument"] = "Piano"
    metadata_file.write_text(json.dumps(songs))
    with pytest.raises(ValueError, match="unknown instrument 'Piano'"):
        RebalanceMusicDataset(root, "train", "Violin", SAMPLE_RATE)

    songs["song_b"]["source_1"]["instrument"] = "Flute"
    metadata_file.write_text(json.dumps(songs))
    (root / "audio" / "train" / "song_c" / "Oboe.flac").unlink()
    with pytest.raises(ValueError, match=r"missing audio files: \[.*song_c/Oboe\.flac"):
        RebalanceMusicDataset(root, "train", "Violin", SAMPLE_RATE)
    with pytest.raises(ValueError, match="sample rate 8000 Hz, expected 44100"):
        RebalanceMusicDataset(root, "valid", "Violin", 44100)[0]
    with pytest.raises(ValueError, match=r"no song of music\.valid\.json has a Sax stem"):
        RebalanceMusicDataset(root, "valid", "Sax", SAMPLE_RATE)


def test_loss_decreases_when_training_a_tiny_model(dataset_root):
    torch.manual_seed(0)
    dataset = RebalanceMusicDataset(dataset_root, "train", "Violin", SAMPLE_RATE, segment=0.5,
                                    samples_per_track=2)  # fmt: skip
    mixture, sources = (
        torch.stack(parts) for parts in zip(*(dataset[i] for i in range(6)), strict=True)
    )
    model = ConvTasNetStereo(**TINY_MODEL, samplerate=SAMPLE_RATE).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = separation_loss(model(mixture), sources)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])


def training_config(root: Path, exp_dir: Path, **changes) -> TrainingConfig:
    options = dict(exp_dir=exp_dir, root=root, target="Violin", sample_rate=SAMPLE_RATE,
                   segment=0.5, samples_per_track=4, batch_size=4, epochs=2, lr=3e-3,
                   num_workers=0, **TINY_MODEL)  # fmt: skip
    return TrainingConfig.from_flat({**options, **changes})


def test_train_exports_the_best_model_and_resumes(dataset_root, tmp_path):
    exp_dir = tmp_path / "exp"
    first = train(training_config(dataset_root, exp_dir, epochs=1), progress=False)
    assert first.epochs_completed == 1 and first.stopped_because == "epochs"
    assert first.export_dir == exp_dir / "ConvTasNet_Violin_NonCausal"

    resumed = train(training_config(dataset_root, exp_dir, epochs=3), progress=False)
    assert resumed.epochs_completed == 3
    assert len(resumed.history) == 3
    assert resumed.history[0] == first.history[0]  # the first epoch was not redone
    assert resumed.best_loss == min(entry["val_loss"] for entry in resumed.history)
    assert resumed.history[-1]["val_loss"] < resumed.history[0]["val_loss"] * 1.5

    exported = ConvTasNetStereo.from_pretrained(resumed.export_dir)
    best = ConvTasNetStereo(**TINY_MODEL, samplerate=SAMPLE_RATE)
    best.load_state_dict(torch.load(exp_dir / "checkpoints" / "best.pt", weights_only=True))
    mixture = torch.randn(1, 2, 3000)
    with torch.no_grad():
        torch.testing.assert_close(exported(mixture), best.eval()(mixture), rtol=0, atol=0)
    assert exported.config == best.config and not exported.causal

    with pytest.raises(ValueError, match=r"changed model options \['H'\]"):
        train(training_config(dataset_root, exp_dir, epochs=4, H=24), progress=False)

    (exp_dir / "train_config.json").write_text("{truncated", encoding="utf-8")
    with pytest.raises(ValueError, match=r"training config file .*train_config\.json"):
        train(training_config(dataset_root, exp_dir, epochs=4), progress=False)


def test_time_budget_stops_training_and_causal_export_name(dataset_root, tmp_path):
    config = training_config(dataset_root, tmp_path / "exp", epochs=50, causal=True,
                             max_minutes=1e-4)  # fmt: skip
    result = train(config, progress=False)
    assert result.stopped_because == "time_budget"
    assert result.epochs_completed == 1  # the interrupted epoch is validated and saved
    assert result.export_dir.name == "ConvTasNet_Violin_Causal"
    assert ConvTasNetStereo.from_pretrained(result.export_dir).norm_type == "cLN"


def test_training_options_are_validated(tmp_path):
    with pytest.raises(ValueError, match="n_src must be 2"):
        training_config(tmp_path, tmp_path, n_src=3)
    with pytest.raises(ValueError, match="aggregate must be >= 1"):
        training_config(tmp_path, tmp_path, aggregate=0)


def test_sdr_tracks_the_noise_level_and_skips_silent_windows():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(2, 2, 3 * SAMPLE_RATE))  # (sources, channels, samples)
    noise = rng.normal(size=reference.shape)
    np.testing.assert_allclose(
        framewise_sdr(reference, reference + 0.1 * noise, SAMPLE_RATE), 20, atol=0.5
    )
    assert si_sdr(reference[0], reference[0] + 0.1 * noise[0]) == pytest.approx(20, abs=0.5)
    np.testing.assert_allclose(
        framewise_sdr(reference, reference + noise, SAMPLE_RATE), 0, atol=0.5
    )
    # a window where one source is silent is skipped for every source, as in museval
    partly_silent = reference.copy()
    partly_silent[0, :, :SAMPLE_RATE] = 0
    estimate = partly_silent + 0.1 * noise
    estimate[1, :, :SAMPLE_RATE] = 0.5 * rng.normal(size=(2, SAMPLE_RATE))  # ~-1 dB if scored
    np.testing.assert_allclose(framewise_sdr(partly_silent, estimate, SAMPLE_RATE), 20, atol=0.5)
    assert np.isnan(framewise_sdr(np.zeros((1, 2, 100)), np.ones((1, 2, 100)), SAMPLE_RATE)).all()
    with pytest.raises(ValueError, match=r"\(sources, channels, samples\)"):
        framewise_sdr(reference, reference[:, :1], SAMPLE_RATE)


def test_sdr_is_the_images_sdr_of_bsseval_v4_without_distortion_filtering():
    """museval v4 (images) scores a scaled or delayed copy of the reference by its error energy:
    10 log10(|s|^2 / |s_hat - s|^2); a distortion-filtered SDR would call both near perfect."""
    reference = np.random.default_rng(1).normal(size=(2, 2, 2 * SAMPLE_RATE))
    np.testing.assert_allclose(
        framewise_sdr(reference, 0.5 * reference, SAMPLE_RATE), 10 * np.log10(4), rtol=1e-12
    )
    delayed = np.roll(reference, 1, axis=-1)  # white noise one sample late: error = 2 |s|^2
    np.testing.assert_allclose(framewise_sdr(reference, delayed, SAMPLE_RATE), -3.01, atol=0.1)
    assert framewise_sdr(reference, reference, SAMPLE_RATE).tolist() == [100.0, 100.0]


def test_train_and_eval_command_lines(dataset_root, tmp_path):
    exp_dir = tmp_path / "exp"
    common = [sys.executable]
    train_args = ["--root", str(dataset_root), "--target", "Cello", "--exp_dir", str(exp_dir),
                  "--sample_rate", str(SAMPLE_RATE), "--segment", "0.5", "--samples_per_track",
                  "2", "--batch_size", "2", "--epochs", "1", "--num_workers", "0", "--causal",
                  *(arg for k, v in TINY_MODEL.items() for arg in (f"--{k}", str(v)))]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*common, str(REPO / "ConvTasNet" / "train.py"), *train_args], check=True,
                   env=env, capture_output=True)  # fmt: skip
    model_dir = exp_dir / "ConvTasNet_Cello_Causal"
    assert sorted(p.name for p in model_dir.iterdir()) == ["README.md", "config.json",
                                                           "model.safetensors"]  # fmt: skip
    subprocess.run([*common, str(REPO / "ConvTasNet" / "eval.py"), "--exp_dir", str(exp_dir),
                    "--n_save_ex", "1", "--segment", "0.5"], check=True, env=env,
                   capture_output=True)  # fmt: skip
    with (exp_dir / "eval" / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["song"] for row in rows] == ["song_v", "median"]  # the valid song with a cello
    assert np.isfinite(float(rows[0]["target_sdr"]))
    assert (exp_dir / "eval" / "song_v" / "target.wav").is_file()
    assert sf.info(str(exp_dir / "eval" / "song_v" / "accompaniment.wav")).frames == 2 * SAMPLE_RATE


def test_train_config_json_of_the_older_layout_is_read(tmp_path):
    """Files written before TrainingConfig.model (n_src, norm_type null) still resume."""
    config = training_config(tmp_path, tmp_path / "exp", causal=True)
    old = {k: v for k, v in config.to_json().items()
           if k not in ("C", "audio_channels", "samplerate", "mask_nonlinear")}  # fmt: skip
    old |= {"n_src": 2, "norm_type": None}
    again = TrainingConfig.from_flat(old)
    assert again.model == config.model and again.model.norm_type == "cLN"
    assert again.to_json() == config.to_json()
    with pytest.raises(ValueError, match=r"train_config\.json: unknown training options"):
        TrainingConfig.from_flat({**old, "kernel": 3}, source="exp/train_config.json")


def torchrun_training(processes: int, config: TrainingConfig) -> list[str]:
    """``torchrun`` command line of ``ConvTasNet/train.py`` with ``config``'s options."""
    options = {**config.to_json(), "norm_type": config.model.norm_type}
    arguments = []
    for name, value in options.items():
        if name in ("C", "audio_channels", "samplerate", "mask_nonlinear") or value is None:
            continue
        if isinstance(value, bool):
            arguments.append(f"--{name}" if value else f"--no-{name}")
        else:
            arguments += [f"--{name}", str(value)]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={processes}", str(REPO / "ConvTasNet" / "train.py"),
            *arguments]  # fmt: skip


def saved_history(exp_dir: Path) -> list[dict]:
    saved = torch.load(exp_dir / "checkpoints" / "last.pt", weights_only=False)
    return saved["state"]["history"]


def assert_same_curve(history: list[dict], reference: list[dict]) -> None:
    assert [entry["epoch"] for entry in history] == [entry["epoch"] for entry in reference]
    for key in ("train_loss", "val_loss", "lr"):
        np.testing.assert_allclose([entry[key] for entry in history],
                                   [entry[key] for entry in reference], rtol=1e-4,
                                   err_msg=key)  # fmt: skip


def kill_process_tree(pid: int) -> None:
    """SIGKILL ``pid`` and all its descendants at once, as a cluster's job kill does (torchrun
    starts each worker in a session of its own, so killing its process group is not enough)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while listing
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    tree, grown = {pid}, True
    while grown:
        children = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= children
        grown = bool(children)
    for member in tree:
        with contextlib.suppress(ProcessLookupError):  # it ended since
            os.kill(member, signal.SIGKILL)


DISTRIBUTED_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def test_two_gloo_processes_follow_the_curve_of_one_and_resume_after_kill_9(
    dataset_root, tmp_path
):
    """torchrun with 2 CPU processes (gloo), each with half of the global batch of 4, gives the
    loss curve of one process with the whole batch; a run killed with SIGKILL resumes, here in
    one process, and its curve is still the uninterrupted one."""
    options = {"samples_per_track": 8, "lr": 3e-3}
    two = training_config(dataset_root, tmp_path / "two", epochs=2, **options)
    subprocess.run(torchrun_training(2, two), check=True, env=DISTRIBUTED_ENV,
                   capture_output=True, timeout=300)  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == [
        "best.pt", "last.pt"
    ]  # written once, by rank 0, with no temporary file left
    assert (two.export_dir() / "model.safetensors").is_file()

    killed = training_config(dataset_root, tmp_path / "killed", epochs=1000, **options)
    state_file = tmp_path / "killed" / "checkpoints" / "last.pt"
    run = subprocess.Popen(torchrun_training(2, killed), env=DISTRIBUTED_ENV,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not state_file.is_file() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state_file.is_file(), "the 2-process run saved no epoch"
    finally:
        kill_process_tree(run.pid)
        run.wait()
    interrupted_at = len(saved_history(tmp_path / "killed"))
    resumed = train(
        training_config(dataset_root, tmp_path / "killed", epochs=interrupted_at + 1, **options),
        progress=False,
    )
    assert resumed.history[-1]["processes"] == 1
    assert {entry["processes"] for entry in resumed.history[:-1]} == {2}

    one = train(
        training_config(dataset_root, tmp_path / "one", epochs=interrupted_at + 1, **options),
        progress=False,
    )
    assert_same_curve(saved_history(tmp_path / "two"), one.history[:2])
    assert_same_curve(resumed.history, one.history)
    exported = ConvTasNetStereo.from_pretrained(resumed.export_dir).state_dict()
    for name, weight in ConvTasNetStereo.from_pretrained(one.export_dir).state_dict().items():
        torch.testing.assert_close(exported[name], weight, rtol=1e-3, atol=1e-5)


def test_mixed_precision_options(dataset_root, tmp_path):
    bfloat16 = train(training_config(dataset_root, tmp_path / "bf16", epochs=1,
                                     precision="bfloat16"), progress=False)  # fmt: skip
    assert np.isfinite(bfloat16.history[0]["train_loss"])
    with pytest.raises(ValueError, match="precision float16 needs a CUDA device"):
        train(training_config(dataset_root, tmp_path / "fp16", precision="float16", device="cpu"),
              progress=False)  # fmt: skip
    with pytest.raises(ValueError, match=r"precision must be one of .*'float32'.*got 'half'"):
        training_config(dataset_root, tmp_path / "half", precision="half")
    odd = training_config(dataset_root, tmp_path / "odd", batch_size=3)
    failed = subprocess.run(torchrun_training(2, odd), env=DISTRIBUTED_ENV, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert failed.returncode != 0
    assert "batch_size=3 (the global batch) must be a multiple of the 2 processes" in failed.stderr


def test_compiled_training_follows_the_curve_of_the_module(dataset_root, tmp_path):
    """``compile=True`` runs the same forward through torch.compile: same losses and weights
    within float tolerance (its fused kernels sum in another order)."""
    plain = train(training_config(dataset_root, tmp_path / "plain"), progress=False)
    compiled = train(training_config(dataset_root, tmp_path / "compiled", compile=True),
                     progress=False)  # fmt: skip
    for ours, reference in zip(compiled.history, plain.history, strict=True):
        for key in ("train_loss", "val_loss"):
            assert ours[key] == pytest.approx(reference[key], rel=1e-3), key
    weights = ConvTasNetStereo.from_pretrained(compiled.export_dir).state_dict()
    for name, weight in ConvTasNetStereo.from_pretrained(plain.export_dir).state_dict().items():
        torch.testing.assert_close(weights[name], weight, rtol=1e-3, atol=1e-4)


def test_train_all_gathers_the_models_into_one_checkpoint_folder(dataset_root, tmp_path):
    """``--target all`` trains each instrument of the training data and saves the best models
    in the layout separator.checkpoint_dir takes."""
    arguments = ["--root", str(dataset_root), "--target", "all", "--exp_dir", str(tmp_path / "exp"),
                 "--checkpoint_dir", str(tmp_path / "checkpoints"), "--sample_rate",
                 str(SAMPLE_RATE), "--segment", "0.5", "--samples_per_track", "2",
                 "--batch_size", "2", "--epochs", "1", "--num_workers", "0",
                 *(arg for k, v in TINY_MODEL.items() for arg in (f"--{k}", str(v)))]  # fmt: skip
    subprocess.run([sys.executable, str(REPO / "ConvTasNet" / "train.py"), *arguments],
                   check=True, env=DISTRIBUTED_ENV, capture_output=True)  # fmt: skip
    trained = ["Cello", "Flute", "Oboe", "Violin"]  # the instruments of the training songs
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        f"ConvTasNet_{instrument}_NonCausal" for instrument in trained
    ]
    assert sorted(p.name for p in (tmp_path / "exp").iterdir()) == trained
    models = load_separation_models("noncausal", tmp_path / "checkpoints", trained, "cpu")
    assert sorted(models) == trained


@pytest.mark.parametrize("script", sorted((REPO / "ConvTasNet" / "slurm").glob("*.sbatch")))
def test_slurm_examples_are_valid_bash_with_options_train_py_knows(script):
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "srun torchrun" in text and "ConvTasNet/train.py" in text
    command = text[text.index("ConvTasNet/train.py"):]
    options = {word[2:] for word in command.split() if word.startswith("--")}
    parser = subprocess.run([sys.executable, str(REPO / "ConvTasNet" / "train.py"), "--help"],
                            check=True, capture_output=True, text=True).stdout  # fmt: skip
    known = {word[2:].strip("[],") for word in parser.split() if word.startswith("--")}
    assert options <= known, sorted(options - known)
