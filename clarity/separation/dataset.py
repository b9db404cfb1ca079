"""Target-vs-accompaniment training data for one instrument from the CAD2 Task 2 metadata.

Metadata (``<root>/metadata/music.<split>.json``) maps each song to its stems::

    {"song": {"mixture": {"instrument": "Mixture", "track": "...", "start": 0, "duration": 30},
              "source_1": {"instrument": "Violin_1", "track": "...", "start": 0, "duration": 30},
              ...}}

``track`` is relative to ``<root>/audio``; ``start`` and ``duration`` are in seconds; an
instrument name may carry a voice suffix (``Violin_1``), its base name is the model instrument.

As in the official CAD2 recipe (after the Asteroid/Open-Unmix MUSDB recipes):

* train items are random ``segment``-second excerpts of a stem of the target instrument, mixed
  with all stems of 1 to 3 other instruments, each taken at random from a random song and at a
  random offset; every stem is augmented (random per-channel gain in [0.25, 1.25] with
  probability 0.5, channel swap with probability 0.5);
* with probability ``coherent_probability`` (0 in the official recipe) a train item is instead
  one excerpt of the target stem's own song: all its stems at one offset, the stems of the
  target instrument against the others, each augmented as above. Such items have the
  harmony and shared onsets of real ensemble playing, which random mixtures lack;
* items of any other split ("valid", an evaluation split) are whole songs containing the
  target: the target stems against the rest.

Unlike the official loader, all stems of the target instrument in a song (two violin voices)
form the target, and a stem shorter than the segment is zero padded instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from clarity.separation.checkpoints import INSTRUMENTS
from clarity.utils.json_files import read_json_object

GAIN_RANGE = (0.25, 1.25)
MAX_ACCOMPANIMENT_INSTRUMENTS = 3


@dataclass(frozen=True)
class Stem:
    """One stem of a song: base ``instrument``, ``track`` path and ``start``/``duration`` in s."""

    instrument: str
    track: Path
    start: float
    duration: float


def base_instrument(name: str) -> str:
    """Instrument without its voice suffix: "Violin_1" -> "Violin"."""
    return name.split("_")[0]


def load_music_metadata(metadata_file: str | Path) -> dict[str, list[Stem]]:
    """Read a ``music.<split>.json`` file into song -> source stems (the mixture entry dropped).

    Raises ``ValueError`` naming the file, song and key of any malformed entry.
    """
    path = Path(metadata_file)
    songs = read_json_object(path, "music metadata")
    parsed = {}
    for song, entries in songs.items():
        if not isinstance(entries, dict):
            raise ValueError(f"{path}: song {song!r} must map keys to stems")
        stems = []
        for key, entry in entries.items():
            where = f"{path}: song {song!r} key {key!r}"
            stem = _parse_stem(entry, where)
            if stem.instrument != "Mixture":
                stems.append(stem)
        parsed[song] = stems
    return parsed


def _parse_stem(entry: object, where: str) -> Stem:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected an object with instrument, track, start, duration")
    missing = [k for k in ("instrument", "track", "start", "duration") if k not in entry]
    if missing:
        raise ValueError(f"{where}: missing fields {missing}")
    instrument, track = entry["instrument"], entry["track"]
    if not isinstance(instrument, str) or not isinstance(track, str):
        raise ValueError(f"{where}: 'instrument' and 'track' must be strings")
    for field in ("start", "duration"):
        value = entry[field]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{where}: '{field}' must be a number >= 0 s, got {value!r}")
    name = base_instrument(instrument)
    if name != "Mixture" and name not in INSTRUMENTS:
        raise ValueError(
            f"{where}: unknown instrument {instrument!r}; expected one of {INSTRUMENTS}"
        )
    return Stem(name, Path(track), float(entry["start"]), float(entry["duration"]))


def read_excerpt(path: Path, sample_rate: int, start: float, n_samples: int | None) -> np.ndarray:
    """Read ``n_samples`` (None: to the end) from ``start`` s as float32 (2, samples).

    Mono files are duplicated to stereo; excerpts running past the end are zero padded.
    """
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as error:
        raise ValueError(f"cannot read audio file {path}: {error}") from error
    if info.samplerate != sample_rate:
        raise ValueError(f"{path}: sample rate {info.samplerate} Hz, expected {sample_rate} Hz")
    first = int(start * sample_rate)
    stop = None if n_samples is None else first + n_samples
    audio, _ = sf.read(str(path), start=first, stop=stop, dtype="float32", always_2d=True)
    audio = audio.T
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    elif audio.shape[0] != 2:
        raise ValueError(f"{path}: expected mono or stereo audio, got {audio.shape[0]} channels")
    if n_samples is not None and audio.shape[1] < n_samples:
        audio = np.pad(audio, ((0, 0), (0, n_samples - audio.shape[1])))
    return np.ascontiguousarray(audio)


def augment_source(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random per-channel gain (p=0.5, uniform in [0.25, 1.25]) then channel swap (p=0.5)."""
    if rng.random() < 0.5:
        audio = audio * rng.uniform(*GAIN_RANGE, size=(audio.shape[0], 1)).astype(np.float32)
    if rng.random() < 0.5:
        audio = audio[::-1]
    return audio


class RebalanceMusicDataset(Dataset):
    """(mixture (2, samples), sources (2, 2, samples): [target, accompaniment]) for one instrument.

    Args:
        root: CAD2 Task 2 folder with ``metadata/music.<split>.json`` and ``audio/``.
        split: "train" (random excerpts and accompaniments, augmented) or any other split with a
            metadata file, e.g. "valid" (whole songs).
        target: instrument to separate, one of :data:`INSTRUMENTS`.
        sample_rate: Hz every audio file must have.
        segment: train excerpt length, s.
        samples_per_track: train items drawn per target stem per epoch.
        seed: with the epoch (:meth:`set_epoch`) and the item index, seeds the random draws of
            a train item, so an item is the same whichever process or data worker loads it
            (distributed training splits the items among processes).
        coherent_probability: probability that a train item is an excerpt of its own song
            rather than a random mixture (see the module docstring); 0 draws no extra random
            number, so items are those of the official recipe.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        target: str,
        sample_rate: int = 44100,
        segment: float = 3.0,
        samples_per_track: int = 64,
        seed: int = 0,
        coherent_probability: float = 0.0,
    ):
        if not isinstance(split, str) or not split.isidentifier():
            raise ValueError(f"split must be a name such as 'train' or 'valid', got {split!r}")
        if target not in INSTRUMENTS:
            raise ValueError(f"target must be one of {INSTRUMENTS}, got {target!r}")
        if segment <= 0 or samples_per_track < 1:
            raise ValueError(
                f"segment must be > 0 s and samples_per_track >= 1, got {segment}, "
                f"{samples_per_track}"
            )
        if not 0.0 <= coherent_probability <= 1.0:
            raise ValueError(f"coherent_probability must be in [0, 1], got {coherent_probability}")
        self.root = Path(root)
        self.audio_dir = self.root / "audio"
        self.split = split
        self.target = target
        self.sample_rate = sample_rate
        self.segment = segment
        self.samples_per_track = samples_per_track if split == "train" else 1
        self.seed = seed
        self.coherent_probability = coherent_probability
        self.epoch = 0
        self.songs = load_music_metadata(self.root / "metadata" / f"music.{split}.json")
        self._check_audio_files()
        self.target_songs = [
            song for song, stems in self.songs.items() if any(s.instrument == target for s in stems)
        ]
        if not self.target_songs:
            raise ValueError(f"no song of music.{split}.json has a {target} stem")
        # (song, stem) of every stem of the target instrument
        self.target_stems_of_songs = [
            (song, stem)
            for song in self.target_songs
            for stem in self.songs[song]
            if stem.instrument == target
        ]
        self.target_stems = [stem for _, stem in self.target_stems_of_songs]
        # other instrument -> songs holding at least one of its stems (train accompaniment pool)
        pool: dict[str, set[str]] = {}
        for song, stems in self.songs.items():
            for stem in stems:
                if stem.instrument != target:
                    pool.setdefault(stem.instrument, set()).add(song)
        self.accompaniment_songs = {name: sorted(songs) for name, songs in sorted(pool.items())}

    def _check_audio_files(self) -> None:
        missing = sorted(
            {
                str(self.audio_dir / stem.track)
                for stems in self.songs.values()
                for stem in stems
                if not (self.audio_dir / stem.track).is_file()
            }
        )
        if missing:
            raise ValueError(f"music.{self.split}.json refers to missing audio files: {missing}")

    def set_epoch(self, epoch: int) -> None:
        """Draw the train items of epoch ``epoch`` (0-based) from now on."""
        self.epoch = epoch

    def __len__(self) -> int:
        if self.split == "train":
            return len(self.target_stems) * self.samples_per_track
        return len(self.target_songs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        if self.split == "train":
            rng = np.random.default_rng([self.seed, self.epoch, index])
            target, accompaniment = self._training_item(index // self.samples_per_track, rng)
        else:
            target, accompaniment = self._whole_song_item(self.target_songs[index])
        sources = torch.from_numpy(np.stack([target, accompaniment]))
        return sources.sum(dim=0), sources

    def _random_excerpt(self, stem: Stem, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        latest = max(stem.duration - self.segment, 0.0)
        start = stem.start + rng.uniform(0.0, latest)
        audio = read_excerpt(self.audio_dir / stem.track, self.sample_rate, start, n_samples)
        return augment_source(audio, rng)

    def _training_item(
        self, stem_index: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        n_samples = int(self.segment * self.sample_rate)
        if self.coherent_probability and rng.random() < self.coherent_probability:
            return self._song_excerpt(*self.target_stems_of_songs[stem_index], n_samples, rng)
        target = self._random_excerpt(self.target_stems[stem_index], n_samples, rng)
        accompaniment = np.zeros_like(target)
        names = sorted(self.accompaniment_songs)
        count = min(int(rng.integers(1, MAX_ACCOMPANIMENT_INSTRUMENTS + 1)), len(names))
        for name in rng.choice(names, size=count, replace=False):
            song = self.accompaniment_songs[name][
                int(rng.integers(len(self.accompaniment_songs[name])))
            ]
            for stem in self.songs[song]:
                if stem.instrument == name:
                    accompaniment += self._random_excerpt(stem, n_samples, rng)
        return target, accompaniment

    def _song_excerpt(
        self, song: str, reference: Stem, n_samples: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """All stems of ``song`` at one random offset within ``reference``, each augmented:
        (target stems summed, other stems summed)."""
        offset = rng.uniform(0.0, max(reference.duration - self.segment, 0.0))
        target = np.zeros((2, n_samples), dtype=np.float32)
        accompaniment = np.zeros_like(target)
        for stem in self.songs[song]:
            audio = read_excerpt(
                self.audio_dir / stem.track, self.sample_rate, stem.start + offset, n_samples
            )
            if stem.instrument == self.target:
                target += augment_source(audio, rng)
            else:
                accompaniment += augment_source(audio, rng)
        return target, accompaniment

    def _whole_song_item(self, song: str) -> tuple[np.ndarray, np.ndarray]:
        stems = self.songs[song]
        reference = next(s for s in stems if s.instrument == self.target)
        n_samples = int(reference.duration * self.sample_rate)
        target = np.zeros((2, n_samples), dtype=np.float32)
        accompaniment = np.zeros_like(target)
        for stem in stems:
            audio = read_excerpt(
                self.audio_dir / stem.track, self.sample_rate, stem.start, n_samples
            )
            if stem.instrument == self.target:
                target += audio
            else:
                accompaniment += audio
        return target, accompaniment
