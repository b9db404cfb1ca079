"""Render one voice of a score on one instrument with a General MIDI soundfont.

Rendering choice: the General MIDI soundfont ``TimGM6mb.sf2`` that ships inside the ``pretty_midi``
package, played by TinySoundFont (the ``tinysoundfont`` package, a C sample player). ``pretty_midi``
comes with the demo extras; ``make setup`` installs ``tinysoundfont`` without its only dependency
(pyaudio, for live playback, which needs the PortAudio headers to build). Neither needs a
download, and a 30 s part renders in about 0.1 s.
Sampled instruments give each stem the timbre of the real instrument (bowed-string and reed spectra,
attacks, vibrato), which is what the separation models learn to tell apart; sine tones would not.
Each voice is rendered on its own synthesiser, so every stem is the instrument alone and the mixture
is exactly the sum of the stems.

The soundfont's Viola preset plays the very samples of its Violin preset, which would make the two
instruments indistinguishable. A viola is a larger violin: its body and air resonances sit lower
and its attacks and vibrato are slower. The viola is therefore rendered as a violin scaled by
``VIOLA_BODY_SCALE`` = 4/3: the voice is played a fourth higher and 3/4 as fast on the violin
samples, and the result is resampled by 4/3, which brings pitch (within 2 cents) and timing back
while moving every resonance down by a fourth and slowing vibrato and attacks by the same factor.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pretty_midi
import tinysoundfont
from scipy.signal import resample_poly

from clarity.demo.scores import DURATION, ONSET, PITCH, VELOCITY

SOUNDFONT = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"

# General MIDI programs (0-based) of the eight CAD2 instruments.
GM_PROGRAM = {
    "Violin": 40,
    "Viola": 41,
    "Cello": 42,
    "Sax": 65,  # alto saxophone, as in CadenzaWoodwind
    "Oboe": 68,
    "Bassoon": 70,
    "Clarinet": 71,
    "Flute": 73,
}

# Version of the demo audio (the rendering below and the songs of clarity.demo.songs); audio
# and models made by another version are made again.
RENDERING_VERSION = 3  # 2: the viola as a scaled violin; 3: 72 more training chorales

# The viola: the violin samples scaled down in frequency by a fourth (see the module docstring).
VIOLA_BODY_SCALE = Fraction(4, 3)
VIOLA_SEMITONES = 5  # 12 log2(4/3) = 4.98: the fourth the voice is played higher, then resampled

# Sounding range (MIDI note numbers) used to move a voice by octaves onto an instrument.
PLAYABLE_RANGE = {
    "Violin": (55, 100),
    "Viola": (48, 88),
    "Cello": (36, 76),
    "Sax": (49, 81),
    "Oboe": (58, 91),
    "Bassoon": (34, 75),
    "Clarinet": (50, 91),
    "Flute": (60, 96),
}

RELEASE_TAIL_S = 0.5  # rendered past the last note-off so releases decay naturally


def fit_to_range(voice: np.ndarray, instrument: str) -> np.ndarray:
    """Move a voice by whole octaves so that its lowest note is playable on ``instrument``.

    Args:
        voice: note events ``(notes, 4)`` (see ``clarity.demo.scores``).
        instrument: one of the eight CAD2 instrument names.

    Raises:
        ValueError: for an unknown instrument.
    """
    if instrument not in PLAYABLE_RANGE:
        raise ValueError(f"instrument {instrument!r}: expected one of {sorted(PLAYABLE_RANGE)}")
    low, high = PLAYABLE_RANGE[instrument]
    fitted = voice.copy()
    if len(fitted) == 0:
        return fitted
    lowest, highest = fitted[:, PITCH].min(), fitted[:, PITCH].max()
    if lowest < low:
        fitted[:, PITCH] += 12 * np.ceil((low - lowest) / 12)
    elif highest > high:
        fitted[:, PITCH] -= 12 * min(np.ceil((highest - high) / 12), np.floor((lowest - low) / 12))
    return fitted


def render_voice(
    voice: np.ndarray,
    instrument: str,
    duration: float,
    sample_rate: int = 44100,
    soundfont: Path = SOUNDFONT,
) -> np.ndarray:
    """Play note events on a General MIDI instrument (the viola as a scaled violin).

    Args:
        voice: note events ``(notes, 4)``: onset (s), duration (s), MIDI pitch, MIDI velocity.
        instrument: CAD2 instrument name (key of ``GM_PROGRAM``).
        duration: length of the output in s; sound past it is cut.
        sample_rate: output sample rate in Hz.
        soundfont: General MIDI SF2 file (default ``TimGM6mb.sf2``; another one, e.g. Debian's
            ``FluidR3_GM.sf2``, shows how the models do on other instrument samples).

    Returns:
        Mono signal, shape ``(samples,)``, float32, full scale 1.0.

    Raises:
        ValueError: for an unknown instrument or a non-positive duration.
    """
    if instrument not in GM_PROGRAM:
        raise ValueError(f"instrument {instrument!r}: expected one of {sorted(GM_PROGRAM)}")
    if duration <= 0:
        raise ValueError(f"duration: expected > 0 s, got {duration}")
    if instrument != "Viola":
        return _play(voice, GM_PROGRAM[instrument], duration, sample_rate, soundfont)
    scale = VIOLA_BODY_SCALE
    faster = voice.copy()
    faster[:, [ONSET, DURATION]] /= float(scale)
    faster[:, PITCH] += VIOLA_SEMITONES
    played = _play(faster, GM_PROGRAM["Violin"], duration / float(scale), sample_rate, soundfont)
    slowed = resample_poly(played, scale.numerator, scale.denominator)
    total = round(duration * sample_rate)
    return np.pad(slowed[:total], (0, max(0, total - slowed.size))).astype(np.float32)


def _play(
    voice: np.ndarray, program: int, duration: float, sample_rate: int, soundfont: Path
) -> np.ndarray:
    """``voice`` played on GM ``program`` by TinySoundFont: mono ``(samples,)`` float32."""
    if not Path(soundfont).is_file():
        raise ValueError(f"soundfont {soundfont}: no such file (expected a General MIDI .sf2)")
    synth = tinysoundfont.Synth(samplerate=sample_rate)
    font = synth.sfload(str(soundfont))
    synth.program_select(0, font, 0, program)

    on = np.column_stack(
        [voice[:, ONSET], np.ones(len(voice)), voice[:, PITCH], voice[:, VELOCITY]]
    )
    off = np.column_stack(
        [
            voice[:, ONSET] + voice[:, DURATION],
            np.zeros(len(voice)),
            voice[:, PITCH],
            voice[:, VELOCITY],
        ]
    )
    events = np.concatenate([on, off])
    # note-offs before note-ons at the same instant, so a repeated pitch is re-struck
    events = events[np.lexsort((events[:, 1], events[:, 0]))]
    frames = np.round(events[:, 0] * sample_rate).astype(np.int64)

    total = round(duration * sample_rate)
    stereo = np.zeros((total + int(RELEASE_TAIL_S * sample_rate), 2), dtype=np.float32)
    position = 0
    for frame, (_, is_on, pitch, velocity) in zip(frames, events, strict=True):
        frame = min(frame, stereo.shape[0])
        if frame > position:
            block = synth.generate(frame - position)
            stereo[position:frame] = np.frombuffer(block, dtype=np.float32).reshape(-1, 2)
            position = frame
        if is_on:
            synth.noteon(0, int(pitch), int(velocity))
        else:
            synth.noteoff(0, int(pitch))
    if stereo.shape[0] > position:
        block = synth.generate(stereo.shape[0] - position)
        stereo[position:] = np.frombuffer(block, dtype=np.float32).reshape(-1, 2)
    return stereo[:total].mean(axis=1)
