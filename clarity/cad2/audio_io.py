"""Audio files of the recipe: read whole tracks and segments, check sample rates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from clarity.utils.flac_encoder import read_flac_signal


def read_track(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read a whole audio file as `(samples, channels)` float32.

    Raises:
        ValueError: naming the file, when its sample rate (Hz) is not `sample_rate` or it holds
            a sample that is not finite (e.g. through a NaN scale in its `.txt`).
    """
    signal, file_sample_rate = read_flac_signal(Path(path))
    if int(file_sample_rate) != int(sample_rate):
        raise ValueError(f"{path}: sample rate {file_sample_rate} Hz, expected {sample_rate} Hz")
    if not np.all(np.isfinite(signal)):
        raise ValueError(f"{path}: holds non-finite samples (NaN or infinity)")
    return signal


def segment_length(sample_rate: int, start: float, duration: float) -> int:
    """Samples in the segment `start`..`start + duration` (s) that `cut_segment` takes."""
    return int((start + duration) * sample_rate) - int(start * sample_rate)


def resampled_length(samples: int, sample_rate: int, new_sample_rate: int) -> int:
    """Samples of a signal of `samples` samples resampled from `sample_rate` to
    `new_sample_rate` Hz (what `clarity.utils.signal_processing.resample` returns)."""
    return round(samples * new_sample_rate / sample_rate)


def signal_file_problem(
    path: str | Path, sample_rate: int, channels: int, samples: int
) -> str | None:
    """Why an audio file is not the signal expected, or None when it is.

    The file is decoded whole (a file cut short by an interrupted write fails here), and must
    have `sample_rate` Hz, `channels` channels and `samples` samples (one more or less is
    allowed: the resampler rounds).
    """
    try:
        signal, file_sample_rate = read_flac_signal(Path(path))
    except (sf.LibsndfileError, RuntimeError, ValueError) as error:
        return f"cannot be decoded ({error})"
    found_channels = 1 if signal.ndim == 1 else signal.shape[1]
    if int(file_sample_rate) != int(sample_rate):
        return f"sample rate {file_sample_rate} Hz, expected {sample_rate} Hz"
    if found_channels != channels:
        return f"{found_channels} channel(s), expected {channels}"
    if abs(signal.shape[0] - samples) > 1:
        return f"{signal.shape[0]} samples, expected {samples}"
    return None


def cut_segment(signal: np.ndarray, sample_rate: int, start: float, duration: float) -> np.ndarray:
    """Samples `int(start * fs)` to `int((start + duration) * fs)` of a `(samples, ...)` signal."""
    first = int(start * sample_rate)
    return signal[first : first + segment_length(sample_rate, start, duration)]


def read_segment(path: str | Path, sample_rate: int, start: float, duration: float) -> np.ndarray:
    """Read a file and cut the segment `start`..`start + duration` (s): `(samples, channels)`."""
    return cut_segment(read_track(path, sample_rate), sample_rate, start, duration)


def audio_sample_rate(path: str | Path) -> int:
    """Sample rate (Hz) from the file header, without decoding the audio."""
    return int(sf.info(str(path)).samplerate)
