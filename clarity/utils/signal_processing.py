"""Small signal utilities shared by the recipe: RMS, resampling, clipping, 16-bit conversion and
the standardisation used around source separation (pyClarity 0.9.0 semantics).

Also holds the input checks (`check_finite_signal`, `check_sample_rate`) reused by the enhancers.
"""

from __future__ import annotations

import numpy as np
import scipy.signal
import soxr

INT16_SCALE = 32768.0  # full scale of a signed 16-bit sample


def check_finite_signal(signal: np.ndarray, name: str = "signal") -> None:
    """Raise ValueError if `signal` holds NaN or infinite samples.

    Args:
        signal: any array of samples.
        name: how the caller calls this signal, used in the message.
    """
    if not np.all(np.isfinite(signal)):
        n_bad = int(np.size(signal) - np.count_nonzero(np.isfinite(signal)))
        raise ValueError(f"{name} must hold finite samples; found {n_bad} NaN or inf value(s)")


def check_sample_rate(sample_rate: float, name: str = "sample_rate") -> float:
    """Return `sample_rate` as float, raising ValueError unless it is a finite number > 0 (Hz)."""
    rate = float(sample_rate)
    if not np.isfinite(rate) or rate <= 0:
        raise ValueError(f"{name} must be a finite number of Hz > 0, got {sample_rate!r}")
    return rate


def compute_rms(signal: np.ndarray) -> float:
    """Root mean square over every sample of `signal` (any shape); 0 for an empty signal."""
    signal = np.asarray(signal)
    if signal.size == 0:
        return 0.0
    return float(np.sqrt(np.mean(np.square(signal))))


def resample(
    signal: np.ndarray,
    sample_rate: float,
    new_sample_rate: float,
    method: str = "soxr",
) -> np.ndarray:
    """Resample along the time axis (axis 0).

    Args:
        signal: (samples,) or (samples, channels).
        sample_rate: rate of `signal`, Hz.
        new_sample_rate: wanted rate, Hz.
        method: "soxr" (SoX resampler, high quality "HQ", the default), "polyphase"
            (scipy.signal.resample_poly, integer rates) or "fft" (scipy.signal.resample).

    Returns:
        The resampled signal, same layout; the input object itself when the rates are equal.
    """
    sample_rate = check_sample_rate(sample_rate, "sample_rate")
    new_sample_rate = check_sample_rate(new_sample_rate, "new_sample_rate")
    check_finite_signal(signal)
    if sample_rate == new_sample_rate:
        return signal
    if method == "soxr":
        return soxr.resample(signal, sample_rate, new_sample_rate, quality="HQ")
    if method == "polyphase":
        old_rate, new_rate = int(sample_rate), int(new_sample_rate)
        common = np.gcd(old_rate, new_rate)
        return scipy.signal.resample_poly(signal, up=new_rate // common, down=old_rate // common)
    if method == "fft":
        n_samples = int(new_sample_rate * signal.shape[0] / sample_rate)
        return scipy.signal.resample(signal, n_samples)
    raise ValueError(f"method must be 'soxr', 'polyphase' or 'fft', got {method!r}")


def clip_signal(signal: np.ndarray, soft_clip: bool = False) -> tuple[np.ndarray, int]:
    """Limit samples to [-1, 1].

    Args:
        signal: samples, any shape.
        soft_clip: pass the signal through tanh first (then nothing exceeds 1).

    Returns:
        (clipped signal, number of samples whose magnitude exceeded 1 before the hard clip).
    """
    check_finite_signal(signal)
    if soft_clip:
        signal = np.tanh(signal)
    n_clipped = int(np.count_nonzero(np.abs(signal) > 1.0))
    return np.clip(signal, -1.0, 1.0), n_clipped


def to_16bit(signal: np.ndarray) -> np.ndarray:
    """Convert a [-1, 1) float signal to int16 (scale by 32768, saturate, truncate toward 0)."""
    check_finite_signal(signal)
    scaled = np.clip(np.asarray(signal) * INT16_SCALE, -INT16_SCALE, INT16_SCALE - 1.0)
    return scaled.astype(np.int16)


def normalize_signal(signal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standardise a (channels, samples) mixture with the statistics of its channel mean.

    Returns:
        (standardised signal, reference) where reference = signal.mean(axis=0), (samples,);
        the signal is shifted by reference.mean() and divided by reference.std().
    """
    reference = signal.mean(0)
    return (signal - reference.mean()) / reference.std(), reference


def denormalize_signals(sources: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Undo `normalize_signal`: scale by ref.std() and shift by ref.mean()."""
    return sources * ref.std() + ref.mean()
