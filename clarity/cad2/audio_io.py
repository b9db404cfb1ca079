"""Audio files of the recipe: read whole tracks and segments, check sample rates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from clarity.utils.flac_encoder import read_flac_signal


def read_track(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read a whole audio file as `(samples, channels)` float32.

    Raises:
        ValueError: the file's sample rate (Hz) is not `sample_rate`.
    """
    signal, file_sample_rate = read_flac_signal(Path(path))
    if int(file_sample_rate) != int(sample_rate):
        raise ValueError(f"{path}: sample rate {file_sample_rate} Hz, expected {sample_rate} Hz")
    return signal


def cut_segment(signal: np.ndarray, sample_rate: int, start: float, duration: float) -> np.ndarray:
    """Samples `int(start * fs)` to `int((start + duration) * fs)` of a `(samples, ...)` signal."""
    end = start + duration
    return signal[int(start * sample_rate) : int(end * sample_rate)]


def read_segment(path: str | Path, sample_rate: int, start: float, duration: float) -> np.ndarray:
    """Read a file and cut the segment `start`..`start + duration` (s): `(samples, channels)`."""
    return cut_segment(read_track(path, sample_rate), sample_rate, start, duration)


def audio_sample_rate(path: str | Path) -> int:
    """Sample rate (Hz) from the file header, without decoding the audio."""
    return int(sf.info(str(path)).samplerate)
