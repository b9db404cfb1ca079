"""Place rendered instruments on a stereo stage in a shared room, at a chosen level.

Each source is panned with a constant-power law (left gain ``cos θ``, right gain ``sin θ``,
``θ = (position + 1) π / 4``) and sent to a small-hall reverberation shared by the whole ensemble: a
stereo impulse response of exponentially decaying, decorrelated Gaussian noise (Schroeder's
statistical model of late reverberation, M. R. Schroeder, "Natural sounding artificial
reverberation", JAES 10(3), 1962). A stem is therefore the instrument as it sounds in the room, and
the mixture is the sum of the stems.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve

PREDELAY_S = 0.012  # first reflections arrive this long after the direct sound
ROOM_HIGH_CUT_HZ = 6000.0  # the late reverberation is darker than the direct sound


def pan_gains(position: float) -> np.ndarray:
    """Constant-power pan gains ``(left, right)`` for ``position`` in [-1 (left), 1 (right)].

    Raises:
        ValueError: if the position is outside [-1, 1].
    """
    if not -1.0 <= position <= 1.0:
        raise ValueError(f"pan position: expected a value in [-1, 1], got {position}")
    angle = (position + 1.0) * np.pi / 4.0
    return np.array([np.cos(angle), np.sin(angle)])


def room_response(rng: np.random.Generator, rt60: float, sample_rate: int = 44100) -> np.ndarray:
    """Stereo late-reverberation impulse response with unit energy per channel.

    Args:
        rng: random generator (the response is a seeded noise draw).
        rt60: reverberation time in s (60 dB decay).
        sample_rate: in Hz.

    Returns:
        Impulse response, shape ``(2, samples)``, ``samples = (PREDELAY_S + rt60) * sample_rate``.
    """
    if rt60 <= 0:
        raise ValueError(f"rt60: expected > 0 s, got {rt60}")
    length = int((PREDELAY_S + rt60) * sample_rate)
    t = np.arange(length) / sample_rate
    envelope = np.where(t < PREDELAY_S, 0.0, 10.0 ** (-3.0 * (t - PREDELAY_S) / rt60))
    noise = rng.standard_normal((2, length))
    # one-pole low-pass darkens the tail as air and walls absorb high frequencies
    pole = np.exp(-2.0 * np.pi * ROOM_HIGH_CUT_HZ / sample_rate)
    spectrum = np.fft.rfft(noise, axis=1)
    freqs = np.fft.rfftfreq(length)
    spectrum *= (1.0 - pole) / (1.0 - pole * np.exp(-2j * np.pi * freqs))
    response = np.fft.irfft(spectrum, n=length, axis=1) * envelope
    return response / np.sqrt(np.sum(response**2, axis=1, keepdims=True))


def place_source(mono: np.ndarray, position: float, room: np.ndarray, wet_db: float) -> np.ndarray:
    """Pan a mono instrument and add the room's reverberation.

    Args:
        mono: dry instrument, shape ``(samples,)``.
        position: stage position in [-1 (left), 1 (right)].
        room: stereo impulse response ``(2, taps)`` from ``room_response``.
        wet_db: reverberant energy relative to the direct sound, dB.

    Returns:
        Stereo stem, shape ``(2, samples)`` (the reverberation tail past the input is cut).
    """
    direct = pan_gains(position)[:, None] * mono[None, :]
    wet = fftconvolve(mono[None, :], room, axes=1)[:, : mono.shape[0]]
    return direct + 10.0 ** (wet_db / 20.0) * wet


def rms_db(signal: np.ndarray) -> float:
    """Root-mean-square level of a signal in dB re full scale (-inf for silence)."""
    power = float(np.mean(np.square(signal, dtype=np.float64)))
    return 10.0 * np.log10(power) if power > 0 else -np.inf


def set_level(signal: np.ndarray, target_db: float) -> np.ndarray:
    """Scale ``signal`` to an RMS level of ``target_db`` dB re full scale.

    Raises:
        ValueError: if the signal is silent.
    """
    level = rms_db(signal)
    if not np.isfinite(level):
        raise ValueError("set_level: expected a non-silent signal")
    return signal * 10.0 ** ((target_db - level) / 20.0)
