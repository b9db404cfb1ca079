"""Hearing-Aid Audio Quality Index (HAAQI) version 1.

Kates & Arehart (2016), "The Hearing-Aid Audio Quality Index (HAAQI)", IEEE/ACM
Trans. Audio Speech Lang. Process. 24(2):354-365. The auditory model is the Kates
(2013) ear model of :mod:`clarity.evaluator.haspi.eb` (shared with HASQI v2, Kates &
Arehart 2014). Scores equal those of pyClarity 0.9.0 for the same inputs and the same
state of NumPy's legacy global random generator.
"""

from __future__ import annotations

import logging
from typing import Final

import numpy as np

from clarity.evaluator.haspi import eb
from clarity.utils.audiogram import Audiogram

logger = logging.getLogger(__name__)

HAAQI_AUDIOGRAM_FREQUENCIES: Final = np.array([250, 500, 1000, 2000, 4000, 6000])


def _check_signal(signal: np.ndarray, name: str) -> np.ndarray:
    signal = np.asarray(signal, dtype=float)
    if signal.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D signal (samples,), got shape {signal.shape}")
    if signal.size == 0:
        raise ValueError(f"{name}: signal is empty")
    if not np.all(np.isfinite(signal)):
        raise ValueError(f"{name}: signal contains NaN or infinite samples")
    return signal


def _check_sample_rate(sample_rate: float, name: str) -> float:
    if not np.isfinite(sample_rate) or sample_rate <= 0:
        raise ValueError(f"{name}: sample rate must be a finite number > 0 Hz, got {sample_rate}")
    return float(sample_rate)


def _unit_feature(value: float, scale: float) -> float:
    """``1 - value / scale`` clipped to [0, 1] (1 = no difference)."""
    return float(min(max(1.0 - value / scale, 0.0), 1.0))


class SilentReferenceError(ValueError, IndexError):
    """HAAQI of a silent reference is undefined (pyClarity 0.9.0 fails with an IndexError)."""


def haaqi_v1(
    reference: np.ndarray,
    reference_freq: float,
    processed: np.ndarray,
    processed_freq: float,
    audiogram: Audiogram,
    equalisation: int,
    level1: float = 65.0,
    silence_threshold: float = 2.5,
    add_noise: float = 0.0,
    segment_covariance: int = 16,
) -> tuple[float, float, float, list[float]]:
    """HAAQI v1 of a processed signal against its reference for one ear.

    Args:
        reference: clean reference ``(samples,)``; NAL-R optional (see ``equalisation``).
        reference_freq: reference sampling rate in Hz.
        processed: processed signal ``(samples,)``.
        processed_freq: processed sampling rate in Hz.
        audiogram: listener's audiogram for this ear; resampled (log-frequency) to
            250, 500, 1000, 2000, 4000 and 6000 Hz.
        equalisation: 1 = add NAL-R to the reference here, 2 = reference already
            has NAL-R.
        level1: dB SPL of a signal with RMS 1.
        silence_threshold: loudness (dB SL) a segment needs to count.
        add_noise: noise (dB SL) added to the envelopes before the cepstra.
        segment_covariance: BM covariance segment length in ms.

    Returns:
        ``(combined, nonlinear, linear, raw)`` with ``raw = [cepstral_high, bm_sync5,
        d_loud, d_norm]``. A reference below threshold gives nonlinear terms of 0.

    Raises:
        ValueError: empty, non-finite or non-1-D signals, or a sample rate <= 0.
        SilentReferenceError: every reference sample is 0 (a ValueError and an IndexError).
    """
    reference = _check_signal(reference, "reference")
    if not np.any(reference):
        raise SilentReferenceError(
            "reference is silent (every sample is 0): HAAQI compares the processed signal with "
            "the reference's envelope and is undefined without one"
        )
    processed = _check_signal(processed, "processed")
    reference_freq = _check_sample_rate(reference_freq, "reference_freq")
    processed_freq = _check_sample_rate(processed_freq, "processed_freq")
    if not audiogram.has_frequencies(HAAQI_AUDIOGRAM_FREQUENCIES):
        logger.warning("Audiogram lacks some HAAQI frequencies; levels will be interpolated")
    audiogram = audiogram.resample(HAAQI_AUDIOGRAM_FREQUENCIES)

    (
        reference_db,
        reference_bm,
        processed_db,
        processed_bm,
        reference_sl,
        processed_sl,
        sample_rate,
    ) = eb.ear_model(
        reference, reference_freq, processed, processed_freq, audiogram.levels, equalisation, level1
    )

    # Envelope modulation (cepstral correlation) on 8 ms smoothed envelopes
    segment_size = 8
    reference_smooth = eb.env_smooth(reference_db, segment_size, sample_rate)
    processed_smooth = eb.env_smooth(processed_db, segment_size, sample_rate)
    _, _, cepstral_high, _ = eb.melcor9(
        reference_smooth, processed_smooth, silence_threshold, add_noise, segment_size
    )

    # Long-term spectral shape
    dloud_stats, dnorm_stats, _ = eb.spectrum_diff(reference_sl, processed_sl)

    # Temporal fine structure: BM short-time coherence with IHC synchrony loss
    cross_covariance, reference_ms, _ = eb.bm_covary(
        reference_bm, processed_bm, segment_covariance, sample_rate
    )
    _, ihc_sync_covariance = eb.ave_covary2(cross_covariance, reference_ms, silence_threshold)
    bm_sync5 = float(ihc_sync_covariance[4])

    d_loud = _unit_feature(dloud_stats[1], 2.5)
    d_norm = _unit_feature(dnorm_stats[1], 25.0)

    nonlinear = 0.754 * cepstral_high**3 + 0.246 * bm_sync5
    linear = 0.329 * d_loud + 0.671 * d_norm
    combined = 0.336 * nonlinear + 0.001 * linear + 0.501 * nonlinear**2 + 0.161 * linear**2
    return combined, nonlinear, linear, [cepstral_high, bm_sync5, d_loud, d_norm]


def compute_haaqi(
    processed_signal: np.ndarray,
    reference_signal: np.ndarray,
    processed_sample_rate: float,
    reference_sample_rate: float,
    audiogram: Audiogram,
    equalisation: int = 1,
    level1: float = 65.0,
) -> float:
    """Combined HAAQI score of one ear (see :func:`haaqi_v1`).

    As in pyClarity, an empty reference scores 1.0 when the processed signal is also
    empty and 0.0 otherwise; any other invalid input raises ``ValueError``.
    """
    if len(reference_signal) == 0:
        if len(processed_signal) == 0:
            return 1.0
        logger.error("Reference is empty but processed is not: HAAQI set to 0")
        return 0.0
    score, _, _, _ = haaqi_v1(
        reference=reference_signal,
        reference_freq=reference_sample_rate,
        processed=processed_signal,
        processed_freq=processed_sample_rate,
        audiogram=audiogram,
        equalisation=equalisation,
        level1=level1,
    )
    return score
