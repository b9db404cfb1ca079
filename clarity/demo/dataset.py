"""Write the demo dataset in the CAD2 Task 2 layout.

Layout under ``root`` (``demo_data/cad2`` by default)::

    audio/<split>/<song>/<label>.flac        stereo stems, 44.1 kHz, 16-bit ("Violin_1", "Cello")
    audio/<split>/<song>/mix_<song>.flac     the mixture: exactly the sum of the stems
    metadata/music.<split>.json              song -> sources, then "mixture" (tracks under audio/)
    metadata/gains.json                      gain id -> {"source_1": dB, ...} (both splits)
    metadata/scenes.<split>.json             scene id -> {"music", "gain"}
    metadata/scene_listeners.<split>.json    scene id -> [listener ids]
    metadata/listeners.<split>.json          Clarity listener audiograms
    metadata/compressor_params.<split>.json  listener id -> {"cr_l", "cr_r", "gain_l", "gain_r"}

Every song is rendered from its own random stream (seeded by the dataset seed and the song name), so
a song is the same whether it is written alone or with the others. Writing is idempotent: audio
files that exist with the planned length are kept (unless ``demo_dataset.json`` says they were
rendered with another size, seed or version of the renderer), metadata files are only rewritten
when their content changes, and every file is written atomically.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyloudnorm
import soundfile as sf

from clarity.demo.listeners import compressor_params, make_listeners
from clarity.demo.mixing import place_source, room_response, set_level
from clarity.demo.render import RENDERING_VERSION, SOUNDFONT, fit_to_range, render_voice
from clarity.demo.scenes import make_scenes
from clarity.demo.scores import choose_start, excerpt, humanise, load_score
from clarity.demo.songs import Size, SongPlan, Split, plan_songs
from clarity.utils.flac_encoder import write_atomically

SAMPLE_RATE = 44100
FULL_SCALE = (
    32768  # 16-bit PCM, as the recipe reads it: a float sample x is stored as round(x * 32768)
)
PEAK_LIMIT = 0.89  # -1 dBFS: the mixture and every stem stay below it
MIXTURE_LOUDNESS_LUFS = -40.0  # integrated loudness (ITU-R BS.1770) of every mixture
STEM_LEVEL_SPREAD_DB = 3.0  # stems are balanced at equal RMS level +-3 dB (uniform)
STAGE_WIDTH = 0.6  # sources are spread from -0.6 (left) to 0.6 (right) in score order
FADE_S = 0.05  # fade at the end of an excerpt, which cuts notes

# listeners' audiogram shapes per split and size (Bisgaard's, see clarity.demo.listeners)
LISTENER_SHAPES: dict[Size, dict[str, tuple[str, ...]]] = {
    "small": {
        "train": ("N1", "N2", "N3", "N4", "S1", "S2", "S3", "N2"),
        "valid": ("N2", "S2", "N4", "N5"),
    },
    "tiny": {"train": ("N2", "N4"), "valid": ("N2", "N5")},
}
SCENES_PER_SONG = {"small": {"train": 2, "valid": 2}, "tiny": {"train": 1, "valid": 1}}
LISTENERS_PER_SCENE = {"small": {"train": 2, "valid": 2}, "tiny": {"train": 1, "valid": 1}}
FIRST_LISTENER_NUMBER = {"train": 1, "valid": 5001}
MARKER_FILE = "demo_dataset.json"  # {"size", "seed", "rendering"} of the audio under root


@dataclass(frozen=True)
class DatasetSummary:
    """What ``make_dataset`` did: songs rendered and kept, and the time it took (s)."""

    rendered: int
    kept: int
    seconds: float


def song_rng(seed: int, name: str) -> np.random.Generator:
    """The random stream of one song (or metadata item), from the dataset seed and its name."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode("utf-8"))]))


def render_song(plan: SongPlan, seed: int, soundfont: Path = SOUNDFONT) -> dict[str, np.ndarray]:
    """Render a planned song: its stems, as 16-bit integers ``(samples, 2)``, by source label.

    Steps: pick a bar-aligned excerpt where every voice plays; move each voice by octaves into its
    instrument's range; humanise timing and velocity; render; place on the stage of a shared room;
    balance the stems at equal RMS level +-3 dB; fade out the notes cut at the end; scale the whole
    song so that the mixture's integrated loudness is -40 LUFS (peaks stay below -1 dBFS); round to
    16 bits. The mixture is the sum of these integer stems, so it equals their sum exactly.
    """
    rng = song_rng(seed, plan.name)
    score = load_score(plan.piece)
    sources = plan.sources()
    start = choose_start(score, [voice for _, _, voice in sources], plan.duration, rng)
    room = room_response(rng, rt60=float(rng.uniform(0.8, 1.4)), sample_rate=SAMPLE_RATE)
    wet_db = float(rng.uniform(-14.0, -10.0))
    positions = np.linspace(-STAGE_WIDTH, STAGE_WIDTH, len(sources)) if len(sources) > 1 else [0.0]
    stems = {}
    for (label, instrument, voice), position in zip(sources, positions, strict=True):
        notes = humanise(
            fit_to_range(excerpt(score.voices[voice], start, plan.duration), instrument), rng
        )
        mono = render_voice(notes, instrument, plan.duration, SAMPLE_RATE, soundfont)
        jitter = float(np.clip(position + rng.normal(0.0, 0.08), -1.0, 1.0))
        stem = place_source(mono, jitter, room, wet_db)
        stems[label] = set_level(stem, rng.uniform(-STEM_LEVEL_SPREAD_DB, STEM_LEVEL_SPREAD_DB))
    fade = np.ones(stems[sources[0][0]].shape[1])
    fade_length = int(FADE_S * SAMPLE_RATE)
    fade[-fade_length:] = np.linspace(1.0, 0.0, fade_length)
    mixture = sum(stems.values()) * fade
    loudness = pyloudnorm.Meter(SAMPLE_RATE).integrated_loudness(mixture.T)
    scale = 10.0 ** ((MIXTURE_LOUDNESS_LUFS - loudness) / 20.0)
    peak = max(np.abs(mixture).max(), *(np.abs(stem).max() for stem in stems.values()))
    scale = min(scale, PEAK_LIMIT / peak)
    return {
        label: np.round(stem * fade * scale * FULL_SCALE).astype(np.int16).T
        for label, stem in stems.items()
    }


def mixture_of(stems: dict[str, np.ndarray]) -> np.ndarray:
    """Sum of 16-bit integer stems ``(samples, 2)``, as 16-bit integers.

    Raises:
        ValueError: if the sum leaves the 16-bit range.
    """
    total = np.sum([stem.astype(np.int32) for stem in stems.values()], axis=0)
    if np.abs(total).max() >= FULL_SCALE:
        raise ValueError("mixture_of: the stems' sum leaves the 16-bit range")
    return total.astype(np.int16)


def song_files(plan: SongPlan) -> dict[str, str]:
    """Track paths (relative to the audio folder) by source label; ``"Mixture"`` for the mixture."""
    folder = f"{plan.split}/{plan.name}"
    files = {label: f"{folder}/{label}.flac" for label, _, _ in plan.sources()}
    files["Mixture"] = f"{folder}/mix_{plan.name}.flac"
    return files


def music_entry(plan: SongPlan) -> dict[str, dict]:
    """A song's entry in ``music.<split>.json``: sources in order, then the mixture.

    The mixture comes last because the challenge's scripts number sources by their position in this
    entry.
    """
    files = song_files(plan)
    entry = {}
    for index, (label, _, _) in enumerate(plan.sources(), 1):
        entry[f"source_{index}"] = {
            "instrument": label,
            "track": files[label],
            "start": 0.0,
            "duration": plan.duration,
        }
    entry["mixture"] = {
        "instrument": "Mixture",
        "track": files["Mixture"],
        "start": 0.0,
        "duration": plan.duration,
    }
    return entry


def _has_audio(path: Path, frames: int) -> bool:
    """Whether ``path`` is a readable stereo 44.1 kHz file of ``frames`` frames."""
    if not path.is_file():
        return False
    try:
        info = sf.info(str(path))
    except RuntimeError:
        return False
    return info.frames == frames and info.channels == 2 and info.samplerate == SAMPLE_RATE


def write_flac(path: Path, signal: np.ndarray) -> None:
    """Write 16-bit integer audio ``(samples, channels)`` at 44.1 kHz as FLAC, atomically."""
    write_atomically(
        path,
        lambda temporary: sf.write(
            str(temporary), signal, SAMPLE_RATE, format="FLAC", subtype="PCM_16"
        ),
    )


def write_song(
    plan: SongPlan, audio_dir: Path, seed: int, force: bool = False, soundfont: Path = SOUNDFONT
) -> bool:
    """Render and write a song's stems and mixture unless they all exist (or ``force``).

    Returns:
        Whether the song was rendered.
    """
    frames = round(plan.duration * SAMPLE_RATE)
    paths = {label: audio_dir / track for label, track in song_files(plan).items()}
    if not force and all(_has_audio(path, frames) for path in paths.values()):
        return False
    stems = render_song(plan, seed, soundfont)
    for label, stem in stems.items():
        write_flac(paths[label], stem)
    write_flac(paths["Mixture"], mixture_of(stems))
    return True


def _remove_song(plan: SongPlan, audio_dir: Path) -> None:
    """Delete the audio files of a song (of an older rendering), where they exist."""
    for track in song_files(plan).values():
        (audio_dir / track).unlink(missing_ok=True)


def write_json(path: Path, data: object) -> None:
    """Write ``data`` as indented JSON, atomically, unless the file already holds exactly that."""
    text = json.dumps(data, indent=4) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def make_dataset(
    root: str | Path,
    size: Size = "small",
    seed: int = 0,
    log: Callable[[str], None] = print,
    soundfont: str | Path = SOUNDFONT,
    splits: Sequence[Split] = ("train", "valid"),
) -> DatasetSummary:
    """Build (or complete) the demo dataset under ``root``.

    The metadata of both splits is always written; audio only for ``splits``.

    Args:
        root: dataset root; ``audio/`` and ``metadata/`` are created in it.
        size: "small" (110 training songs of 24 s, 5 validation songs of 10 s) or "tiny" (3 of 6 s,
            2 of 4 s).
        seed: dataset seed; the same seed always gives the same audio and metadata.
        log: receives one line per song.
        soundfont: General MIDI SF2 the instruments are played from (default: ``TimGM6mb.sf2``,
            the one the shipped models were trained on); ``demo_dataset.json`` names another.
        splits: the splits whose audio is rendered (e.g. only "valid" to evaluate shipped
            models); the audio of another split rendered with another size, seed, renderer or
            soundfont is removed, so that a later call renders it afresh.

    Raises:
        ValueError: for a split other than "train" and "valid".
    """
    began = time.perf_counter()
    root = Path(root)
    audio_dir, metadata_dir = root / "audio", root / "metadata"
    unknown = sorted(set(splits) - {"train", "valid"})
    if unknown:
        raise ValueError(f"splits {unknown}: expected 'train' and/or 'valid'")
    plans = plan_songs(size)
    marker = root / MARKER_FILE
    soundfont = Path(soundfont)
    wanted = {"size": size, "seed": seed, "rendering": RENDERING_VERSION}
    if soundfont != SOUNDFONT:
        wanted["soundfont"] = soundfont.name
    # audio rendered with another seed, size, renderer or soundfont under this root is not reused
    force = marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) != wanted
    rendered = kept = 0
    for plan in plans:
        if plan.split not in splits:
            if force:
                _remove_song(plan, audio_dir)
            continue
        song_began = time.perf_counter()
        if write_song(plan, audio_dir, seed, force, soundfont):
            rendered += 1
            log(
                f"rendered {plan.split}/{plan.name} ({plan.orchestration}, {plan.duration:.0f} s) "
                f"in {time.perf_counter() - song_began:.1f} s"
            )
        else:
            kept += 1

    gains: dict[str, dict] = {}
    for split in ("train", "valid"):
        split_plans = [plan for plan in plans if plan.split == split]
        write_json(
            metadata_dir / f"music.{split}.json", {p.name: music_entry(p) for p in split_plans}
        )
        first = FIRST_LISTENER_NUMBER[split]
        shapes = LISTENER_SHAPES[size][split]
        listener_ids = [f"L{first + k:04d}" for k in range(len(shapes))]
        listeners = make_listeners(listener_ids, shapes, song_rng(seed, f"listeners.{split}"))
        scenes, split_gains, scene_listeners = make_scenes(
            split,
            [(p.name, len(p.sources())) for p in split_plans],
            SCENES_PER_SONG[size][split],
            listener_ids,
            LISTENERS_PER_SCENE[size][split],
            first_gain=len(gains) + 1,
            rng=song_rng(seed, f"scenes.{split}"),
        )
        gains.update(split_gains)
        write_json(metadata_dir / f"listeners.{split}.json", listeners)
        write_json(metadata_dir / f"compressor_params.{split}.json", compressor_params(listeners))
        write_json(metadata_dir / f"scenes.{split}.json", scenes)
        write_json(metadata_dir / f"scene_listeners.{split}.json", scene_listeners)
    write_json(metadata_dir / "gains.json", gains)
    write_json(marker, wanted)
    return DatasetSummary(rendered=rendered, kept=kept, seconds=time.perf_counter() - began)
