"""Kates auditory model and the feature stages of HASQI/HAAQI, vectorised over bands.

The ear model follows J. M. Kates (2013), "An auditory model for intelligibility
and quality predictions", Proc. Mtgs. Acoust. 19:050184, as used by HASQI v2
(Kates & Arehart 2014, "The Hearing-Aid Speech Quality Index (HASQI) version 2",
J. Audio Eng. Soc. 62(3):99-117) and HAAQI (Kates & Arehart 2016, "The Hearing-Aid
Audio Quality Index (HAAQI)", IEEE/ACM Trans. Audio Speech Lang. Process.
24(2):354-365).

Signals go through a middle-ear filter, a 32-band gammatone filter bank whose
bandwidths widen with level (control path), outer-hair-cell compression, inner-hair-
cell attenuation and adaptation, and threshold noise. The numbers equal those of
pyClarity 0.9.0 (``clarity.evaluator.haspi.eb``) including the order of the draws
from NumPy's legacy global generator; the computation is organised differently:

* band quantities are arrays shaped ``(bands, samples)``, band parameters ``(bands,)``;
* recursions (compression low-pass, IHC adaptation, segment covariances) run in numba
  kernels, transcendental functions in NumPy; the gammatone filters of two bands and
  both signals run together in the lanes of one vector
  (:mod:`clarity.evaluator.haspi.gammatone_lanes`), bit-identical to Kates's filter
  run with lfilter;
* lag searches use FFT cross-correlation limited to the lags that are searched,
  block-wise (overlap-save) for the +/- 100 ms envelope alignment;
* the threshold noise is drawn from NumPy's legacy global generator in the official
  order (reference bands, then processed bands, then the two cepstral draws), with
  the bit-exact fast sampler of :mod:`clarity.utils.legacy_random`;
* each pair of bands runs through its whole pipeline (control path, gammatone,
  compression, alignment, dB SL and IHC adaptation) in reused scratch rows; pairs of
  bands, and the BM covariance bands, are spread over ``NUMBA_NUM_THREADS`` threads
  (default: all cores) while another thread draws the noise. The numbers do not
  depend on the thread count.

Levels: a signal with RMS 1 corresponds to ``level1`` dB SPL. Envelopes in dB SL are
relative to the listener's threshold.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np
import scipy.fft
from numba import njit
from scipy.signal import butter, cheby2, firwin, group_delay, lfilter, resample_poly

from clarity.enhancer.nalr import NALR
from clarity.evaluator.haspi.gammatone_lanes import gammatone_two_bands
from clarity.utils import legacy_random
from clarity.utils.audiogram import Audiogram

logger = logging.getLogger(__name__)

AUDIOMETRIC_FREQUENCIES = np.array([250, 500, 1000, 2000, 4000, 6000])
MODEL_SAMPLE_RATE = 24000.0
_EAR_Q = 9.26449  # Glasberg & Moore ERB parameters
_MIN_BW = 24.7
_SMALL = 1e-30


def _thread_count() -> int:
    """Threads the model may use: numba's configured count (``NUMBA_NUM_THREADS``)."""
    return numba.config.NUMBA_NUM_THREADS


def _in_threads(task: Callable[[range], None], n_items: int) -> None:
    """Call ``task(share)`` for round-robin shares ``range(k, n_items, workers)``.

    ``workers`` is numba's configured thread count (environment variable
    ``NUMBA_NUM_THREADS``, default: all cores; 1 runs everything in this thread), at
    most ``n_items``. The shares run in threads, which overlap because the numba
    kernels (``nogil``), NumPy and ``scipy.fft`` release the GIL.
    """
    workers = max(1, min(_thread_count(), n_items))
    shares = [range(first, n_items, workers) for first in range(workers)]
    if workers == 1:
        task(shares[0])
        return
    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(task, share) for share in shares]:
            future.result()


# --------------------------------------------------------------------------------------
# Model parameters
# --------------------------------------------------------------------------------------


def center_frequency(
    nchan: int,
    shift: float | None = None,
    low_freq: float = 80,
    high_freq: float = 8000,
    ear_q: float = _EAR_Q,
    min_bw: float = _MIN_BW,
) -> np.ndarray:
    """Gammatone centre frequencies (Hz), ``(nchan,)``, equally spaced on the ERB scale.

    Slaney (1993), Apple TR #35. ``shift`` moves both band edges by a fraction of the
    basilar-membrane length with Greenwood's (1990) map (positive = basal).
    """
    if shift is not None:
        k, big_a, small_a = 1.0, 165.4, 2.1
        x_low = np.log10(k + low_freq / big_a) / small_a * (1 + shift)
        x_high = np.log10(k + high_freq / big_a) / small_a * (1 + shift)
        low_freq = big_a * (10 ** (small_a * x_low) - k)
        high_freq = big_a * (10 ** (small_a * x_high) - k)
    erb_offset = ear_q * min_bw
    step = (np.log(low_freq + erb_offset) - np.log(high_freq + erb_offset)) / (nchan - 1)
    descending = -erb_offset + np.exp(np.arange(1, nchan) * step) * (high_freq + erb_offset)
    return np.concatenate(([high_freq], descending))[::-1]


def loss_parameters(
    hearing_loss: np.ndarray,
    center_freq: np.ndarray,
    audiometric_freq: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split the hearing loss between outer and inner hair cells per band.

    The loss (dB) is interpolated linearly from the audiometric frequencies to the
    centre frequencies; 80 % goes to the OHCs up to the loss that removes all
    compression, the rest to the IHCs (Moore et al. 1999, JASA 106:2761-2778).

    Returns:
        ``(attn_ohc, bandwidth, low_knee, compression_ratio, attn_ihc)``, each
        ``(bands,)``: OHC attenuation (dB), bandwidth re normal, lower compression knee
        (dB SPL), compression ratio, IHC attenuation (dB).
    """
    if audiometric_freq is None:
        audiometric_freq = AUDIOMETRIC_FREQUENCIES
    hearing_loss = np.asarray(hearing_loss, dtype=float)
    knots = np.concatenate(([center_freq[0]], audiometric_freq, [center_freq[-1]]))
    values = np.concatenate(([hearing_loss[0]], hearing_loss, [hearing_loss[-1]]))
    loss = np.maximum(np.interp(center_freq, knots, values), 0.0)

    nfilt = len(center_freq)
    normal_ratio = 1.25 + 2.25 * np.arange(nfilt) / (nfilt - 1)  # 1.25:1 .. 3.5:1
    ohc_limit = 1.25 * 70 * (1 - 1 / normal_ratio)
    beyond = loss >= ohc_limit
    attn_ohc = np.where(beyond, 0.8 * ohc_limit, 0.8 * loss)
    attn_ihc = np.where(beyond, 0.2 * ohc_limit + (loss - ohc_limit), 0.2 * loss)

    bandwidth = 1.0 + attn_ohc / 50.0 + 2.0 * (attn_ohc / 50.0) ** 6
    low_knee = attn_ohc + 30
    upper_output = 30 + 70 / normal_ratio  # output for a 100 dB SPL input
    compression_ratio = (100 - low_knee) / (upper_output + attn_ohc - low_knee)
    return attn_ohc, bandwidth, low_knee, compression_ratio, attn_ihc


# --------------------------------------------------------------------------------------
# Input stages
# --------------------------------------------------------------------------------------


def _rms(signal: np.ndarray) -> float:
    return float(np.sqrt(np.mean(signal**2)))


def resample_24khz(
    reference_signal: np.ndarray, reference_freq: float, freq_sample_hz: float = 24000.0
) -> tuple[np.ndarray, float]:
    """Resample a 1-D signal to ``freq_sample_hz`` (rates rounded to whole kHz).

    The output RMS is matched to the input RMS; when downsampling, both RMS values are
    measured after a 21 kHz-wide Chebyshev II low-pass, as in Kates's code. A silent
    input stays silent.

    Returns:
        ``(signal, freq_sample_hz)``.
    """
    target_khz = round(freq_sample_hz / 1000)
    source_khz = round(reference_freq / 1000)
    if source_khz == target_khz:
        return reference_signal, freq_sample_hz
    resampled = resample_poly(reference_signal, target_khz, source_khz)
    if source_khz < target_khz:
        source_rms, resampled_rms = _rms(reference_signal), _rms(resampled)
    else:
        b_source, a_source = cheby2(7, 30, 21 / source_khz)
        b_target, a_target = cheby2(7, 30, 21 / target_khz)
        source_rms = _rms(lfilter(b_source, a_source, reference_signal))
        resampled_rms = _rms(lfilter(b_target, a_target, resampled))
    if resampled_rms > 0:
        resampled = (source_rms / resampled_rms) * resampled
    return resampled, freq_sample_hz


def _lagged_correlation(first: np.ndarray, second: np.ndarray, max_lag: int) -> np.ndarray:
    """``c[..., k + max_lag] = sum_n first[..., n + k] * second[..., n]`` for |k| <= max_lag.

    ``first`` and ``second`` are ``(..., npts)`` (time last, zero outside). A lag range
    much shorter than the signals is done block-wise with FFTs of about 16 lag ranges,
    which stay in cache; otherwise one circular correlation covers it.

    Returns:
        ``(..., 2 max_lag + 1)`` correlations for lags ``-max_lag .. max_lag``.
    """
    npts = first.shape[-1]
    single = scipy.fft.next_fast_len(npts + max_lag, real=True)
    block_size = 1 << int(np.ceil(np.log2(16 * max(max_lag, 1))))
    if single <= block_size:
        return _circular_correlation(first, second, max_lag, single)
    return _blocked_correlation(first, second, max_lag, block_size)


def _zero_padded(signals: np.ndarray, size: int) -> np.ndarray:
    """``signals (..., n)`` followed by zeros up to ``size`` samples."""
    padded = np.zeros((*signals.shape[:-1], size))
    padded[..., : signals.shape[-1]] = signals
    return padded


def _circular_correlation(
    first: np.ndarray, second: np.ndarray, max_lag: int, size: int
) -> np.ndarray:
    """:func:`_lagged_correlation` by one circular FFT correlation, ``size >= n + max_lag``."""
    spectrum = scipy.fft.rfft(_zero_padded(first, size), axis=-1)
    spectrum *= np.conj(scipy.fft.rfft(_zero_padded(second, size), axis=-1))
    circular = scipy.fft.irfft(spectrum, size, axis=-1)
    return np.concatenate((circular[..., size - max_lag :], circular[..., : max_lag + 1]), axis=-1)


def _blocked_correlation(
    first: np.ndarray, second: np.ndarray, max_lag: int, size: int
) -> np.ndarray:
    """:func:`_lagged_correlation` block-wise with real FFTs of length ``size > 2 max_lag``.

    ``second`` is cut into blocks of ``size - 2 max_lag`` samples, each correlated with
    the stretch of ``first`` it can reach; the block spectra products are summed
    before one inverse transform (overlap-save in the lag domain).
    """
    npts = first.shape[-1]
    rows = first.shape[:-1]
    span = 2 * max_lag
    block = size - span
    n_blocks = -(-npts // block)
    padded_first = np.zeros((*rows, n_blocks * block + span))
    padded_first[..., max_lag : max_lag + npts] = first
    reach = np.lib.stride_tricks.sliding_window_view(padded_first, size, axis=-1)
    spectrum = scipy.fft.rfft(reach[..., ::block, :], axis=-1)  # (..., n_blocks, size//2+1)
    blocks = np.zeros((*rows, n_blocks, size))
    n_full = npts // block
    blocks[..., :n_full, :block] = second[..., : n_full * block].reshape(*rows, n_full, block)
    if n_full < n_blocks:
        blocks[..., n_full, : npts - n_full * block] = second[..., n_full * block :]
    second_spectrum = scipy.fft.rfft(blocks, axis=-1)
    np.conjugate(second_spectrum, out=second_spectrum)
    spectrum *= second_spectrum
    return scipy.fft.irfft(spectrum.sum(axis=-2), size, axis=-1)[..., : span + 1]


def _delay_rows(
    signals: np.ndarray, delays: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """Shift each row by ``delays[row]`` samples (>0: later), zero-filling, same length.

    ``out`` may be ``signals`` itself for an in-place shift.
    """
    out = np.empty_like(signals) if out is None else out
    npts = signals.shape[-1]
    for row, delay in enumerate(np.asarray(delays, dtype=int)):
        delay = int(np.clip(delay, -npts, npts))
        if delay >= 0:
            out[row, delay:] = signals[row, : npts - delay]
            out[row, :delay] = 0.0
        else:
            out[row, : npts + delay] = signals[row, -delay:]
            out[row, npts + delay :] = 0.0
    return out


def input_align(reference: np.ndarray, processed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bulk-align the processed signal to the reference and prune silent ends (1-D).

    The processed signal is shifted by the lag of the largest absolute cross-covariance,
    less 2 ms for dispersion; both are then cut to where the reference exceeds 0.001 of
    its peak. A silent reference is not pruned.
    """
    n_common = min(len(reference), len(processed))
    a = reference[:n_common] - np.mean(reference[:n_common])
    b = processed[:n_common] - np.mean(processed[:n_common])
    correlation = _lagged_correlation(a[np.newaxis], b[np.newaxis], n_common - 1)[0]
    lag = int(np.argmax(np.abs(correlation))) - (n_common - 1)
    delay = int(np.rint(-lag - 2 * MODEL_SAMPLE_RATE / 1000.0))
    processed = _delay_rows(processed[np.newaxis], np.array([-delay]))[0]

    magnitude = np.abs(reference)
    above = np.flatnonzero(magnitude > 0.001 * np.max(magnitude))
    if len(above) == 0:
        return reference, processed
    first, last = above[0], min(above[-1], len(processed))
    return reference[first : last + 1], processed[first : last + 1]


def middle_ear(reference: np.ndarray, freq_sample: float) -> np.ndarray:
    """Middle-ear filter: 1-pole low-pass at 5 kHz then 2-pole high-pass at 350 Hz."""
    b_low, a_low = butter(1, 5000 / (0.5 * freq_sample))
    b_high, a_high = butter(2, 350 / (0.5 * freq_sample), "high")
    return lfilter(b_high, a_high, lfilter(b_low, a_low, reference))


# --------------------------------------------------------------------------------------
# Gammatone filter bank
# --------------------------------------------------------------------------------------


@njit(cache=True)
def gammatone_bandwidth_demodulation(npts, tpt, center_freq, center_freq_cos, center_freq_sin):
    """Fill ``cos(n w)`` and ``-sin(n w)``, ``w = tpt * center_freq``, by rotation.

    Returns ``(center_freq_sin, center_freq_cos)`` (the filled arrays).
    """
    cos_step = np.cos(tpt * center_freq)
    sin_step = np.sin(tpt * center_freq)
    c, s = 1.0, 0.0
    center_freq_cos[0] = c
    center_freq_sin[0] = s
    for n in range(1, npts):
        c, s = c * cos_step + s * sin_step, s * cos_step - c * sin_step
        center_freq_cos[n] = c
        center_freq_sin[n] = s
    return center_freq_sin, center_freq_cos


def _gammatone_pole(bandwidth: float, center_freq: float, freq_sample: float) -> float:
    """Pole radius of a gammatone band: ``bandwidth`` times the Glasberg-Moore ERB at
    ``center_freq`` Hz, formed as in Kates's code."""
    tpt = 2 * np.pi / freq_sample
    erb = _MIN_BW + center_freq / _EAR_Q
    return float(np.exp(-(bandwidth * tpt * erb * 1.019)))


def _gammatone_two_bands_into(
    signals: np.ndarray,
    center_freq: np.ndarray,
    bandwidths: np.ndarray,
    freq_sample: float,
    envelope: np.ndarray,
    motion: np.ndarray | None,
) -> None:
    """Gammatone filters of two bands for both rows of ``signals (2, n)`` (reference,
    processed), into ``envelope`` and ``motion`` ``(2 bands, 2 signals, n)``.

    ``center_freq`` is ``(2,)`` Hz, ``bandwidths`` ``(2 bands, 2 signals)`` re normal ERB;
    ``motion=None`` skips the BM. See :mod:`clarity.evaluator.haspi.gammatone_lanes`.
    """
    poles = np.array(
        [[_gammatone_pole(bandwidth, cf, freq_sample) for bandwidth in row]
         for row, cf in zip(bandwidths, center_freq, strict=True)]
    )  # fmt: skip
    tpt = 2 * np.pi / freq_sample
    gammatone_two_bands(signals, poles, tpt * np.asarray(center_freq), envelope, motion)


def gammatone_basilar_membrane(
    reference: np.ndarray,
    reference_bandwidth: float | np.ndarray,
    processed: np.ndarray,
    processed_bandwidth: float | np.ndarray,
    freq_sample: float,
    center_freq: float | np.ndarray,
    ear_q: float = _EAR_Q,
    min_bandwidth: float = _MIN_BW,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """4th-order gammatone filtering of two 1-D signals (Cooke 1993; Ma et al. 2007).

    ``center_freq`` (Hz) and the bandwidths (re normal ERB) may be scalars, giving
    outputs ``(n,)``, or ``(bands,)`` arrays, giving ``(bands, n)``. The signals are
    cut to the shorter length.

    Returns:
        ``(reference_envelope, reference_bm, processed_envelope, processed_bm)``.
    """
    if ear_q != _EAR_Q or min_bandwidth != _MIN_BW:
        raise ValueError("gammatone_basilar_membrane supports only the Glasberg-Moore ERB")
    n_common = min(len(reference), len(processed))
    signals = np.ascontiguousarray(
        np.stack((reference[:n_common], processed[:n_common])), dtype=float
    )
    cf = np.atleast_1d(np.asarray(center_freq, dtype=float))
    bandwidths = np.stack(
        [
            np.broadcast_to(np.asarray(bandwidth, dtype=float), cf.shape)
            for bandwidth in (reference_bandwidth, processed_bandwidth)
        ],
        axis=-1,
    )  # (bands, signals)
    n_pairs = -(-len(cf) // 2)
    envelope, motion = np.empty((2, 2 * n_pairs, 2, n_common))
    for pair in range(n_pairs):
        bands = [2 * pair, min(2 * pair + 1, len(cf) - 1)]  # an odd last band twice
        rows = slice(2 * pair, 2 * pair + 2)
        _gammatone_two_bands_into(
            signals, cf[bands], bandwidths[bands], freq_sample, envelope[rows], motion[rows]
        )
    outputs = tuple(
        np.ascontiguousarray(values[: len(cf), row])
        for row in range(2)
        for values in (envelope, motion)
    )
    if np.ndim(center_freq) == 0:
        return tuple(output[0] for output in outputs)
    return outputs


def bandwidth_adjust(
    control: np.ndarray,
    bandwidth_min: float | np.ndarray,
    bandwidth_max: float | np.ndarray,
    level1: float,
) -> float | np.ndarray:
    """Bandwidth widened with the control-path level (last axis = time).

    Minimum bandwidth below 50 dB SPL, maximum above 100 dB SPL, linear in dB between.
    """
    rms = np.sqrt(np.mean(np.asarray(control) ** 2, axis=-1))
    return _bandwidth_from_rms(rms, bandwidth_min, bandwidth_max, level1)


def _bandwidth_from_rms(
    rms: float | np.ndarray,
    bandwidth_min: float | np.ndarray,
    bandwidth_max: float | np.ndarray,
    level1: float,
) -> float | np.ndarray:
    """:func:`bandwidth_adjust` from the control envelope's RMS (scalar or array)."""
    with np.errstate(divide="ignore"):
        level_db = 20 * np.log10(rms) + level1
    fraction = np.clip((level_db - 50) / 50, 0.0, 1.0)
    bandwidth = np.where(
        level_db < 50,
        bandwidth_min,
        np.where(
            level_db > 100,
            bandwidth_max,
            bandwidth_min + fraction * (np.asarray(bandwidth_max) - bandwidth_min),
        ),
    )
    return float(bandwidth) if np.ndim(bandwidth) == 0 else bandwidth


# --------------------------------------------------------------------------------------
# Outer and inner hair cells
# --------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _lowpass_gain_apply(gain, b0, b1, a1, envelope, basilar_membrane):
    """First-order low-pass of ``gain`` rows, multiplied into both signals in place.

    Rows go in pairs through one time loop: the two recursions are independent, so
    their latency overlaps (same operations per row, same numbers).
    """
    n_bands, npts = gain.shape
    for first in range(0, n_bands - 1, 2):
        second = first + 1
        z0 = 0.0
        z1 = 0.0
        for t in range(npts):
            x0 = gain[first, t]
            x1 = gain[second, t]
            y0 = b0 * x0 + z0
            y1 = b0 * x1 + z1
            z0 = b1 * x0 - a1 * y0
            z1 = b1 * x1 - a1 * y1
            envelope[first, t] *= y0
            envelope[second, t] *= y1
            basilar_membrane[first, t] *= y0
            basilar_membrane[second, t] *= y1
    if n_bands % 2:
        last = n_bands - 1
        z = 0.0
        for t in range(npts):
            x = gain[last, t]
            y = b0 * x + z
            z = b1 * x - a1 * y
            envelope[last, t] *= y
            basilar_membrane[last, t] *= y


@njit(cache=True, nogil=True)
def _gain_exponent(log_level, level1, low, high, slope, attn):
    """OHC gain exponent from ``log10(control)`` rows ``(bands, n)``, in place.

    ``-attn - (clip(20 log10 + level1, low, high) - low) * slope`` dB, times ln(10)/20;
    band parameters are ``(bands,)``.
    """
    db_to_exponent = math.log(10) / 20
    n_bands, npts = log_level.shape
    for band in range(n_bands):
        for t in range(npts):
            level = log_level[band, t] * 20 + level1
            level = min(max(level, low[band]), high)
            log_level[band, t] = ((level - low[band]) * -slope[band] - attn[band]) * db_to_exponent


def _compress_in_place(
    control: np.ndarray,
    attn_ohc: np.ndarray,
    threshold_low: np.ndarray,
    compression_ratio: np.ndarray,
    level1: float,
    threshold_high: float,
    small: float,
    lowpass: tuple[float, float, float],
    envelope: np.ndarray,
    motion: np.ndarray,
) -> None:
    """OHC compression of ``envelope`` and ``motion (bands, n)`` in place.

    The gain (dB) is computed in ``control (bands, n)``, which is overwritten; band
    parameters are ``(bands,)``. See :func:`env_compress_basilar_membrane`.
    """
    level = np.maximum(control, small, out=control)
    np.log10(level, out=level)
    _gain_exponent(
        level, level1, threshold_low, threshold_high, 1 - 1 / compression_ratio, attn_ohc
    )
    gain = np.exp(level, out=level)
    _lowpass_gain_apply(gain, *lowpass, envelope, motion)


def _per_band(value: float | np.ndarray, n_bands: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(value, dtype=float), (n_bands,)).reshape(n_bands, 1)


def env_compress_basilar_membrane(
    envsig: np.ndarray,
    bm: np.ndarray,
    control: np.ndarray,
    attn_ohc: float | np.ndarray,
    threshold_low: float | np.ndarray,
    compression_ratio: float | np.ndarray,
    fsamp: float,
    level1: float,
    small: float = _SMALL,
    threshold_high: float = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """OHC compression of envelope and BM motion driven by the control envelope.

    Gain is ``-attn_ohc`` dB below ``threshold_low`` dB SPL, compressive with
    ``compression_ratio`` up to ``threshold_high``, then constant; it is smoothed by an
    800 Hz first-order low-pass. Arrays are ``(n,)`` with scalar parameters or
    ``(bands, n)`` with ``(bands,)`` parameters.

    Returns:
        ``(compressed_envelope, compressed_bm)``.
    """
    one_d = np.ndim(envsig) == 1
    envelope = np.array(np.atleast_2d(envsig), dtype=float)
    motion = np.array(np.atleast_2d(bm), dtype=float)
    n_bands = envelope.shape[0]
    _compress_in_place(
        np.array(np.atleast_2d(control), dtype=float),
        _per_band(attn_ohc, n_bands)[:, 0],
        _per_band(threshold_low, n_bands)[:, 0],
        _per_band(compression_ratio, n_bands)[:, 0],
        level1,
        threshold_high,
        small,
        _compression_lowpass(fsamp),
        envelope,
        motion,
    )
    if one_d:
        return envelope[0], motion[0]
    return envelope, motion


def _compression_lowpass(fsamp: float) -> tuple[float, float, float]:
    """``(b0, b1, a1)`` of the 800 Hz first-order Butterworth gain smoother."""
    b, a = butter(1, 800 / (0.5 * fsamp))
    return float(b[0]), float(b[1]), float(a[1])


def _alignment_delays(reference: np.ndarray, output: np.ndarray, max_lag: int) -> np.ndarray:
    """Per-row delay (samples) of ``output`` behind ``reference``, ``|delay| < max_lag``."""
    correlation = _lagged_correlation(reference, output, max_lag)
    # searched lags are -max_lag+1 .. max_lag; the first maximum wins
    location = np.argmax(correlation[:, 1:], axis=-1)
    return max_lag - location - 1


def _alignment_max_lag(freq_sample: float, corr_range: float, npts: int) -> int:
    """Largest alignment lag (samples) for a search range of ``corr_range`` ms."""
    return min(int(np.rint(0.001 * corr_range * freq_sample)), npts)


def envelope_align(
    reference: np.ndarray, output: np.ndarray, freq_sample: int = 24000, corr_range: int = 100
) -> np.ndarray:
    """Shift ``output`` to best match ``reference`` within +/- ``corr_range`` ms.

    Works on ``(n,)`` or row-wise on ``(bands, n)`` arrays (each row its own delay).
    """
    one_d = np.ndim(output) == 1
    reference = np.atleast_2d(reference)
    output = np.atleast_2d(output)
    max_lag = _alignment_max_lag(freq_sample, corr_range, reference.shape[-1])
    delays = _alignment_delays(reference, output, max_lag)
    aligned = _delay_rows(output, -delays)
    return aligned[0] if one_d else aligned


def envelope_sl(
    reference: np.ndarray,
    basilar_membrane: np.ndarray,
    attenuated_ihc: float | np.ndarray,
    level1: float,
    small: float = _SMALL,
) -> tuple[np.ndarray, np.ndarray]:
    """Convert a compressed envelope to dB SL (floored at 0) and rescale the BM motion.

    ``attenuated_ihc`` is a scalar for ``(n,)`` inputs or ``(bands,)`` for ``(bands, n)``.
    """
    one_d = np.ndim(reference) == 1
    envelope = np.atleast_2d(reference)
    attn = _per_band(attenuated_ihc, envelope.shape[0])
    level = np.maximum(level1 - attn + 20 * np.log10(envelope + small), 0.0)
    motion = np.atleast_2d(basilar_membrane) * ((level + small) / (envelope + small))
    if one_d:
        return level[0], motion[0]
    return level, motion


@njit(cache=True, nogil=True)
def _ihc_coefficients(delta, freq_sample):
    """Backward-difference update of the IHC adaptation RC circuit (Kates 2013).

    Rapid (2 ms) and short-term (60 ms) time constants; ``delta`` is the overshoot.
    Returns ``(r2, k1, k2, a11, a12, a21, a22, denom, 1 / r1)``.
    """
    delta = max(delta, 1.0001)
    tau1, tau2 = 0.002, 0.060
    r1 = 1 / delta
    r2 = 0.5 * (1 - r1)
    r3 = r2
    c1 = tau1 * (r1 + r2) / (r1 * r2)
    c2 = tau2 / ((r1 + r2) * r3)
    a11 = r1 + r2 + r1 * r2 * (c1 * freq_sample)
    a12 = -r1
    a21 = -r3
    a22 = r2 + r3 + r2 * r3 * (c2 * freq_sample)
    denom = 1 / ((a11 * a22) - (a21 * a12))
    k1 = r1 * r2 * (c1 * freq_sample)
    k2 = r2 * r3 * (c2 * freq_sample)
    return r2, k1, k2, a11, a12, a21, a22, denom, 1 / r1


@njit(cache=True, nogil=True)
def _ihc_step(v0, v1, v2, coefficients):
    """One sample of IHC adaptation: ``(output_db, v1, v2)`` for input ``v0`` dB SL."""
    r2, k1, k2, a11, a12, a21, a22, denom, r1_inv = coefficients
    b1 = v0 * r2 + k1 * v1
    b2 = k2 * v2
    v1 = denom * (a22 * b1 - a12 * b2)
    v2 = denom * (-a21 * b1 + a11 * b2)
    return max((v0 - v1) * r1_inv, 0.0), v1, v2


@njit(cache=True)
def _ihc_adaptation_kernel(level_db, motion, delta, freq_sample, out_db, out_motion):
    """IHC adaptation of ``level_db (rows, n)``; ``motion`` gets the same gain."""
    coefficients = _ihc_coefficients(delta, freq_sample)
    n_rows, npts = level_db.shape
    for row in range(n_rows):
        v1 = 0.0
        v2 = 0.0
        for t in range(npts):
            v0 = level_db[row, t]
            out, v1, v2 = _ihc_step(v0, v1, v2, coefficients)
            out_db[row, t] = out
            out_motion[row, t] = motion[row, t] * ((out + _SMALL) / (v0 + _SMALL))


@njit(cache=True, nogil=True)
def _sl_adaptation_kernel(
    log_envelope,
    envelope,
    motion,
    offset_db,
    envelope_delay,
    motion_delay,
    delta,
    freq_sample,
    out_db,
    out_bm,
):
    """:func:`envelope_sl` then :func:`inner_hair_cell_adaptation` of one band ``(n,)``.

    ``log_envelope = log10(envelope + small)`` (NumPy's vectorised log); the level is
    ``max(offset_db + 20 log_envelope, 0)`` dB SL with ``offset_db = level1 - attn_ihc``.
    Envelope (with its level) and ``motion`` are first delayed by their own number of
    samples, zero-filled as :func:`envelope_align` does (a zero envelope has level
    0 dB SL).
    """
    coefficients = _ihc_coefficients(delta, freq_sample)
    npts = envelope.shape[0]
    v1 = 0.0
    v2 = 0.0
    for t in range(npts):
        source = t - envelope_delay
        inside = 0 <= source < npts
        env = envelope[source] if inside else 0.0
        level_db = max(offset_db + 20 * log_envelope[source], 0.0) if inside else 0.0
        source = t - motion_delay
        bm = motion[source] if 0 <= source < npts else 0.0
        bm = bm * ((level_db + _SMALL) / (env + _SMALL))
        out, v1, v2 = _ihc_step(level_db, v1, v2, coefficients)
        out_db[t] = out
        out_bm[t] = bm * ((out + _SMALL) / (level_db + _SMALL))


def inner_hair_cell_adaptation(
    reference_db: np.ndarray,
    reference_basilar_membrane: np.ndarray,
    delta: float,
    freq_sample: float,
) -> tuple[np.ndarray, np.ndarray]:
    """IHC adaptation of an envelope in dB SL; the BM motion gets the same gain.

    ``delta`` is the overshoot factor (>= 1.0001). Inputs ``(n,)`` or ``(bands, n)``.

    Returns:
        ``(adapted_db, adapted_bm)``.
    """
    one_d = np.ndim(reference_db) == 1
    level = np.ascontiguousarray(np.atleast_2d(reference_db), dtype=float)
    motion = np.ascontiguousarray(np.atleast_2d(reference_basilar_membrane), dtype=float)
    out_db = np.empty_like(level)
    out_motion = np.empty_like(motion)
    _ihc_adaptation_kernel(level, motion, float(delta), float(freq_sample), out_db, out_motion)
    if one_d:
        return out_db[0], out_motion[0]
    return out_db, out_motion


def basilar_membrane_add_noise(
    reference: np.ndarray, threshold: float, level1: float
) -> np.ndarray:
    """Add Gaussian noise ``threshold`` dB re auditory threshold (legacy global RNG)."""
    noise = legacy_random.standard_normal(np.shape(reference))
    noise *= 10 ** ((threshold - level1) / 20)
    noise += reference
    return noise


def _threshold_noise(shape: tuple[int, int]) -> np.ndarray:
    """Unit Gaussian threshold noise ``(2, bands, n)`` from NumPy's legacy generator.

    Drawn as the official code does: all reference bands, then all processed bands.
    """
    noise = np.empty((2, *shape))
    for signal_noise in noise:
        legacy_random.standard_normal(shape, out=signal_noise)
    return noise


def _gammatone_group_delay(bandwidths, center_freq, freq_sample, ear_q, min_bandwidth):
    """Group delay at DC (samples) of each band's gammatone IIR, ``(bands,)``.

    Evaluated with ``scipy.signal.group_delay`` like Kates's code, so that rounding to
    whole samples agrees with it.
    """
    erb = min_bandwidth + np.asarray(center_freq) / ear_q
    a = np.exp(-(2 * np.pi / freq_sample * 1.019 * np.asarray(bandwidths) * erb))
    delays = np.empty(len(a))
    for band, pole in enumerate(a):
        numerator = [1, 4.0 * pole, 4.0 * pole * pole]
        denominator = [
            1,
            -4.0 * pole,
            6.0 * pole * pole,
            -4.0 * pole * pole * pole,
            pole * pole * pole * pole,
        ]
        delays[band] = group_delay((numerator, denominator), 1)[1][0]
    return delays


def group_delay_compensate(
    reference: np.ndarray,
    bandwidths: np.ndarray,
    center_freq: np.ndarray,
    freq_sample: float,
    ear_q: float = _EAR_Q,
    min_bandwidth: float = _MIN_BW,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Delay each band of ``reference (bands, n)`` so all share the largest group delay.

    The result goes to a new array, or to ``out`` (which may be ``reference``).
    """
    delays = _group_delay_compensation(bandwidths, center_freq, freq_sample, ear_q, min_bandwidth)
    return _delay_rows(reference, delays, out=out)


def _group_delay_compensation(
    bandwidths: np.ndarray,
    center_freq: np.ndarray,
    freq_sample: float,
    ear_q: float = _EAR_Q,
    min_bandwidth: float = _MIN_BW,
) -> np.ndarray:
    """Whole-sample delays ``(bands,)`` that bring every band to the largest group delay."""
    delay = np.rint(
        _gammatone_group_delay(bandwidths, center_freq, freq_sample, ear_q, min_bandwidth)
    ).astype(int)
    return delay.max() - delay


@njit(cache=True)
def _add_noise_and_delay(motion, noise, scale, delays):
    """``motion[row] <- delay(noise[row] * scale + motion[row], delays[row])`` in place.

    Same numbers as :func:`basilar_membrane_add_noise` followed by
    :func:`group_delay_compensate` (delays >= 0 samples, zero-filled), in one pass.
    """
    n_rows, npts = motion.shape
    for row in range(n_rows):
        delay = min(delays[row], npts)
        for t in range(npts - 1, delay - 1, -1):  # backwards: sources are not yet overwritten
            motion[row, t] = noise[row, t - delay] * scale + motion[row, t - delay]
        for t in range(delay):
            motion[row, t] = 0.0


def convert_rms_to_sl(
    reference: np.ndarray,
    control: np.ndarray,
    attenuated_ohc: float | np.ndarray,
    threshold_low: float | np.ndarray,
    compression_ratio: float | np.ndarray,
    attenuated_ihc: float | np.ndarray,
    level1: float,
    threshold_high: float = 100,
    small: float = _SMALL,
) -> np.ndarray:
    """Band RMS envelope levels -> compressed dB SL (floored at 0), ``(bands,)``."""
    control_db = np.clip(
        level1 + 20 * np.log10(np.maximum(control, small)), threshold_low, threshold_high
    )
    gain = -attenuated_ohc - (control_db - threshold_low) * (1 - 1 / compression_ratio)
    envelope_db = np.maximum(level1 + 20 * np.log10(np.maximum(reference, small)), 0)
    return np.maximum(envelope_db + gain - attenuated_ihc, 0)


# --------------------------------------------------------------------------------------
# Ear model
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _BandParameters:
    """Model parameters per band; rows 0/1 = reference/processed, ``(2, bands)``."""

    cf: np.ndarray  # (bands,) centre frequencies, Hz
    cf_control: np.ndarray  # (bands,) control-path centre frequencies, Hz
    bw_control: np.ndarray  # (bands,) control-path bandwidths re normal ERB
    bw_min: np.ndarray
    attn_ohc: np.ndarray  # dB
    low_knee: np.ndarray  # dB SPL
    compression_ratio: np.ndarray
    attn_ihc: np.ndarray  # dB


@dataclass(frozen=True)
class _BandOutputs:
    """Ear-model outputs; rows 0/1 = reference/processed."""

    db: np.ndarray  # (2, bands, n) envelopes after IHC adaptation, dB SL
    bm: np.ndarray  # (2, bands, n) BM motion, before threshold noise and group delay
    average: np.ndarray  # (2, bands) RMS envelope
    control_average: np.ndarray  # (2, bands) RMS control envelope
    bandwidth: np.ndarray  # (2, bands) bandwidths after the control-path adjustment


def _run_bands(
    signals: np.ndarray,
    params: _BandParameters,
    outputs: _BandOutputs,
    sample_rate: float,
    level1: float,
) -> None:
    """Run the ear model's band stages for every band, two bands at a time.

    ``signals`` are the middle-ear outputs ``(2, n)`` (reference, processed). Pairs of
    bands are shared out to worker threads; for each pair the gammatone filters of both
    bands and both signals run together (:func:`_gammatone_pair_of_bands`), then
    :func:`_ear_band` finishes each band. Bands are independent and write disjoint
    output rows. Each worker reuses one scratch buffer.
    """
    signals = np.ascontiguousarray(signals, dtype=float)
    n_bands = len(params.cf)

    def run_share(pairs: range) -> None:
        work = np.empty((3, 2, 2, signals.shape[1]))  # control, envelope, motion
        for pair in pairs:
            bands = [2 * pair, min(2 * pair + 1, n_bands - 1)]
            _gammatone_pair_of_bands(bands, signals, params, outputs, sample_rate, level1, work)
            for member, band in enumerate(bands[: n_bands - 2 * pair]):
                control, envelope, motion = work[:, member]
                _ear_band(band, params, outputs, sample_rate, level1, control, envelope, motion)

    _in_threads(run_share, -(-n_bands // 2))


def _gammatone_pair_of_bands(
    bands: list[int],
    signals: np.ndarray,
    params: _BandParameters,
    outputs: _BandOutputs,
    sample_rate: float,
    level1: float,
    work: np.ndarray,
) -> None:
    """Control path and gammatone filters of two bands (the same one twice for an odd last
    band) for both signals, into ``work[:, member]`` (control, envelope, motion).

    The control filters (widest, fully damaged) set each band's bandwidth from their RMS
    level (``outputs.bandwidth``); the main filters then give the envelope and BM motion.
    """
    control, envelope, motion = work
    bw_control = params.bw_control[bands]
    _gammatone_two_bands_into(
        signals,
        params.cf_control[bands],
        np.stack((bw_control, bw_control), axis=-1),
        sample_rate,
        control,
        None,
    )
    for member, band in enumerate(bands):
        control_rms = np.sqrt(np.mean(control[member] ** 2, axis=1))
        outputs.bandwidth[:, band] = [
            _bandwidth_from_rms(
                control_rms[row], params.bw_min[row, band], params.bw_control[band], level1
            )
            for row in range(2)
        ]
    bandwidths = outputs.bandwidth[:, bands].T  # (bands, signals)
    _gammatone_two_bands_into(signals, params.cf[bands], bandwidths, sample_rate, envelope, motion)


def _ear_band(
    band: int,
    params: _BandParameters,
    outputs: _BandOutputs,
    sample_rate: float,
    level1: float,
    control: np.ndarray,
    envelope: np.ndarray,
    motion: np.ndarray,
) -> None:
    """OHC compression, alignment, dB SL and IHC adaptation of one band.

    ``control``, ``envelope`` and ``motion`` are the band's gammatone outputs ``(2, n)``
    (reference, processed), overwritten; results go to ``outputs``.
    """
    nsamp = envelope.shape[1]
    outputs.average[:, band] = np.sqrt(np.mean(envelope**2, axis=1))
    outputs.control_average[:, band] = np.sqrt(np.mean(control**2, axis=1))
    _compress_in_place(
        control,
        params.attn_ohc[:, band],
        params.low_knee[:, band],
        params.compression_ratio[:, band],
        level1,
        100.0,
        _SMALL,
        _compression_lowpass(sample_rate),
        envelope,
        motion,
    )
    max_lag = _alignment_max_lag(int(sample_rate), 100, nsamp)
    envelope_delay = -_alignment_delays(envelope[:1], envelope[1:], max_lag)[0]
    motion_delay = -_alignment_delays(motion[:1], motion[1:], max_lag)[0]
    # log envelope for the dB SL (NumPy's vectorised log), into the spent control rows
    log_envelope = np.add(envelope, _SMALL, out=control)
    np.log10(log_envelope, out=log_envelope)
    delta = 2.0  # IHC overshoot
    for row, (envelope_shift, motion_shift) in enumerate(((0, 0), (envelope_delay, motion_delay))):
        _sl_adaptation_kernel(
            log_envelope[row],
            envelope[row],
            motion[row],
            level1 - params.attn_ihc[row, band],
            envelope_shift,
            motion_shift,
            delta,
            sample_rate,
            outputs.db[row, band],
            outputs.bm[row, band],
        )


def ear_model(
    reference: np.ndarray,
    reference_freq: float,
    processed: np.ndarray,
    processed_freq: float,
    hearing_loss: np.ndarray,
    itype: int,
    level1: float,
    nchan: int = 32,
    m_delay: int = 1,
    shift: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Kates (2013) cochlear model of a reference and a processed signal.

    Args:
        reference: reference signal ``(n,)``; at 65 dB SPL (``itype`` 0 or 1) or with
            NAL-R already applied (``itype`` 2).
        reference_freq: its sampling rate in Hz.
        processed: processed (hearing-aid output) signal ``(m,)``.
        processed_freq: its sampling rate in Hz.
        hearing_loss: thresholds (dB HL) at 250, 500, 1000, 2000, 4000, 6000 Hz.
        itype: 0 intelligibility (normal-hearing reference), 1 quality with NAL-R added
            to the reference here, 2 quality with NAL-R already in the reference.
        level1: dB SPL of a signal with RMS 1.
        nchan: number of gammatone bands.
        m_delay: compensate the filter-bank group delay when > 0.
        shift: basal shift of the control filter bank (fraction of BM length).

    Returns:
        ``(reference_db, reference_bm, processed_db, processed_bm, reference_sl,
        processed_sl, sample_rate)``: envelopes in dB SL and BM motion ``(nchan, N)``,
        average band levels in dB SL ``(nchan,)``, and the model rate (24000 Hz).
    """
    hearing_loss = np.asarray(hearing_loss, dtype=float)
    cf = center_frequency(nchan)
    attn_ohc_y, bw_min_y, low_knee_y, ratio_y, attn_ihc_y = loss_parameters(hearing_loss, cf)
    reference_loss = np.zeros(len(hearing_loss)) if itype == 0 else hearing_loss
    attn_ohc_x, bw_min_x, low_knee_x, ratio_x, attn_ihc_x = loss_parameters(reference_loss, cf)
    cf_control = center_frequency(nchan, shift)
    _, bw_control, _, _, _ = loss_parameters(np.full(6, 100.0), cf_control)

    reference_24, _ = resample_24khz(reference, reference_freq)
    processed_24, sample_rate = resample_24khz(processed, processed_freq)
    n_common = min(len(reference_24), len(processed_24))
    reference_24, processed_24 = input_align(reference_24[:n_common], processed_24[:n_common])
    nsamp = len(reference_24)

    if itype == 1:
        nfir = 140
        enhancer = NALR(nfir, sample_rate)
        fir, _ = enhancer.build(Audiogram(levels=hearing_loss, frequencies=AUDIOMETRIC_FREQUENCIES))
        reference_24 = enhancer.apply(fir, reference_24)[nfir : nfir + nsamp]

    reference_mid = middle_ear(reference_24, sample_rate)
    processed_mid = middle_ear(processed_24, sample_rate)

    shape = (nchan, nsamp)
    params = _BandParameters(
        cf=cf,
        cf_control=cf_control,
        bw_control=bw_control,
        bw_min=np.stack((bw_min_x, bw_min_y)),
        attn_ohc=np.stack((attn_ohc_x, attn_ohc_y)),
        low_knee=np.stack((low_knee_x, low_knee_y)),
        compression_ratio=np.stack((ratio_x, ratio_y)),
        attn_ihc=np.stack((attn_ihc_x, attn_ihc_y)),
    )
    outputs = _BandOutputs(
        db=np.empty((2, *shape)),
        bm=np.empty((2, *shape)),
        average=np.empty((2, nchan)),
        control_average=np.empty((2, nchan)),
        bandwidth=np.empty((2, nchan)),
    )
    signals = np.stack((reference_mid, processed_mid))
    if _thread_count() > 1:  # the noise depends only on the generator: draw it meanwhile
        with ThreadPoolExecutor(1) as pool:
            pending_noise = pool.submit(_threshold_noise, shape)
            _run_bands(signals, params, outputs, float(sample_rate), float(level1))
            noise = pending_noise.result()
    else:
        _run_bands(signals, params, outputs, float(sample_rate), float(level1))
        noise = _threshold_noise(shape)
    reference_db, processed_db = outputs.db
    reference_bm, processed_bm = outputs.bm
    average, control_average = outputs.average, outputs.control_average
    reference_bandwidth = outputs.bandwidth[0]

    if m_delay > 0:
        delays = _group_delay_compensation(reference_bandwidth, cf, sample_rate)
    else:
        delays = np.zeros(nchan, dtype=int)
    _delay_rows(reference_db, delays, out=reference_db)
    _delay_rows(processed_db, delays, out=processed_db)
    ihc_threshold = -10  # dB re auditory threshold
    noise_scale = 10 ** ((ihc_threshold - level1) / 20)
    for motion_out, motion_noise in zip((reference_bm, processed_bm), noise, strict=True):
        _add_noise_and_delay(motion_out, motion_noise, noise_scale, delays)

    reference_sl = convert_rms_to_sl(
        average[0], control_average[0], attn_ohc_x, low_knee_x, ratio_x, attn_ihc_x, level1
    )
    processed_sl = convert_rms_to_sl(
        average[1], control_average[1], attn_ohc_y, low_knee_y, ratio_y, attn_ihc_y, level1
    )
    return (
        reference_db,
        reference_bm,
        processed_db,
        processed_bm,
        reference_sl,
        processed_sl,
        sample_rate,
    )


# --------------------------------------------------------------------------------------
# Envelope features
# --------------------------------------------------------------------------------------


def _segment_blocks(signals: np.ndarray, half: int, nseg: int) -> np.ndarray:
    """View ``(bands, n)`` as ``(bands, nseg, half)`` consecutive half-segment blocks."""
    return signals[:, : nseg * half].reshape(signals.shape[0], nseg, half)


def _segment_count(npts: int, nwin: int) -> int:
    return int(1 + np.floor(npts / nwin) + np.floor((npts - nwin / 2) / nwin))


def _even_window_length(segment_ms: float, sample_rate: float) -> int:
    n = int(np.around(segment_ms * 0.001 * sample_rate))
    return n + (n % 2)


def env_smooth(envelopes: np.ndarray, segment_size: float, sample_rate: float) -> np.ndarray:
    """Hann-weighted averages of ``(bands, n)`` envelopes over 50 %-overlapped segments.

    Segments are ``segment_size`` ms long (forced even); the first and last use half
    windows. Output ``(bands, nseg)``, sampled at ``2000 / segment_size`` Hz.
    """
    nwin = _even_window_length(segment_size, sample_rate)
    half = nwin // 2
    window = np.hanning(nwin)
    nseg = _segment_count(envelopes.shape[1], nwin)
    blocks = _segment_blocks(envelopes, half, nseg)
    rising = blocks @ window[:half]  # block weighted by the first window half
    falling = blocks @ window[half:]
    smooth = np.empty((envelopes.shape[0], nseg))
    half_sum = np.sum(window[half:])
    smooth[:, 0] = falling[:, 0] / half_sum
    smooth[:, 1 : nseg - 1] = (rising[:, 1 : nseg - 1] + falling[:, 2:nseg]) / np.sum(window)
    smooth[:, nseg - 1] = rising[:, nseg - 1] / half_sum
    return smooth


def _cepstral_basis(nbands: int, n_coefficients: int) -> np.ndarray:
    """Half-cosine basis ``(nbands, n_coefficients)`` with unit-norm columns."""
    basis = np.cos(np.outer(np.arange(nbands), np.arange(n_coefficients)) * np.pi / (nbands - 1))
    return basis / np.linalg.norm(basis, axis=0, keepdims=True)


def _segments_above_threshold(envelope_db: np.ndarray, threshold: float) -> np.ndarray:
    """Columns whose band-averaged specific loudness exceeds ``threshold`` dB."""
    with np.errstate(divide="ignore"):
        loudness_db = 20 * np.log10(np.mean(10 ** (envelope_db / 20), axis=0))
    return np.flatnonzero(loudness_db > threshold)


def _normalised_covariance(x: np.ndarray, y: np.ndarray, small: float = 1e-30) -> np.ndarray:
    """|<x, y>| / (|x| |y|) along the last axis; 0 where either energy is below ``small``."""
    x_energy = np.sum(x * x, axis=-1)
    y_energy = np.sum(y * y, axis=-1)
    valid = (x_energy >= small) & (y_energy >= small)
    out = np.zeros(x_energy.shape)
    out[valid] = np.abs(np.sum(x * y, axis=-1)[valid]) / np.sqrt(x_energy[valid] * y_energy[valid])
    return out


def _cepstra(reference, distorted, threshold, add_noise, n_coefficients):
    """Mean-removed cepstral sequences of the segments above threshold, or None."""
    index = _segments_above_threshold(reference, threshold)
    if len(index) <= 1:
        return None
    reference = reference[:, index]
    distorted = distorted[:, index]
    reference = reference + add_noise * legacy_random.standard_normal(reference.shape)
    distorted = distorted + add_noise * legacy_random.standard_normal(distorted.shape)
    basis = _cepstral_basis(reference.shape[0], n_coefficients)
    reference_cep = basis.T @ reference
    distorted_cep = basis.T @ distorted
    reference_cep -= np.mean(reference_cep, axis=1, keepdims=True)
    distorted_cep -= np.mean(distorted_cep, axis=1, keepdims=True)
    return reference_cep, distorted_cep


def mel_cepstrum_correlation(
    reference: np.ndarray, distorted: np.ndarray, threshold: float, addnoise: float
) -> tuple[float, np.ndarray]:
    """Correlations of the 6 mel-cepstrum sequences of two ``(bands, nseg)`` envelopes (dB).

    Returns:
        ``(average of coefficients 2-6, per-coefficient correlations (6,))``; zeros
        when at most one segment is above ``threshold``.
    """
    cepstra = _cepstra(reference, distorted, threshold, addnoise, 6)
    if cepstra is None:
        logger.warning("mel_cepstrum_correlation: signal below threshold, outputs set to 0")
        return 0.0, np.zeros(6)
    correlations = _normalised_covariance(*cepstra)
    return float(np.sum(correlations[1:]) / 5), correlations


def _modulation_filters(segment_size: float) -> tuple[np.ndarray, int]:
    """Hann-window FIR modulation filter bank ``(8, nfir + 1)`` for the envelope rate."""
    edges = [4.0, 8.0, 12.5, 20.0, 32.0, 50.0, 80.0]
    nyquist = 0.5 * 1000.0 / (0.5 * segment_size)
    nfir = int(2 * np.floor(np.around(128 * (nyquist / 125)) / 2))
    bands = [firwin(nfir + 1, edges[0] / nyquist, window="hann", pass_zero="lowpass")]
    bands += [
        firwin(nfir + 1, [lo / nyquist, hi / nyquist], window="hann", pass_zero="bandpass")
        for lo, hi in itertools.pairwise(edges)
    ]
    bands.append(firwin(nfir + 1, edges[-1] / nyquist, window="hann", pass_zero="highpass"))
    return np.array(bands), nfir


def melcor9_crosscovmatrix(
    b: np.ndarray,
    nmod: int,
    nbasis: int,
    nsamp: int,
    nfir: int,
    reference_cep: np.ndarray,
    processed_cep: np.ndarray,
) -> np.ndarray:
    """Normalised covariances ``(nmod, nbasis)`` of modulation-filtered cepstra."""
    half = nfir // 2
    filtered = np.empty((2, nmod, nbasis, nsamp))
    for s, cepstra in enumerate((reference_cep, processed_cep)):
        for m in range(nmod):
            for j in range(nbasis):
                filtered[s, m, j] = np.convolve(b[m], cepstra[j])[half : half + nsamp]
    filtered -= np.mean(filtered, axis=-1, keepdims=True)
    return _normalised_covariance(filtered[0], filtered[1])


def melcor9(
    reference: np.ndarray,
    distorted: np.ndarray,
    threshold: float,
    add_noise: float,
    segment_size: float,
    n_cepstral_coef: int = 6,
) -> tuple[float, float, float, np.ndarray]:
    """Cepstral correlation in 8 modulation bands (HAAQI's envelope feature).

    Args:
        reference, distorted: smoothed envelopes (dB SL) ``(bands, nseg)``.
        threshold: loudness (dB) a segment needs to be used.
        add_noise: std of Gaussian noise added to the envelopes (drawn even when 0).
        segment_size: envelope segment length in ms (sets the modulation rate).
        n_cepstral_coef: number of cepstral coefficients.

    Returns:
        ``(average, low (bands 0-3), high (bands 4-7), per modulation band (8,))`` of
        the correlations of coefficients 2..n; zeros when at most one segment is used.
    """
    n_modulation = 8
    cepstra = _cepstra(reference, distorted, threshold, add_noise, n_cepstral_coef)
    if cepstra is None:
        logger.warning("melcor9: signal below threshold, outputs set to 0")
        return 0.0, 0.0, 0.0, np.zeros(n_modulation)
    filters, nfir = _modulation_filters(segment_size)
    nsamp = cepstra[0].shape[1]
    covariance = melcor9_crosscovmatrix(
        filters, n_modulation, n_cepstral_coef, nsamp, nfir, *cepstra
    )
    useful = covariance[:, 1:]
    per_coefficient = n_cepstral_coef - 1
    average = float(np.sum(useful) / (n_modulation * per_coefficient))
    low = float(np.sum(useful[:4]) / (4 * per_coefficient))
    high = float(np.sum(useful[4:8]) / (4 * per_coefficient))
    return average, low, high, np.mean(useful, axis=1)


def spectrum_diff(
    reference_sl: np.ndarray, processed_sl: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Long-term spectrum, normalised spectrum and slope differences (Moore & Tan 2004).

    The dB SL band levels are turned into loudness-normalised linear magnitudes.

    Returns:
        ``(dloud, dnorm, dslope)``, each ``[sum |diff|, bands * std(diff), max |diff|]``.
    """
    nbands = reference_sl.shape[0]
    reference_magnitude = 10 ** (reference_sl / 20)
    processed_magnitude = 10 ** (processed_sl / 20)
    reference_magnitude = reference_magnitude / np.sum(reference_magnitude)
    processed_magnitude = processed_magnitude / np.sum(processed_magnitude)

    def stats(difference: np.ndarray) -> np.ndarray:
        return np.array(
            [np.sum(np.abs(difference)), nbands * np.std(difference), np.max(np.abs(difference))]
        )

    difference = reference_magnitude - processed_magnitude
    normalised = difference / (reference_magnitude + processed_magnitude)
    slope = np.diff(reference_magnitude) - np.diff(processed_magnitude)
    return stats(difference), stats(normalised), stats(slope)


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _lag_products(padded_x, seg_y, length, lagged):
    """``lagged[j] = sum_i padded_x[i + j] * seg_y[i]`` over ``i < length``.

    Each lag is one dot product; reassociation lets it run as a SIMD reduction
    (differences from sequential summation are rounding-level, ~1e-16 relative).
    """
    for j in range(lagged.shape[0]):
        total = 0.0
        for i in range(length):
            total += padded_x[i + j] * seg_y[i]
        lagged[j] = total


@njit(cache=True, nogil=True)
def _segment_covariance_kernel(
    x, y, nwin, maxlag, window, full_weights, half_weights, full_norm, half_norm, cov, ms_x, ms_y
):
    """Max normalised cross-covariance over +/- maxlag of windowed segments, per tile.

    The reference segment sits in a zero-padded buffer so that every lag is a
    contiguous dot product with the processed segment.
    """
    n_bands = x.shape[0]
    nseg = cov.shape[1]
    half = nwin // 2
    n_lags = 2 * maxlag + 1
    padded_x = np.zeros(nwin + 2 * maxlag)
    seg_y = np.empty(nwin)
    lagged = np.empty(n_lags)
    for band in range(n_bands):
        for seg in range(nseg):
            if seg == 0:
                start, length, w_offset, weights, norm = 0, half, half, half_weights, half_norm
            elif seg == nseg - 1:
                start, length, w_offset = seg * half, half, 0
                weights, norm = half_weights, half_norm
            else:
                start, length, w_offset = seg * half, nwin, 0
                weights, norm = full_weights, full_norm
            mean_x = 0.0
            mean_y = 0.0
            for i in range(length):
                w = window[w_offset + i]
                padded_x[maxlag + i] = x[band, start + i] * w
                seg_y[i] = y[band, start + i] * w
                mean_x += padded_x[maxlag + i]
                mean_y += seg_y[i]
            mean_x /= length
            mean_y /= length
            energy_x = 0.0
            energy_y = 0.0
            for i in range(length):
                padded_x[maxlag + i] -= mean_x
                seg_y[i] -= mean_y
                energy_x += padded_x[maxlag + i] ** 2
                energy_y += seg_y[i] ** 2
            for i in range(length, nwin):
                padded_x[maxlag + i] = 0.0
            energy_x *= norm
            energy_y *= norm
            _lag_products(padded_x, seg_y, length, lagged)
            peak = 0.0
            for j in range(n_lags):
                peak = max(peak, abs(lagged[j] * weights[j]))
            if energy_x > 1e-30 and energy_y > 1e-30:
                cov[band, seg] = min(max(peak / math.sqrt(energy_x * energy_y), 0.0), 1.0)
            else:
                cov[band, seg] = 0.0
            ms_x[band, seg] = 2.0 * energy_x
            ms_y[band, seg] = 2.0 * energy_y


def _inverse_autocorrelation(window: np.ndarray, maxlag: int) -> np.ndarray:
    """1 / autocorrelation of ``window`` at lags -maxlag..maxlag."""
    if len(window) - 1 - maxlag < 0:
        raise ValueError("bm_covary: segment size too small for the 1 ms lag range")
    full = np.correlate(window, window, "full")
    centre = len(window) - 1
    return 1.0 / full[centre - maxlag : centre + maxlag + 1]


def bm_covary(
    reference_basilar_membrane: np.ndarray,
    processed_basilar_membrane: np.ndarray,
    segment_size: float,
    sample_rate: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Short-time normalised cross-covariance of BM motion, max over +/- 1 ms lags.

    Segments of ``segment_size`` ms (even length, Hann window, 50 % overlap, half
    windows at the ends) are made zero-mean; lag products are unbiased by the window
    autocorrelation.

    Returns:
        ``(cross_covariance, reference_ms, processed_ms)``, each ``(bands, nseg)``;
        covariances in [0, 1], mean squares doubled to match envelopes in dB SL.
    """
    maxlag = int(np.around(1.0 * 0.001 * sample_rate))
    nwin = _even_window_length(segment_size, sample_rate)
    half = nwin // 2
    window = np.hanning(nwin)
    full_weights = _inverse_autocorrelation(window, maxlag)
    half_weights = _inverse_autocorrelation(window[half:], maxlag)
    x = np.ascontiguousarray(reference_basilar_membrane, dtype=float)
    y = np.ascontiguousarray(processed_basilar_membrane, dtype=float)
    nseg = _segment_count(x.shape[1], nwin)
    cov = np.empty((x.shape[0], nseg))
    ms_x = np.empty_like(cov)
    ms_y = np.empty_like(cov)
    full_norm = 1.0 / np.sum(window**2)
    half_norm = 1.0 / np.sum(window[half:] ** 2)

    def run_share(bands: range) -> None:
        rows = slice(bands.start, None, bands.step)
        _segment_covariance_kernel(
            x[rows],
            y[rows],
            nwin,
            maxlag,
            window,
            full_weights,
            half_weights,
            full_norm,
            half_norm,
            cov[rows],
            ms_x[rows],
            ms_y[rows],
        )

    _in_threads(run_share, x.shape[0])
    return cov, ms_x, ms_y


def ave_covary2(
    signal_cross_covariance: np.ndarray,
    reference_signal_mean_square: np.ndarray,
    threshold_db: float,
    lp_filter_order: np.ndarray | None = None,
    freq_cutoff: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """Average BM cross-covariance over the tiles above threshold.

    Tiles (band, segment) count when the segment's band-averaged loudness and the
    tile's own level exceed ``threshold_db`` (dB SL). Also returns six averages
    weighted by low-pass roll-offs that model the loss of IHC synchrony at high
    frequencies (Johnson 1980): orders [1, 3, 5, 5, 5, 5] at 1.5-4 kHz.

    Returns:
        ``(average_covariance, ihc_sync_covariance (6,))``; zeros when at most one
        segment is above threshold.
    """
    n_channels = signal_cross_covariance.shape[0]
    cf = center_frequency(n_channels)
    order = np.array([1, 3, 5, 5, 5, 5]) if lp_filter_order is None else np.asarray(lp_filter_order)
    cutoff = (
        1000 * np.array([1.5, 2.0, 2.5, 3.0, 3.5, 4.0])
        if freq_cutoff is None
        else np.asarray(freq_cutoff)
    )
    cutoff_power = (cutoff ** (2 * order))[:, np.newaxis]
    sync_weight = np.sqrt(
        cutoff_power / (cutoff_power + cf[np.newaxis, :] ** (2 * order[:, np.newaxis]))
    )

    signal_db = np.sqrt(reference_signal_mean_square)
    index = _segments_above_threshold(signal_db, threshold_db)
    if len(index) <= 1:
        logger.warning("ave_covary2: signal below threshold, outputs set to 0")
        return 0.0, np.zeros(len(order))
    covariance = signal_cross_covariance[:, index]
    tile_on = signal_db[:, index] > threshold_db
    n_tiles = np.sum(tile_on)
    average = float(np.sum(covariance[tile_on]) / n_tiles) if n_tiles >= 1 else 0.0
    tiles_per_band = np.sum(tile_on, axis=1)
    covariance_per_band = np.sum(np.where(tile_on, covariance, 0.0), axis=1)
    ihc_sync = (sync_weight @ covariance_per_band) / (sync_weight @ tiles_per_band)
    return average, ihc_sync
