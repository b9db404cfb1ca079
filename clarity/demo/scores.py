"""Ensemble scores from the music21 corpus, turned into timed note events per voice.

The demo music is real chamber music: string quartet movements (Haydn, Mozart, Beethoven) and
four-part Bach chorales, read from the corpus that ships with music21 (no download). Each part of a
score becomes one *voice*: an array of note events in seconds that `clarity.demo.render` plays on
one instrument.

A voice is a float array of shape ``(notes, 4)`` with columns ``onset`` (s), ``duration`` (s),
``pitch`` (MIDI note number) and ``velocity`` (MIDI velocity, 1-127), sorted by onset.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from itertools import cycle
from typing import Literal

import numpy as np
from music21 import articulations, corpus, dynamics, expressions

Ensemble = Literal["strings", "chorale"]

ONSET, DURATION, PITCH, VELOCITY = range(4)

# MIDI velocity for each written dynamic; unmarked music starts at mezzo-forte.
DYNAMIC_VELOCITY = {
    "ppp": 30,
    "pp": 40,
    "p": 52,
    "mp": 64,
    "mf": 76,
    "f": 90,
    "ff": 104,
    "fff": 116,
    "sf": 100,
    "sfz": 100,
    "fz": 100,
    "fp": 90,
    "rf": 96,
    "rfz": 100,
}
DEFAULT_VELOCITY = 76
ARTICULATION_LENGTH = {"Staccato": 0.5, "Staccatissimo": 0.3, "Spiccato": 0.5, "Tenuto": 1.0}
LEGATO_LENGTH = 0.95  # fraction of the written length that a plain note sounds
FERMATA_PAUSE_BEATS = 1.0  # a fermata holds its note one extra beat


@dataclass(frozen=True)
class Piece:
    """A score of the music21 corpus and how to perform it.

    Attributes:
        corpus_path: path of the score inside the music21 corpus, e.g. ``"bach/bwv269"``.
        slug: short name used in song names, e.g. ``"bwv269"``.
        ensemble: ``"strings"`` (string quartet) or ``"chorale"`` (SATB chorale, possibly with an
            instrumental obbligato part above it).
        tempo_bpm: performance tempo in quarter notes per minute.
    """

    corpus_path: str
    slug: str
    ensemble: Ensemble
    tempo_bpm: float


PIECES: tuple[Piece, ...] = (
    Piece("haydn/opus74no1/movement1", "haydn_op74no1_i", "strings", 126.0),
    Piece("haydn/opus74no1/movement2", "haydn_op74no1_ii", "strings", 100.0),
    Piece("mozart/k80/movement1", "mozart_k80_i", "strings", 56.0),
    Piece("mozart/k156/movement1", "mozart_k156_i", "strings", 160.0),
    Piece("mozart/k155/movement1", "mozart_k155_i", "strings", 130.0),
    Piece("beethoven/opus18no1/movement2.mxl", "beethoven_op18no1_ii", "strings", 54.0),
    Piece("bach/bwv269", "bwv269", "chorale", 76.0),
    Piece("bach/bwv66.6", "bwv66_6", "chorale", 72.0),
    Piece("bach/bwv253", "bwv253", "chorale", 80.0),
    Piece("bach/bwv258", "bwv258", "chorale", 72.0),
    Piece("bach/bwv281", "bwv281", "chorale", 76.0),
    Piece("bach/bwv347", "bwv347", "chorale", 72.0),
    Piece("bach/bwv367", "bwv367", "chorale", 80.0),
    Piece("bach/bwv40.8", "bwv40_8", "chorale", 76.0),
    Piece("bach/bwv136.6", "bwv136_6", "chorale", 72.0),
    Piece("bach/bwv161.6", "bwv161_6", "chorale", 72.0),
    Piece("bach/bwv172.6", "bwv172_6", "chorale", 76.0),
    # more training music (none of it in the validation split)
    Piece("haydn/opus74no1/movement3", "haydn_op74no1_iii", "strings", 150.0),
    Piece("haydn/opus1no1/movement1", "haydn_op1no1_i", "strings", 132.0),
    Piece("mozart/k80/movement2", "mozart_k80_ii", "strings", 60.0),
    Piece("mozart/k80/movement3", "mozart_k80_iii", "strings", 132.0),
    Piece("mozart/k156/movement2", "mozart_k156_ii", "strings", 60.0),
    Piece("mozart/k458/movement2", "mozart_k458_ii", "strings", 132.0),
    Piece("beethoven/opus18no1/movement3.mxl", "beethoven_op18no1_iii", "strings", 200.0),
    Piece("bach/bwv1.6", "bwv1_6", "chorale", 72.0),
    Piece("bach/bwv10.7", "bwv10_7", "chorale", 76.0),
    Piece("bach/bwv101.7", "bwv101_7", "chorale", 76.0),
    Piece("bach/bwv102.7", "bwv102_7", "chorale", 76.0),
    Piece("bach/bwv103.6", "bwv103_6", "chorale", 72.0),
    Piece("bach/bwv104.6", "bwv104_6", "chorale", 76.0),
    Piece("bach/bwv108.6", "bwv108_6", "chorale", 72.0),
    Piece("bach/bwv11.6", "bwv11_6", "chorale", 76.0),
    Piece("bach/bwv110.7", "bwv110_7", "chorale", 76.0),
    Piece("bach/bwv111.6", "bwv111_6", "chorale", 72.0),
    Piece("bach/bwv113.8", "bwv113_8", "chorale", 76.0),
    Piece("bach/bwv114.7", "bwv114_7", "chorale", 76.0),
    Piece("bach/bwv115.6", "bwv115_6", "chorale", 80.0),
    Piece("bach/bwv116.6", "bwv116_6", "chorale", 76.0),
    Piece("bach/bwv117.4", "bwv117_4", "chorale", 76.0),
    Piece("bach/bwv119.9", "bwv119_9", "chorale", 80.0),
    Piece("bach/bwv12.7", "bwv12_7", "chorale", 72.0),
    Piece("bach/bwv120.6", "bwv120_6", "chorale", 72.0),
    Piece("bach/bwv124.6", "bwv124_6", "chorale", 72.0),
)

# Four-part chorales of the music21 corpus that only the "small" training split plays (more
# harmonies, registers and ensembles to learn from); they take these tempi in turn.
_TRAINING_CHORALE_NAMES = (
    "bwv121.6", "bwv122.6", "bwv123.6", "bwv125.6", "bwv126.6", "bwv127.5", "bwv13.6", "bwv133.6",
    "bwv135.6", "bwv139.6", "bwv14.5", "bwv140.7", "bwv144.3", "bwv144.6", "bwv145-a", "bwv145.5",
    "bwv146.8", "bwv148.6", "bwv151.5", "bwv153.1", "bwv153.5", "bwv153.9", "bwv154.3",
    "bwv154.8", "bwv155.5", "bwv156.6", "bwv157.5", "bwv158.4", "bwv159.5", "bwv16.6",
    "bwv162.6-lpz", "bwv164.6", "bwv166.6", "bwv168.6", "bwv169.7", "bwv17.7", "bwv174.5",
    "bwv176.6", "bwv177.4", "bwv177.5", "bwv178.7", "bwv179.6", "bwv18.5-lz", "bwv180.7",
    "bwv183.5", "bwv184.5", "bwv187.7", "bwv188.6", "bwv194.12", "bwv194.6", "bwv197.10",
    "bwv197.5", "bwv197.7-a", "bwv2.6", "bwv20.11", "bwv20.7", "bwv226.2", "bwv227.1",
    "bwv227.11", "bwv227.7", "bwv229.2", "bwv24.6", "bwv244.10", "bwv244.15", "bwv244.17",
    "bwv244.25", "bwv244.29-a", "bwv244.3", "bwv244.32", "bwv244.37", "bwv244.40", "bwv244.44",
)  # fmt: skip
_TRAINING_CHORALE_TEMPI = (72.0, 76.0, 80.0)
TRAINING_CHORALES: tuple[Piece, ...] = tuple(
    Piece(f"bach/{name}", name.replace(".", "_").replace("-", "_"), "chorale", tempo)
    for name, tempo in zip(_TRAINING_CHORALE_NAMES, cycle(_TRAINING_CHORALE_TEMPI))
)  # slugs as "bwv162.6-lpz" -> "bwv162_6_lpz"
PIECES += TRAINING_CHORALES


@dataclass(frozen=True)
class Score:
    """A piece as timed note events.

    Attributes:
        piece: the catalogue entry.
        voices: one ``(notes, 4)`` event array per part, top part first (see the module docstring).
        bar_starts: onset of every bar in s, shape ``(bars,)``.
        duration: length of the piece in s.
    """

    piece: Piece
    voices: tuple[np.ndarray, ...]
    bar_starts: np.ndarray
    duration: float


def _quarters_to_seconds(quarters: np.ndarray, tempo_bpm: float, pauses: np.ndarray) -> np.ndarray:
    """Map score positions (quarter notes) to seconds, adding a fermata pause after each ``pauses``
    entry."""
    beat = 60.0 / tempo_bpm
    held = np.searchsorted(np.sort(pauses), quarters, side="left")
    return quarters * beat + held * FERMATA_PAUSE_BEATS * beat


def _part_events(part, tempo_bpm: float, pauses: np.ndarray) -> np.ndarray:
    """Note events ``(notes, 4)`` of one music21 part: ties merged, chords split into notes."""
    flat = part.stripTies().flatten()
    marks = list(flat.getElementsByClass(dynamics.Dynamic))
    mark_offsets = np.array([float(m.offset) for m in marks])
    mark_velocity = np.array([DYNAMIC_VELOCITY.get(m.value, DEFAULT_VELOCITY) for m in marks])
    rows = []
    for element in flat.notes:
        length = float(element.quarterLength)
        if length <= 0.0:  # grace notes carry no written length
            continue
        start = float(element.offset)
        scale = LEGATO_LENGTH
        for articulation in element.articulations:
            scale = min(scale, ARTICULATION_LENGTH.get(type(articulation).__name__, scale))
        held = any(isinstance(e, expressions.Fermata) for e in element.expressions)
        accent = any(isinstance(a, articulations.Accent) for a in element.articulations)
        mark = np.searchsorted(mark_offsets, start, side="right") - 1
        velocity = mark_velocity[mark] if mark >= 0 else DEFAULT_VELOCITY
        velocity = min(127, velocity + (12 if accent else 0))
        for pitch in element.pitches:
            rows.append((start, start + length * (1.0 if held else scale), pitch.midi, velocity))
    if not rows:
        return np.zeros((0, 4))
    raw = np.array(rows, dtype=float)
    onsets = _quarters_to_seconds(raw[:, 0], tempo_bpm, pauses)
    offsets = _quarters_to_seconds(raw[:, 1], tempo_bpm, pauses)
    events = np.column_stack([onsets, offsets - onsets, raw[:, 2], raw[:, 3]])
    return events[np.argsort(events[:, ONSET], kind="stable")]


@cache
def load_score(piece: Piece) -> Score:
    """Parse a catalogue piece from the music21 corpus into timed note events.

    Fermatas (marked in the top part of chorales) hold for one extra beat in every part.

    Raises:
        ValueError: if the score has no parts or a part has no notes.
    """
    stream = corpus.parse(piece.corpus_path)
    parts = list(stream.parts)
    if not parts:
        raise ValueError(f"music21 corpus score {piece.corpus_path!r}: expected parts, found none")
    top = parts[0].stripTies().flatten().notes
    pauses = np.array(
        [
            float(n.offset + n.quarterLength)
            for n in top
            if any(isinstance(e, expressions.Fermata) for e in n.expressions)
        ]
    )
    voices = tuple(_part_events(part, piece.tempo_bpm, pauses) for part in parts)
    for index, voice in enumerate(voices):
        if voice.shape[0] == 0:
            raise ValueError(
                f"music21 corpus score {piece.corpus_path!r}: part {index} has no notes"
            )
    bars = np.array([float(m.offset) for m in parts[0].getElementsByClass("Measure")])
    bar_starts = _quarters_to_seconds(bars, piece.tempo_bpm, pauses)
    duration = max(float((v[:, ONSET] + v[:, DURATION]).max()) for v in voices)
    return Score(piece=piece, voices=voices, bar_starts=bar_starts, duration=duration)


def excerpt(voice: np.ndarray, start: float, duration: float) -> np.ndarray:
    """Notes of ``voice`` that begin inside ``[start, start + duration)`` s, re-timed to start at 0
    s.

    Notes are cut at the end of the excerpt.
    """
    onsets = voice[:, ONSET]
    selected = voice[(onsets >= start) & (onsets < start + duration)].copy()
    selected[:, ONSET] -= start
    selected[:, DURATION] = np.minimum(selected[:, DURATION], duration - selected[:, ONSET])
    return selected


def humanise(
    voice: np.ndarray,
    rng: np.random.Generator,
    timing_ms: float = 8.0,
    velocity_spread: float = 6.0,
) -> np.ndarray:
    """Small random timing (Gaussian, ``timing_ms`` ms s.d.) and velocity deviations, like a
    player's."""
    played = voice.copy()
    played[:, ONSET] = np.maximum(
        0.0, played[:, ONSET] + rng.normal(0.0, timing_ms / 1000, len(voice))
    )
    played[:, VELOCITY] = np.clip(
        np.round(played[:, VELOCITY] + rng.normal(0.0, velocity_spread, len(voice))), 1, 127
    )
    return played


def coverage(voice: np.ndarray, duration: float, resolution: float = 0.05) -> float:
    """Fraction of ``[0, duration)`` s during which ``voice`` sounds at least one note."""
    frames = max(1, int(np.ceil(duration / resolution)))
    starts = np.clip((voice[:, ONSET] / resolution).astype(int), 0, frames)
    ends = np.clip(
        np.ceil((voice[:, ONSET] + voice[:, DURATION]) / resolution).astype(int), 0, frames
    )
    active = np.zeros(frames + 1)
    np.add.at(active, starts, 1.0)
    np.add.at(active, ends, -1.0)
    return float(np.mean(np.cumsum(active)[:frames] > 0))


def choose_start(
    score: Score,
    voice_indices: list[int],
    duration: float,
    rng: np.random.Generator,
    min_coverage: float = 0.6,
) -> float:
    """Start (s) of an excerpt that begins on a bar line and in which every chosen voice plays.

    Bar starts are tried in a seeded random order; the first whose excerpt has every voice sounding
    at least ``min_coverage`` of the time wins, else the bar with the best worst-voice coverage.

    Raises:
        ValueError: if the piece is shorter than ``duration``.
    """
    candidates = score.bar_starts[score.bar_starts + duration <= score.duration]
    if candidates.size == 0:
        raise ValueError(
            f"{score.piece.corpus_path}: {score.duration:.1f} s long, "
            f"shorter than a {duration} s excerpt"
        )
    best_start, best_coverage = float(candidates[0]), -1.0
    for start in rng.permutation(candidates):
        worst = min(
            coverage(excerpt(score.voices[i], float(start), duration), duration)
            for i in voice_indices
        )
        if worst >= min_coverage:
            return float(start)
        if worst > best_coverage:
            best_start, best_coverage = float(start), worst
    return best_start
