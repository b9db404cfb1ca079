"""Load and check the CAD2 Task 2 metadata files.

Formats (all JSON objects):

- `gains.json`: gain id -> {source id ("source_1", ...): gain in dB}.
- `scenes.<split>.json`: scene id ("S50001") -> {"music": song name, "gain": gain id}.
- `scene_listeners.<split>.json`: scene id -> [listener ids].
- `music.<split>.json`: song name -> {"mixture": track, "source_1": track, ...} where a track is
  {"instrument", "track" (path relative to `path.music_dir`), "start" (s), "duration" (s)}; the
  mixture's instrument is "Mixture", a source's is e.g. "Violin_1" or "Cello".
- `listeners.<split>.json`: Clarity listener file (audiogram_cfs, audiogram_levels_l/_r).
- `compressor_params.<split>.json`: listener id -> {"cr_l", "cr_r", "gain_l", "gain_r"}, one
  value per compressor band (ratios, make-up gains in dB).

Every loader raises `ValueError` naming the file and the key that is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clarity.utils.audiogram import Listener
from clarity.utils.json_files import read_json

MIXTURE_KEY = "mixture"
MIXTURE_INSTRUMENT = "Mixture"
COMPRESSOR_KEYS = ("cr_l", "cr_r", "gain_l", "gain_r")
_SCENE_ID = re.compile(r"^S(\d+)$")


@dataclass(frozen=True)
class Track:
    """One entry of a song in `music.<split>.json`.

    Attributes:
        instrument: "Mixture" for the mixture, else e.g. "Violin_1" or "Cello".
        track: audio file, relative to `path.music_dir`.
        start: segment start in seconds.
        duration: segment duration in seconds.
    """

    instrument: str
    track: str
    start: float
    duration: float

    @property
    def model_instrument(self) -> str:
        """Instrument family that selects the separation model ("Violin_1" -> "Violin")."""
        return self.instrument.split("_")[0]


@dataclass(frozen=True)
class Song:
    """A song: its mixture and its sources, in the order of the metadata file."""

    name: str
    mixture: Track
    sources: dict[str, Track]

    def source_instruments(self) -> dict[str, str]:
        """Source id -> model instrument ("source_1" -> "Violin")."""
        return {source_id: track.model_instrument for source_id, track in self.sources.items()}


@dataclass(frozen=True)
class Scene:
    """A scene: which song and which gains."""

    music: str
    gain: str


@dataclass(frozen=True)
class CompressorParams:
    """A listener's multiband compressor settings, one value per band.

    Attributes:
        ratio_left, ratio_right: compression ratios.
        gain_left, gain_right: make-up gains in dB.
    """

    ratio_left: list[float]
    ratio_right: list[float]
    gain_left: list[float]
    gain_right: list[float]

    @property
    def num_bands(self) -> int:
        """Number of compressor bands."""
        return len(self.ratio_left)


@dataclass(frozen=True)
class RecipeMetadata:
    """Every metadata file one run of the recipe needs, checked against each other."""

    gains: dict[str, dict[str, float]]
    scenes: dict[str, Scene]
    scene_listeners: dict[str, list[str]]
    songs: dict[str, Song]
    listeners: dict[str, Listener]
    compressor_params: dict[str, CompressorParams]

    def song_of(self, scene_id: str) -> Song:
        """The song a scene plays."""
        return self.songs[self.scenes[scene_id].music]

    def gains_of(self, scene_id: str) -> dict[str, float]:
        """The gains (source id -> dB) a scene asks for."""
        return self.gains[self.scenes[scene_id].gain]


def scene_listener_pairs(
    scene_listeners: Mapping[str, list[str]], small_test: bool = False
) -> list[tuple[str, str]]:
    """All (scene id, listener id) pairs in file order; every 400th when `small_test`."""
    pairs = [
        (scene, listener) for scene, listeners in scene_listeners.items() for listener in listeners
    ]
    return pairs[::400] if small_test else pairs


def split_of_scene(scene_id: str) -> str:
    """Dataset split of a scene id, with the challenge's id ranges.

    S00001-S49998 are "train", S50001-S59998 "valid", anything else "test" (the bounds are
    exclusive, as in the challenge's own recipe).
    """
    match = _SCENE_ID.match(scene_id)
    if match is None:
        raise ValueError(f"scene id {scene_id!r}: expected 'S' followed by digits, e.g. 'S50001'")
    number = int(match.group(1))
    if 0 < number < 49999:
        return "train"
    if 50000 < number < 59999:
        return "valid"
    return "test"


def _object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _numbers(value: Any, where: str) -> list[float]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: expected a non-empty list of numbers, got {value!r}")
    return [_number(item, f"{where}[{index}]") for index, item in enumerate(value)]


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def load_gains(path: str | Path) -> dict[str, dict[str, float]]:
    """Load `gains.json`: gain id -> {source id: dB}."""
    data = _object(read_json(path, "gains"), str(path))
    return {
        gain_id: {
            source_id: _number(db, f"{path}: gain {gain_id!r} source {source_id!r}")
            for source_id, db in _object(sources, f"{path}: gain {gain_id!r}").items()
        }
        for gain_id, sources in data.items()
    }


def load_scenes(path: str | Path) -> dict[str, Scene]:
    """Load `scenes.<split>.json`: scene id -> Scene."""
    data = _object(read_json(path, "scenes"), str(path))
    scenes = {}
    for scene_id, entry in data.items():
        where = f"{path}: scene {scene_id!r}"
        entry = _object(entry, where)
        scenes[scene_id] = Scene(
            music=_string(entry.get("music"), f"{where} key 'music'"),
            gain=_string(entry.get("gain"), f"{where} key 'gain'"),
        )
    return scenes


def load_scene_listeners(path: str | Path) -> dict[str, list[str]]:
    """Load `scene_listeners.<split>.json`: scene id -> [listener ids]."""
    data = _object(read_json(path, "scene listeners"), str(path))
    scene_listeners = {}
    for scene_id, listeners in data.items():
        where = f"{path}: scene {scene_id!r}"
        if not isinstance(listeners, list):
            raise ValueError(f"{where}: expected a list of listener ids, got {listeners!r}")
        scene_listeners[scene_id] = [
            _string(listener, f"{where}[{index}]") for index, listener in enumerate(listeners)
        ]
    return scene_listeners


def _track(entry: Any, where: str) -> Track:
    entry = _object(entry, where)
    for key in ("instrument", "track", "start", "duration"):
        if key not in entry:
            raise ValueError(f"{where}: missing key {key!r}")
    duration = _number(entry["duration"], f"{where} key 'duration'")
    if duration <= 0:
        raise ValueError(f"{where} key 'duration': expected a positive number of seconds")
    start = _number(entry["start"], f"{where} key 'start'")
    if start < 0:
        raise ValueError(f"{where} key 'start': expected a non-negative number of seconds")
    return Track(
        instrument=_string(entry["instrument"], f"{where} key 'instrument'"),
        track=_string(entry["track"], f"{where} key 'track'"),
        start=start,
        duration=duration,
    )


def load_music(path: str | Path) -> dict[str, Song]:
    """Load `music.<split>.json`: song name -> Song."""
    data = _object(read_json(path, "music"), str(path))
    songs = {}
    for name, entries in data.items():
        where = f"{path}: song {name!r}"
        entries = _object(entries, where)
        if MIXTURE_KEY not in entries:
            raise ValueError(f"{where}: missing key {MIXTURE_KEY!r}")
        mixture = _track(entries[MIXTURE_KEY], f"{where} key {MIXTURE_KEY!r}")
        if mixture.instrument != MIXTURE_INSTRUMENT:
            raise ValueError(
                f"{where} key {MIXTURE_KEY!r}: instrument must be {MIXTURE_INSTRUMENT!r}, "
                f"got {mixture.instrument!r}"
            )
        sources = {
            key: _track(entry, f"{where} key {key!r}")
            for key, entry in entries.items()
            if key != MIXTURE_KEY
        }
        if not sources:
            raise ValueError(f"{where}: no sources besides the mixture")
        for key, source in sources.items():
            if MIXTURE_INSTRUMENT in source.instrument:
                raise ValueError(f"{where} key {key!r}: a source cannot be {MIXTURE_INSTRUMENT!r}")
        songs[name] = Song(name=name, mixture=mixture, sources=sources)
    return songs


def load_compressor_params(path: str | Path) -> dict[str, CompressorParams]:
    """Load `compressor_params.<split>.json`: listener id -> CompressorParams."""
    data = _object(read_json(path, "compressor parameters"), str(path))
    params = {}
    for listener_id, entry in data.items():
        where = f"{path}: listener {listener_id!r}"
        entry = _object(entry, where)
        missing = [key for key in COMPRESSOR_KEYS if key not in entry]
        if missing:
            raise ValueError(f"{where}: missing key(s) {missing}")
        values = {key: _numbers(entry[key], f"{where} key {key!r}") for key in COMPRESSOR_KEYS}
        lengths = {key: len(value) for key, value in values.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"{where}: all keys need one value per band, got lengths {lengths}")
        params[listener_id] = CompressorParams(
            ratio_left=values["cr_l"],
            ratio_right=values["cr_r"],
            gain_left=values["gain_l"],
            gain_right=values["gain_r"],
        )
    return params


def load_listeners(path: str | Path) -> dict[str, Listener]:
    """Load a Clarity listener file: listener id -> Listener."""
    if not Path(path).is_file():
        raise ValueError(f"listeners file not found: {path}")
    return Listener.load_listener_dict(path)


def load_recipe_metadata(paths: Mapping[str, Any]) -> RecipeMetadata:
    """Load every metadata file named in the config's `path` group and cross-check them.

    Args:
        paths: the `path` config group (keys `gains_file`, `scenes_file`,
            `scene_listeners_file`, `music_file`, `listeners_file`, `enhancer_params_file`).

    Raises:
        ValueError: a file is missing or malformed, or a scene to process refers to a scene,
            song, gain or listener that is not defined, or a gain misses one of the song's
            sources.
    """
    metadata = RecipeMetadata(
        gains=load_gains(paths["gains_file"]),
        scenes=load_scenes(paths["scenes_file"]),
        scene_listeners=load_scene_listeners(paths["scene_listeners_file"]),
        songs=load_music(paths["music_file"]),
        listeners=load_listeners(paths["listeners_file"]),
        compressor_params=load_compressor_params(paths["enhancer_params_file"]),
    )
    _check_references(metadata, paths)
    return metadata


def _check_references(metadata: RecipeMetadata, paths: Mapping[str, Any]) -> None:
    for scene_id, listener_ids in metadata.scene_listeners.items():
        where = f"{paths['scene_listeners_file']}: scene {scene_id!r}"
        split_of_scene(scene_id)
        if scene_id not in metadata.scenes:
            raise ValueError(f"{where} is not defined in {paths['scenes_file']}")
        scene = metadata.scenes[scene_id]
        if scene.music not in metadata.songs:
            raise ValueError(
                f"{paths['scenes_file']}: scene {scene_id!r} plays song {scene.music!r}, "
                f"which is not defined in {paths['music_file']}"
            )
        if scene.gain not in metadata.gains:
            raise ValueError(
                f"{paths['scenes_file']}: scene {scene_id!r} uses gain {scene.gain!r}, "
                f"which is not defined in {paths['gains_file']}"
            )
        song_sources = set(metadata.songs[scene.music].sources)
        missing_sources = song_sources - set(metadata.gains[scene.gain])
        if missing_sources:
            raise ValueError(
                f"{paths['gains_file']}: gain {scene.gain!r} (scene {scene_id!r}) has no gain "
                f"for source(s) {sorted(missing_sources)} of song {scene.music!r}"
            )
        for listener_id in listener_ids:
            if listener_id not in metadata.listeners:
                raise ValueError(
                    f"{where}: listener {listener_id!r} is not defined in {paths['listeners_file']}"
                )
            if listener_id not in metadata.compressor_params:
                raise ValueError(
                    f"{where}: listener {listener_id!r} has no entry in "
                    f"{paths['enhancer_params_file']}"
                )
