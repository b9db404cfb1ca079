"""A miniature CAD2 Task 2 dataset in the official layout, for tests and quick trials.

`write_mini_dataset(root)` writes 2 songs of 3 sources (Violin_1 + Violin_2 + Cello and
Flute + Violin + Cello: 3 instruments, one repeated), 2 scenes, 2 listeners and every
metadata file the recipe reads, under

    root/audio/valid/<song>/<instrument>.flac, root/audio/valid/<song>/mixture.flac
    root/metadata/{gains.json, scenes.valid.json, scene_listeners.valid.json,
                   music.valid.json, listeners.valid.json, compressor_params.valid.json}

Each stem is a harmonic tone with its own pitch, note rhythm and stereo position plus a little
noise; the mixture is their sum. The tracks are `margin` seconds longer on both sides than the
segment the metadata lists, so segment cutting is exercised.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

SONGS = {
    "mini_quartet_000": {"source_1": "Violin_1", "source_2": "Violin_2", "source_3": "Cello"},
    "mini_trio_000": {"source_1": "Flute", "source_2": "Violin", "source_3": "Cello"},
}
FUNDAMENTALS_HZ = {
    "Violin_1": 660.0, "Violin_2": 440.0, "Violin": 523.25, "Cello": 130.81, "Flute": 880.0
}
PANS = {"source_1": 0.25, "source_2": 0.75, "source_3": 0.5}
GAINS = {
    "gain_0001": {"source_1": 3.0, "source_2": 6.0, "source_3": -10.0},
    "gain_0002": {"source_1": -6.0, "source_2": 3.0, "source_3": 10.0},
}
SCENES = {
    "S50001": {"music": "mini_quartet_000", "gain": "gain_0001"},
    "S50002": {"music": "mini_trio_000", "gain": "gain_0002"},
}
SCENE_LISTENERS = {"S50001": ["L0001", "L0002"], "S50002": ["L0002"]}
AUDIOGRAM_FREQUENCIES = [250, 500, 1000, 2000, 3000, 4000, 6000, 8000]
LISTENERS = {
    "L0001": {"left": [10, 15, 20, 30, 40, 45, 50, 55], "right": [15, 15, 25, 35, 40, 50, 55, 60]},
    "L0002": {"left": [30, 35, 40, 50, 55, 60, 65, 70], "right": [25, 30, 40, 45, 55, 65, 70, 70]},
}
COMPRESSOR_PARAMS = {
    "L0001": {
        "cr_l": [1.0, 1.1, 1.2, 1.4, 1.6, 1.8], "cr_r": [1.0, 1.1, 1.3, 1.5, 1.7, 1.9],
        "gain_l": [2.0, 3.0, 5.0, 8.0, 11.0, 13.0], "gain_r": [2.0, 3.0, 6.0, 9.0, 12.0, 14.0],
    },
    "L0002": {
        "cr_l": [1.2, 1.4, 1.6, 1.9, 2.2, 2.5], "cr_r": [1.1, 1.3, 1.6, 1.8, 2.1, 2.4],
        "gain_l": [6.0, 8.0, 11.0, 15.0, 18.0, 20.0], "gain_r": [5.0, 7.0, 10.0, 14.0, 17.0, 19.0],
    },
}


def synthetic_stem(
    instrument: str, pan: float, seconds: float, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """A stereo harmonic tone in notes of random length: `(samples, 2)` float32, peak < 0.3.

    Args:
        instrument: key of `FUNDAMENTALS_HZ`.
        pan: 0 (left) .. 1 (right).
        seconds: length.
        sample_rate: Hz.
        rng: source of the note rhythm, pitches and noise.
    """
    n = round(seconds * sample_rate)
    time = np.arange(n) / sample_rate
    boundaries = np.cumsum(rng.uniform(0.2, 0.6, size=int(seconds / 0.2) + 2))
    note = np.searchsorted(boundaries, time)
    pitch_ratio = 2 ** (rng.choice([0, 2, 4, 5, 7], size=note.max() + 1) / 12)[note]
    phase = 2 * np.pi * np.cumsum(FUNDAMENTALS_HZ[instrument] * pitch_ratio) / sample_rate
    tone = sum(np.sin(k * phase) / k**1.5 for k in range(1, 6))
    onset = np.concatenate([[0.0], boundaries])[note]
    envelope = np.exp(-2.0 * (time - onset)) * np.minimum(1.0, (time - onset) / 0.02)
    mono = 0.15 * tone * envelope + 0.003 * rng.standard_normal(n)
    stereo = np.stack([mono * np.sqrt(1 - pan), mono * np.sqrt(pan)], axis=1)
    return stereo.astype(np.float32)


def write_mini_dataset(
    root: str | Path,
    duration: float = 3.0,
    margin: float = 0.25,
    sample_rate: int = 44100,
    seed: int = 0,
) -> Path:
    """Write the miniature dataset under `root` and return `root`.

    Args:
        root: dataset root (becomes `path.root`).
        duration: seconds of each song's segment listed in the metadata.
        margin: extra seconds of audio before and after the segment in every track.
        sample_rate: Hz of every track.
        seed: seed of the synthetic audio.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    seconds = duration + 2 * margin
    music = {}
    for song, sources in SONGS.items():
        folder = root / "audio" / "valid" / song
        folder.mkdir(parents=True, exist_ok=True)
        entry, mixture = {}, 0.0
        for source, instrument in sources.items():
            stem = synthetic_stem(instrument, PANS[source], seconds, sample_rate, rng)
            mixture = mixture + stem
            sf.write(folder / f"{instrument}.flac", stem, sample_rate, subtype="PCM_16")
            entry[source] = {
                "instrument": instrument,
                "track": f"valid/{song}/{instrument}.flac",
                "start": margin,
                "duration": duration,
            }
        sf.write(folder / "mixture.flac", mixture, sample_rate, subtype="PCM_16")
        entry["mixture"] = {
            "instrument": "Mixture",
            "track": f"valid/{song}/mixture.flac",
            "start": margin,
            "duration": duration,
        }
        music[song] = entry
    listeners = {
        listener: {
            "name": listener,
            "audiogram_cfs": AUDIOGRAM_FREQUENCIES,
            "audiogram_levels_l": levels["left"],
            "audiogram_levels_r": levels["right"],
        }
        for listener, levels in LISTENERS.items()
    }
    metadata = {
        "gains.json": GAINS,
        "scenes.valid.json": SCENES,
        "scene_listeners.valid.json": SCENE_LISTENERS,
        "music.valid.json": music,
        "listeners.valid.json": listeners,
        "compressor_params.valid.json": COMPRESSOR_PARAMS,
    }
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    for name, content in metadata.items():
        (root / "metadata" / name).write_text(json.dumps(content, indent=2), encoding="utf-8")
    return root
