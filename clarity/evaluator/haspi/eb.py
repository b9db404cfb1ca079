"""Kates's auditory model and the feature stages of HASQI v2 and HAAQI.

The ear model is the one of J. M. Kates (2013), "An auditory model for intelligibility
and quality predictions", Proc. Mtgs. Acoust. 19:050184, as used by HASQI v2 (Kates &
Arehart 2014, "The Hearing-Aid Speech Quality Index (HASQI) version 2", J. Audio Eng.
Soc. 62(3):99-117) and HAAQI (Kates & Arehart 2016, "The Hearing-Aid Audio Quality
Index (HAAQI)", IEEE/ACM Trans. Audio Speech Lang. Process. 24(2):354-365).

:func:`ear_model` is nothing but the public stages called in the order of the model,
each on all the bands of a group (steps 3-8 run on ``_BANDS_PER_GROUP`` bands at a time,
steps 9-11 on all bands):

1. :func:`resample_24khz`, :func:`input_align` and (``itype == 1``) NAL-R;
2. :func:`middle_ear`;
3. control path: :func:`gammatone_basilar_membrane` with the widest (fully damaged)
   filters, then :func:`bandwidth_adjust` widens each band with its control level;
4. :func:`gammatone_basilar_membrane`: envelope and basilar-membrane (BM) motion;
5. :func:`env_compress_basilar_membrane`: outer-hair-cell (OHC) compression;
6. :func:`envelope_align`: processed envelope and BM aligned to the reference;
7. :func:`envelope_sl`: envelope in dB above the listener's threshold (dB SL);
8. :func:`inner_hair_cell_adaptation`: rapid and short-term IHC adaptation;
9. :func:`basilar_membrane_add_noise`: threshold noise on the BM motion;
10. :func:`group_delay_compensate`: all bands brought to the same filter-bank delay;
11. :func:`convert_rms_to_sl`: long-term band levels in dB SL.

Shapes: band signals are ``(bands, samples)``, band parameters ``(bands,)``; the stages
also take one band as in pyClarity (``(samples,)`` with scalar parameters). Recursions
(gammatone, OHC gain smoothing, IHC adaptation, BM segment covariances) are numba
kernels whose loop over bands runs in ``numba.prange`` threads (the count is numba's,
``numba.get_num_threads()``); transcendental functions run in NumPy one band row at a
time so that the row stays in cache. The threshold noise is drawn from NumPy's legacy
global generator in the official order (reference bands, then processed bands, then
the cepstral draws of :func:`melcor9`), with the bit-exact fast sampler of
:mod:`clarity.utils.legacy_random`. The numbers equal those of pyClarity 0.9.0.

Levels: a signal with RMS 1 is ``level1`` dB SPL.
"""

from __future__ import annotations

import itertools
import logging
import math
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import scipy.fft
from numba import njit, prange
from scipy.signal import butter, cheby2, firwin, group_delay, lfilter, resample_poly

from clarity.enhancer.nalr import NALR
from clarity.utils import fast_math, legacy_random
from clarity.utils.audiogram import Audiogram

logger = logging.getLogger(__name__)

AUDIOMETRIC_FREQUENCIES = np.array([250, 500, 1000, 2000, 4000, 6000])
MODEL_SAMPLE_RATE = 24000.0
_EAR_Q = 9.26449  # Glasberg & Moore ERB parameters
_MIN_BW = 24.7
_SMALL = 1e-30
# ear_model runs its band stages on this many bands at a time: the arrays of a group
# ((16, samples), 31 MB for 10 s, below glibc's 32 MB limit for heap blocks) are reused by
# the allocator instead of being mapped and faulted in anew for every stage (measured on
# 10 s: 8-16 bands are fastest, all 32 at once about 30 % slower)
_BANDS_PER_GROUP = 16


def _as_bands(signal: np.ndarray) -> np.ndarray:
    """A ``(samples,)`` signal as one band ``(1, samples)``; ``(bands, samples)`` as is."""
    return np.atleast_2d(np.asarray(signal, dtype=float))


def _per_band(value: float | np.ndarray, n_bands: int) -> np.ndarray:
    """A scalar or ``(bands,)`` parameter as a float ``(bands,)`` array."""
    return np.ascontiguousarray(np.broadcast_to(np.asarray(value, dtype=float), (n_bands,)))


def _rms(signal: np.ndarray) -> float:
    """RMS of a ``(samples,)`` signal."""
    return float(np.sqrt(np.mean(signal**2)))


def _band_rms(signals: np.ndarray) -> np.ndarray:
    """RMS of each row of ``(bands, samples)``, ``(bands,)`` (row by row, in cache)."""
    return np.array([_rms(row) for row in signals])


def _fft_workers() -> int:
    """Threads for ``scipy.fft``: numba's thread count, the one number of the process."""
    return numba.get_num_threads()


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


def middle_ear(reference: np.ndarray, freq_sample: float) -> np.ndarray:
    """Middle-ear filter (Kates 2013): 1-pole low-pass at 5 kHz then 2-pole high-pass at 350 Hz.

    A rough match to the equal-loudness contour at threshold. ``reference`` is ``(samples,)``
    (or ``(bands, samples)``, filtered along time); returns the same shape.
    """
    b_low, a_low = butter(1, 5000 / (0.5 * freq_sample))
    b_high, a_high = butter(2, 350 / (0.5 * freq_sample), "high")
    return lfilter(b_high, a_high, lfilter(b_low, a_low, reference))


# --------------------------------------------------------------------------------------
# Gammatone filter bank
# --------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def gammatone_bandwidth_demodulation(
    npts: int,
    tpt: float,
    center_freq: float,
    center_freq_cos: np.ndarray,
    center_freq_sin: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Carriers ``cos(n w)`` and ``-sin(n w)``, ``w = tpt * center_freq`` rad/sample.

    Made by rotating the phasor ``(cos, sin)`` one step of ``w`` per sample (a digital
    sinusoid generator), which fills ``center_freq_cos`` and ``center_freq_sin``
    ``(npts,)`` in place.

    Returns:
        ``(center_freq_sin, center_freq_cos)``.
    """
    cos_step = math.cos(tpt * center_freq)
    sin_step = math.sin(tpt * center_freq)
    cos_n, sin_n = 1.0, 0.0
    center_freq_cos[0] = cos_n
    center_freq_sin[0] = sin_n
    for n in range(1, npts):
        cos_n, sin_n = cos_n * cos_step + sin_n * sin_step, sin_n * cos_step - cos_n * sin_step
        center_freq_cos[n] = cos_n
        center_freq_sin[n] = sin_n
    return center_freq_sin, center_freq_cos


def _gammatone_poles(
    bandwidth: np.ndarray, center_freq: np.ndarray, freq_sample: float, ear_q: float, min_bw: float
) -> np.ndarray:
    """Pole radius ``a = exp(-2 pi 1.019 b ERB(f_c) / f_s)`` of each band, ``(bands,)``.

    ``b`` is the bandwidth re the Glasberg-Moore ERB ``min_bw + f_c / ear_q``. The
    product is formed in Kates's order: the four-fold pole makes the filter output
    sensitive to the last bit of ``a``.
    """
    erb = min_bw + center_freq / ear_q
    tpt = 2 * np.pi / freq_sample
    return np.exp(-(bandwidth * tpt * erb * 1.019))


@njit(cache=True, nogil=True)
def _gammatone_one_signal(signal, cos_cf, sin_cf, pole, envelope, motion):
    """One band of one signal: the Cooke (1993) 4th-order gammatone, baseband form.

    The signal is demodulated by the carriers (``u = x cos``, ``v = x sin``), each part
    low-pass filtered by ``H(z) = (1 + 4a z^-1 + 4a^2 z^-2) / (1 - a z^-1)^4`` in
    transposed direct form II (the recursion of ``scipy.signal.lfilter``), giving the
    envelope ``g |u + i v|`` and BM motion ``g (u cos + v sin)``; the gain ``g`` makes
    the filter's DC gain 2 (the carriers halve the band signal).
    """
    a1 = 4.0 * pole  # numerator 1 + a1 z^-1 + a5 z^-2; denominator 1 - a1 - a2 - a3 - a4
    a2 = -6.0 * pole * pole
    a3 = 4.0 * pole * pole * pole
    a4 = -pole * pole * pole * pole
    a5 = 4.0 * pole * pole
    gain = 2.0 * (1 - a1 - a2 - a3 - a4) / (1 + a1 + a5)
    d1, d2, d3, d4 = -a1, -a2, -a3, -a4  # lfilter's denominator a[1:]
    re1 = re2 = re3 = re4 = 0.0  # filter states, real part
    im1 = im2 = im3 = im4 = 0.0  # imaginary part
    for n in range(signal.shape[0]):
        u = signal[n] * cos_cf[n]
        v = signal[n] * sin_cf[n]
        real = u + re1
        re1 = a1 * u + re2 - d1 * real
        re2 = a5 * u + re3 - d2 * real
        re3 = re4 - d3 * real
        re4 = -d4 * real
        imag = v + im1
        im1 = a1 * v + im2 - d1 * imag
        im2 = a5 * v + im3 - d2 * imag
        im3 = im4 - d3 * imag
        im4 = -d4 * imag
        envelope[n] = gain * math.sqrt(real * real + imag * imag)
        motion[n] = gain * (real * cos_cf[n] + imag * sin_cf[n])


@njit(cache=True, parallel=True)
def _gammatone_bands(
    reference,
    processed,
    tpt,
    center_freq,
    reference_pole,
    processed_pole,
    reference_envelope,
    reference_bm,
    processed_envelope,
    processed_bm,
):
    """Both signals through every band into the four ``(bands, samples)`` outputs; bands
    run in parallel, each demodulated once for both signals."""
    npts = reference.shape[0]
    for band in prange(center_freq.shape[0]):
        cos_cf = np.empty(npts)
        sin_cf = np.empty(npts)
        gammatone_bandwidth_demodulation(npts, tpt, center_freq[band], cos_cf, sin_cf)
        _gammatone_one_signal(
            reference, cos_cf, sin_cf, reference_pole[band], reference_envelope[band],
            reference_bm[band],
        )  # fmt: skip
        _gammatone_one_signal(
            processed, cos_cf, sin_cf, processed_pole[band], processed_envelope[band],
            processed_bm[band],
        )  # fmt: skip


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
    """4th-order gammatone filters of two signals (Cooke 1993; Ma et al. 2007).

    Each band demodulates the signal by its centre frequency
    (:func:`gammatone_bandwidth_demodulation`) and low-pass filters the complex baseband
    signal with a four-fold pole of radius ``exp(-2 pi 1.019 b ERB(f_c) / f_s)``, ``b`` the
    bandwidth re the normal ERB (Kates 2013, sec. II.B).

    Args:
        reference, processed: signals ``(samples,)``; cut to the shorter length.
        reference_bandwidth, processed_bandwidth: bandwidths re normal ERB, scalars or
            ``(bands,)``.
        freq_sample: sampling rate in Hz.
        center_freq: centre frequency in Hz, scalar or ``(bands,)``.
        ear_q, min_bandwidth: Glasberg-Moore ERB parameters (ERB = min_bw + f / ear_q).

    Returns:
        ``(reference_envelope, reference_bm, processed_envelope, processed_bm)``, each
        ``(samples,)`` for a scalar ``center_freq``, else ``(bands, samples)``.
    """
    n_common = min(len(reference), len(processed))
    reference = np.ascontiguousarray(reference[:n_common], dtype=float)
    processed = np.ascontiguousarray(processed[:n_common], dtype=float)
    cf = np.atleast_1d(np.asarray(center_freq, dtype=float))
    n_bands = len(cf)
    poles = [
        _gammatone_poles(_per_band(bandwidth, n_bands), cf, freq_sample, ear_q, min_bandwidth)
        for bandwidth in (reference_bandwidth, processed_bandwidth)
    ]
    # four arrays, not one (4, bands, samples): each is small enough for the allocator to
    # reuse instead of mapping (and faulting in) new pages at every call
    outputs = tuple(np.empty((n_bands, n_common)) for _ in range(4))
    _gammatone_bands(reference, processed, 2 * np.pi / freq_sample, cf, *poles, *outputs)
    if np.ndim(center_freq) == 0:
        return tuple(output[0] for output in outputs)
    return outputs


def bandwidth_adjust(
    control: np.ndarray,
    bandwidth_min: float | np.ndarray,
    bandwidth_max: float | np.ndarray,
    level1: float,
) -> float | np.ndarray:
    """Filter bandwidth widened with the control-path level (Kates 2013, sec. II.B).

    ``L = 20 log10(RMS(control)) + level1`` dB SPL; the bandwidth is ``bandwidth_min``
    below 50 dB SPL, ``bandwidth_max`` above 100 dB SPL and linear in ``L`` between:
    ``b = b_min + (L - 50) / 50 (b_max - b_min)``.

    Args:
        control: control envelope ``(samples,)``, or ``(bands, samples)`` with
            ``(bands,)`` bandwidths.
        bandwidth_min: bandwidth for the loss (or normal hearing), re normal ERB.
        bandwidth_max: bandwidth at maximum OHC damage.
        level1: dB SPL of RMS 1.

    Returns:
        A float for one band, else ``(bands,)``.
    """
    rms = _band_rms(_as_bands(control))
    bandwidth_min = np.asarray(bandwidth_min, dtype=float)
    bandwidth_max = np.asarray(bandwidth_max, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):  # silence: -inf dB, kept at minimum
        control_db = 20 * np.log10(rms) + level1
        widened = bandwidth_min + ((control_db - 50) / 50) * (bandwidth_max - bandwidth_min)
    bandwidth = np.where(
        control_db < 50, bandwidth_min, np.where(control_db > 100, bandwidth_max, widened)
    )
    return float(bandwidth[0]) if np.ndim(control) == 1 else bandwidth


# --------------------------------------------------------------------------------------
# Outer hair cells: compression
# --------------------------------------------------------------------------------------


@njit(cache=True, parallel=True, error_model="numpy")
def _compression_gain(control, small, level1, threshold_low, threshold_high, slope, attn_ohc, out):
    """Linear gain ``10^(G/20)`` of the OHC compressor for each sample of ``control``.

    ``L = clip(level1 + 20 log10(max(control, small)), low, high)`` dB SPL and
    ``G = -attn - (L - low) slope`` dB. ``control, out (bands, samples)``; band parameters
    ``(bands,)``; log10 and exp of `clarity.utils.fast_math` (vectorised, within 2 ulp).
    """
    db_to_exponent = math.log(10) / 20
    for band in prange(control.shape[0]):
        low = threshold_low[band]
        for n in range(control.shape[1]):
            log_control = fast_math.log10(max(control[band, n], small))
            level = max(min(level1 + 20 * log_control, threshold_high), low)
            gain_db = -attn_ohc[band] - (level - low) * slope[band]
            out[band, n] = fast_math.exp(gain_db * db_to_exponent)


@njit(cache=True, nogil=True)
def _smooth_gain_one_band(gain, b0, b1, a1, envelope, motion, out_envelope, out_motion):
    """First-order low-pass of one band's ``gain`` (lfilter's transposed direct form II:
    ``y[n] = b0 g[n] + z``, ``z = b1 g[n] - a1 y[n]``) applied to its envelope and motion."""
    state = 0.0
    for n in range(gain.shape[0]):
        smoothed = b0 * gain[n] + state
        state = b1 * gain[n] - a1 * smoothed
        out_envelope[n] = smoothed * envelope[n]
        out_motion[n] = smoothed * motion[n]


@njit(cache=True, parallel=True)
def _smooth_gain_and_apply(gain, b0, b1, a1, envelope, motion, out_envelope, out_motion):
    """:func:`_smooth_gain_one_band` for every band ``(bands, samples)``, in parallel."""
    for band in prange(gain.shape[0]):
        _smooth_gain_one_band(
            gain[band],
            b0,
            b1,
            a1,
            envelope[band],
            motion[band],
            out_envelope[band],
            out_motion[band],
        )


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
    """OHC compression of the envelope and BM motion, driven by the control envelope.

    With the control level ``L = clip(level1 + 20 log10(max(control, small)),
    threshold_low, threshold_high)`` dB SPL the gain is
    ``G = -attn_ohc - (L - threshold_low) (1 - 1 / compression_ratio)`` dB: linear
    below the lower knee, ``compression_ratio``:1 up to the upper knee, linear above
    (Kates 2013, sec. II.C). ``10^(G/20)`` is smoothed by an 800 Hz first-order
    Butterworth low-pass (Zhang et al. 2001) and multiplies both signals.

    Args:
        envsig, bm, control: envelope, BM motion and control envelope, ``(samples,)``
            with scalar parameters or ``(bands, samples)`` with ``(bands,)`` parameters.
        attn_ohc: OHC attenuation (dB).
        threshold_low: lower compression knee (dB SPL).
        compression_ratio: compression ratio between the knees.
        fsamp: sampling rate in Hz.
        level1: dB SPL of RMS 1.
        small: floor of the control envelope.
        threshold_high: upper compression knee (dB SPL).

    Returns:
        ``(compressed_envelope, compressed_bm)``, shaped as ``envsig``.
    """
    envelope = np.ascontiguousarray(_as_bands(envsig))
    motion = np.ascontiguousarray(_as_bands(bm))
    n_bands = envelope.shape[0]
    gain = np.empty_like(envelope)
    _compression_gain(
        np.ascontiguousarray(_as_bands(control), dtype=float),
        float(small),
        float(level1),
        _per_band(threshold_low, n_bands),
        float(threshold_high),
        1 - 1 / _per_band(compression_ratio, n_bands),
        _per_band(attn_ohc, n_bands),
        gain,
    )
    b, a = butter(1, 800 / (0.5 * fsamp))
    compressed_envelope = np.empty_like(envelope)
    compressed_bm = np.empty_like(motion)
    _smooth_gain_and_apply(
        gain,
        float(b[0]),
        float(b[1]),
        float(a[1]),
        envelope,
        motion,
        compressed_envelope,
        compressed_bm,
    )
    if np.ndim(envsig) == 1:
        return compressed_envelope[0], compressed_bm[0]
    return compressed_envelope, compressed_bm


# --------------------------------------------------------------------------------------
# Alignment, dB SL, inner hair cells
# --------------------------------------------------------------------------------------


def _lagged_correlation(
    first: np.ndarray, second: np.ndarray, max_lag: int, workers: int
) -> np.ndarray:
    """``c[..., k + max_lag] = sum_n first[..., n + k] * second[..., n]`` for |k| <= max_lag.

    ``first`` and ``second`` are ``(..., npts)`` (time last, zero outside). A lag range
    much shorter than the signals is done block-wise with FFTs of about 16 lag ranges,
    which stay in cache; otherwise one circular correlation covers it. ``workers``: threads
    of ``scipy.fft``.

    Returns:
        ``(..., 2 max_lag + 1)`` correlations for lags ``-max_lag .. max_lag``.
    """
    npts = first.shape[-1]
    single = scipy.fft.next_fast_len(npts + max_lag, real=True)
    block_size = 1 << int(np.ceil(np.log2(16 * max(max_lag, 1))))
    if single <= block_size:
        return _circular_correlation(first, second, max_lag, single, workers)
    return _blocked_correlation(first, second, max_lag, block_size, workers)


def _zero_padded(signals: np.ndarray, size: int) -> np.ndarray:
    """``signals (..., n)`` followed by zeros up to ``size`` samples."""
    padded = np.zeros((*signals.shape[:-1], size))
    padded[..., : signals.shape[-1]] = signals
    return padded


def _circular_correlation(
    first: np.ndarray, second: np.ndarray, max_lag: int, size: int, workers: int
) -> np.ndarray:
    """:func:`_lagged_correlation` by one circular FFT correlation, ``size >= n + max_lag``."""
    spectrum = scipy.fft.rfft(_zero_padded(first, size), axis=-1, workers=workers)
    spectrum *= np.conj(scipy.fft.rfft(_zero_padded(second, size), axis=-1, workers=workers))
    circular = scipy.fft.irfft(spectrum, size, axis=-1, workers=workers)
    return np.concatenate((circular[..., size - max_lag :], circular[..., : max_lag + 1]), axis=-1)


def _blocked_correlation(
    first: np.ndarray, second: np.ndarray, max_lag: int, size: int, workers: int
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
    spectrum = scipy.fft.rfft(reach[..., ::block, :], axis=-1, workers=workers)
    blocks = np.zeros((*rows, n_blocks, size))
    n_full = npts // block
    blocks[..., :n_full, :block] = second[..., : n_full * block].reshape(*rows, n_full, block)
    if n_full < n_blocks:
        blocks[..., n_full, : npts - n_full * block] = second[..., n_full * block :]
    second_spectrum = scipy.fft.rfft(blocks, axis=-1, workers=workers)
    np.conjugate(second_spectrum, out=second_spectrum)
    spectrum *= second_spectrum
    summed = spectrum.sum(axis=-2)
    return scipy.fft.irfft(summed, size, axis=-1, workers=workers)[..., : span + 1]


def _delay_rows(signals: np.ndarray, delays: np.ndarray) -> np.ndarray:
    """Each row of ``signals (bands, n)`` shifted by ``delays[row]`` samples (> 0: later),
    zero-filled, same length, as a new array."""
    out = np.empty_like(signals)
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
    correlation = _lagged_correlation(a[np.newaxis], b[np.newaxis], n_common - 1, _fft_workers())[0]
    lag = int(np.argmax(np.abs(correlation))) - (n_common - 1)
    delay = int(np.rint(-lag - 2 * MODEL_SAMPLE_RATE / 1000.0))
    processed = _delay_rows(processed[np.newaxis], np.array([-delay]))[0]

    magnitude = np.abs(reference)
    above = np.flatnonzero(magnitude > 0.001 * np.max(magnitude))
    if len(above) == 0:
        return reference, processed
    first, last = above[0], min(above[-1], len(processed))
    return reference[first : last + 1], processed[first : last + 1]


def envelope_align(
    reference: np.ndarray, output: np.ndarray, freq_sample: int = 24000, corr_range: int = 100
) -> np.ndarray:
    """Shift ``output`` to the lag of its largest cross-correlation with ``reference``.

    Lags within ``+/- corr_range`` ms are searched (Kates 2013: the processed signal may
    be delayed by the hearing aid); the shifted signal is zero-filled. Works on
    ``(samples,)`` or row-wise on ``(bands, samples)`` (each band its own lag).

    Returns:
        The aligned ``output``, same shape.
    """
    one_d = np.ndim(output) == 1
    reference = _as_bands(reference)
    output = _as_bands(output)
    max_lag = min(int(np.rint(0.001 * corr_range * freq_sample)), reference.shape[-1])

    def band_correlation(row: int) -> np.ndarray:
        return _lagged_correlation(reference[row : row + 1], output[row : row + 1], max_lag, 1)

    # band by band, so that the FFT blocks of one band stay in cache; bands on numba's
    # threads (scipy.fft and NumPy release the GIL)
    with ThreadPoolExecutor(_fft_workers()) as pool:
        correlation = np.concatenate(list(pool.map(band_correlation, range(len(reference)))))
    # searched lags are -max_lag+1 .. max_lag; the first maximum wins
    delay = max_lag - np.argmax(correlation[:, 1:], axis=-1) - 1
    aligned = _delay_rows(output, -delay)
    return aligned[0] if one_d else aligned


@njit(cache=True, parallel=True, error_model="numpy")
def _sl_from_envelope(envelope, motion, offset_db, small, level, out_motion):
    """``level = max(offset_db + 20 log10(E + small), 0)`` and
    ``out_motion = motion (level + small) / (E + small)``; ``(bands, samples)`` arrays,
    ``offset_db (bands,)``, bands in parallel; log10 of `clarity.utils.fast_math`."""
    for band in prange(envelope.shape[0]):
        offset = offset_db[band]
        for n in range(envelope.shape[1]):
            floored = envelope[band, n] + small
            sensation = max(offset + 20 * fast_math.log10(floored), 0.0)
            level[band, n] = sensation
            out_motion[band, n] = (sensation + small) / floored * motion[band, n]


def envelope_sl(
    reference: np.ndarray,
    basilar_membrane: np.ndarray,
    attenuated_ihc: float | np.ndarray,
    level1: float,
    small: float = _SMALL,
) -> tuple[np.ndarray, np.ndarray]:
    """Compressed envelope to dB SL; BM motion rescaled to that envelope (Kates 2013).

    ``E_SL = max(level1 - attn_ihc + 20 log10(E + small), 0)`` dB SL and the BM motion is
    multiplied by ``(E_SL + small) / (E + small)``, so that its envelope is in dB SL too.

    Args:
        reference: compressed envelope, ``(samples,)`` or ``(bands, samples)``.
        basilar_membrane: compressed BM motion, same shape.
        attenuated_ihc: IHC attenuation (dB), scalar or ``(bands,)``.
        level1: dB SPL of RMS 1.
        small: floor added to the envelope.

    Returns:
        ``(envelope_db_sl, basilar_membrane)``, shaped as ``reference``.
    """
    envelope = np.ascontiguousarray(_as_bands(reference))
    motion = np.ascontiguousarray(_as_bands(basilar_membrane))
    level = np.empty_like(envelope)
    scaled_motion = np.empty_like(motion)
    _sl_from_envelope(
        envelope,
        motion,
        level1 - _per_band(attenuated_ihc, envelope.shape[0]),
        float(small),
        level,
        scaled_motion,
    )
    if np.ndim(reference) == 1:
        return level[0], scaled_motion[0]
    return level, scaled_motion


@njit(cache=True, nogil=True)
def _ihc_adaptation_one_band(level_db, motion, delta, freq_sample, out_db, out_motion):
    """IHC adaptation of one band's envelope ``level_db (samples,)``, dB SL.

    Equivalent circuit (Kates 2013, sec. II.D): a source ``v0`` (the envelope in dB SL)
    drives ``r1`` into node 1, with ``c1`` and ``r2`` to node 2 and ``c2 || r3`` to ground;
    the time constants are 2 ms (rapid) and 60 ms (short-term adaptation) and
    ``delta = 1 / r1`` the overshoot. Each sample solves the backward-difference node
    equations ``A [v1, v2]' = [r2 v0 + k1 v1, k2 v2]'`` for the new node voltages; the
    output is ``(v0 - v1) / r1`` floored at 0, and the BM motion gets the same gain.
    """
    delta = max(delta, 1.0001)
    tau1 = 0.001 * 2
    tau2 = 0.001 * 60
    r1 = 1 / delta
    r2 = 0.5 * (1 - r1)
    r3 = r2
    c1 = tau1 * (r1 + r2) / (r1 * r2)
    c2 = tau2 / ((r1 + r2) * r3)
    a11 = r1 + r2 + r1 * r2 * (c1 / (1 / freq_sample))
    a12 = -r1
    a21 = -r3
    a22 = r2 + r3 + r2 * r3 * (c2 / (1 / freq_sample))
    inverse_det = 1 / ((a11 * a22) - (a21 * a12))
    k1 = r1 * r2 * (c1 / (1 / freq_sample))
    k2 = r2 * r3 * (c2 / (1 / freq_sample))
    v1 = 0.0
    v2 = 0.0
    for n in range(level_db.shape[0]):
        v0 = level_db[n]
        b1 = v0 * r2 + k1 * v1
        b2 = k2 * v2
        v1 = inverse_det * (a22 * b1 - a12 * b2)
        v2 = inverse_det * (-a21 * b1 + a11 * b2)
        adapted = max((v0 - v1) * (1 / r1), 0.0)
        out_db[n] = adapted
        out_motion[n] = ((adapted + _SMALL) / (v0 + _SMALL)) * motion[n]


@njit(cache=True, parallel=True)
def _ihc_adaptation_bands(level_db, motion, delta, freq_sample, out_db, out_motion):
    """:func:`_ihc_adaptation_one_band` for every band ``(bands, samples)``, in parallel."""
    for band in prange(level_db.shape[0]):
        _ihc_adaptation_one_band(
            level_db[band], motion[band], delta, freq_sample, out_db[band], out_motion[band]
        )


def inner_hair_cell_adaptation(
    reference_db: np.ndarray,
    reference_basilar_membrane: np.ndarray,
    delta: float,
    freq_sample: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Rapid and short-term IHC adaptation of an envelope in dB SL (Kates 2013, sec. II.D).

    An RC circuit mapped to first-order backward differences gives an onset overshoot of
    ``delta`` times the steady state (2 ms and 60 ms time constants); the BM motion is
    multiplied by the same gain ``(out + small) / (in + small)``.

    Args:
        reference_db: envelope in dB SL, ``(samples,)`` or ``(bands, samples)``.
        reference_basilar_membrane: BM motion, same shape.
        delta: overshoot factor (at least 1.0001).
        freq_sample: sampling rate in Hz.

    Returns:
        ``(adapted_db, adapted_bm)``, shaped as ``reference_db``.
    """
    level = np.ascontiguousarray(_as_bands(reference_db))
    motion = np.ascontiguousarray(_as_bands(reference_basilar_membrane))
    out_db = np.empty_like(level)
    out_motion = np.empty_like(motion)
    _ihc_adaptation_bands(level, motion, float(delta), float(freq_sample), out_db, out_motion)
    if np.ndim(reference_db) == 1:
        return out_db[0], out_motion[0]
    return out_db, out_motion


@njit(cache=True, parallel=True)
def _add_scaled_rows(signals, noise, scale):
    """``noise <- signals + scale * noise`` for ``(bands, samples)`` arrays, bands in parallel."""
    for band in prange(signals.shape[0]):
        for n in range(signals.shape[1]):
            noise[band, n] = signals[band, n] + scale * noise[band, n]


def basilar_membrane_add_noise(
    reference: np.ndarray, threshold: float, level1: float
) -> np.ndarray:
    """BM motion plus Gaussian noise ``threshold`` dB re auditory threshold (Kates 2013).

    The noise, RMS ``10^((threshold - level1) / 20)``, is drawn from NumPy's legacy global
    generator (``np.random.standard_normal(reference.shape)``), so seeding ``np.random``
    reproduces it. ``reference`` is ``(samples,)`` or ``(bands, samples)``.
    """
    scale = 10 ** ((threshold - level1) / 20)
    noise = legacy_random.standard_normal(np.shape(reference))
    _add_scaled_rows(
        np.ascontiguousarray(_as_bands(reference)), noise.reshape(-1, noise.shape[-1]), scale
    )
    return noise


def _group_delays(
    bandwidths: np.ndarray,
    center_freq: np.ndarray,
    freq_sample: float,
    ear_q: float,
    min_bandwidth: float,
) -> np.ndarray:
    """Group delay at DC (samples) of each band's gammatone filter, ``(bands,)``.

    Evaluated with ``scipy.signal.group_delay``, as in Kates's code, so that rounding to
    whole samples agrees with it.
    """
    erb = min_bandwidth + np.asarray(center_freq) / ear_q
    # the product in the order of Kates's group-delay code (not that of the filter)
    poles = np.exp(-(2 * np.pi / freq_sample * 1.019 * np.asarray(bandwidths) * erb))
    delays = np.empty(len(poles))
    for band, a in enumerate(poles):
        numerator = [1.0, 4.0 * a, 4.0 * a * a]
        denominator = [1.0, -4.0 * a, 6.0 * a * a, -4.0 * a * a * a, a * a * a * a]
        delays[band] = group_delay((numerator, denominator), w=1)[1][0]
    return delays


def group_delay_compensate(
    reference: np.ndarray,
    bandwidths: np.ndarray,
    center_freq: np.ndarray,
    freq_sample: float,
    ear_q: float = _EAR_Q,
    min_bandwidth: float = _MIN_BW,
) -> np.ndarray:
    """Delay each band of ``reference (bands, samples)`` to the filter bank's largest delay.

    The group delay of each band's gammatone (``bandwidths`` re normal ERB, centre
    frequencies in Hz) is rounded to whole samples; band ``k`` is delayed by
    ``max(delay) - delay[k]`` (zero-filled), so all bands are aligned in time.
    """
    delays = np.rint(_group_delays(bandwidths, center_freq, freq_sample, ear_q, min_bandwidth))
    delays = delays.astype(int)
    return _delay_rows(np.asarray(reference, dtype=float), delays.max() - delays)


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
    """Long-term band levels in dB SL after OHC compression and IHC attenuation.

    The compression gain of :func:`env_compress_basilar_membrane` is computed from the
    control RMS and added to the envelope RMS level in dB SPL (floored at 0), less the
    IHC attenuation; the result is floored at 0 dB SL. ``reference`` and ``control`` are
    band RMS values ``(bands,)``. Note: like Kates's code, ``threshold_high`` is always 100.
    """
    threshold_high = 100
    control_db = np.clip(
        level1 + 20 * np.log10(np.maximum(control, small)), threshold_low, threshold_high
    )
    gain = -attenuated_ohc - (control_db - threshold_low) * (1 - 1 / compression_ratio)
    envelope_db = np.maximum(level1 + 20 * np.log10(np.maximum(reference, small)), 0)
    return np.maximum(envelope_db + gain - attenuated_ihc, 0)


# --------------------------------------------------------------------------------------
# Ear model
# --------------------------------------------------------------------------------------


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

    The stages of the module docstring, in that order; steps 3-8 run on groups of
    ``_BANDS_PER_GROUP`` bands at a time, each stage on all bands of the group at once.

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
    center_freq = center_frequency(nchan)
    attn_ohc_y, bandwidth_min_y, low_knee_y, ratio_y, attn_ihc_y = loss_parameters(
        hearing_loss, center_freq
    )
    reference_loss = np.zeros(len(hearing_loss)) if itype == 0 else hearing_loss
    attn_ohc_x, bandwidth_min_x, low_knee_x, ratio_x, attn_ihc_x = loss_parameters(
        reference_loss, center_freq
    )
    center_freq_control = center_frequency(nchan, shift)
    _, bandwidth_control, _, _, _ = loss_parameters(np.full(6, 100.0), center_freq_control)

    # Input: 24 kHz, bulk alignment, NAL-R for the quality reference, middle ear
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
    reference_db, reference_bm = np.empty(shape), np.empty(shape)
    processed_db, processed_bm = np.empty(shape), np.empty(shape)
    reference_bandwidth, processed_bandwidth = np.empty(nchan), np.empty(nchan)
    reference_average, processed_average = np.empty(nchan), np.empty(nchan)
    reference_control_average, processed_control_average = np.empty(nchan), np.empty(nchan)
    for first in range(0, nchan, _BANDS_PER_GROUP):
        bands = slice(first, min(first + _BANDS_PER_GROUP, nchan))

        # Control path (widest filters) sets each band's bandwidth from its level
        reference_control, _, processed_control, _ = gammatone_basilar_membrane(
            reference_mid,
            bandwidth_control[bands],
            processed_mid,
            bandwidth_control[bands],
            sample_rate,
            center_freq_control[bands],
        )
        reference_bandwidth[bands] = bandwidth_adjust(
            reference_control, bandwidth_min_x[bands], bandwidth_control[bands], level1
        )
        processed_bandwidth[bands] = bandwidth_adjust(
            processed_control, bandwidth_min_y[bands], bandwidth_control[bands], level1
        )

        # Auditory filters: envelope and BM motion, and their long-term RMS
        reference_env, reference_b, processed_env, processed_b = gammatone_basilar_membrane(
            reference_mid,
            reference_bandwidth[bands],
            processed_mid,
            processed_bandwidth[bands],
            sample_rate,
            center_freq[bands],
        )
        reference_average[bands] = _band_rms(reference_env)
        processed_average[bands] = _band_rms(processed_env)
        reference_control_average[bands] = _band_rms(reference_control)
        processed_control_average[bands] = _band_rms(processed_control)

        # OHC compression
        reference_env, reference_b = env_compress_basilar_membrane(
            reference_env,
            reference_b,
            reference_control,
            attn_ohc_x[bands],
            low_knee_x[bands],
            ratio_x[bands],
            sample_rate,
            level1,
        )
        processed_env, processed_b = env_compress_basilar_membrane(
            processed_env,
            processed_b,
            processed_control,
            attn_ohc_y[bands],
            low_knee_y[bands],
            ratio_y[bands],
            sample_rate,
            level1,
        )

        # Processed envelope and BM aligned to the reference
        processed_env = envelope_align(reference_env, processed_env)
        processed_b = envelope_align(reference_b, processed_b)

        # dB SL, then IHC adaptation
        reference_env, reference_b = envelope_sl(
            reference_env, reference_b, attn_ihc_x[bands], level1
        )
        processed_env, processed_b = envelope_sl(
            processed_env, processed_b, attn_ihc_y[bands], level1
        )
        delta = 2  # IHC overshoot
        reference_db[bands], reference_bm[bands] = inner_hair_cell_adaptation(
            reference_env, reference_b, delta, sample_rate
        )
        processed_db[bands], processed_bm[bands] = inner_hair_cell_adaptation(
            processed_env, processed_b, delta, sample_rate
        )

    # Threshold noise on the BM (reference bands, then processed bands)
    ihc_threshold = -10  # dB re auditory threshold
    reference_bm = basilar_membrane_add_noise(reference_bm, ihc_threshold, level1)
    processed_bm = basilar_membrane_add_noise(processed_bm, ihc_threshold, level1)

    if m_delay > 0:
        compensate = (reference_bandwidth, center_freq, sample_rate)
        reference_db = group_delay_compensate(reference_db, *compensate)
        processed_db = group_delay_compensate(processed_db, *compensate)
        reference_bm = group_delay_compensate(reference_bm, *compensate)
        processed_bm = group_delay_compensate(processed_bm, *compensate)

    reference_sl = convert_rms_to_sl(
        reference_average,
        reference_control_average,
        attn_ohc_x,
        low_knee_x,
        ratio_x,
        attn_ihc_x,
        level1,
    )
    processed_sl = convert_rms_to_sl(
        processed_average,
        processed_control_average,
        attn_ohc_y,
        low_knee_y,
        ratio_y,
        attn_ihc_y,
        level1,
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

    The dB SL band levels (bands on the first axis) become linear magnitudes
    ``m = 10^(L / 20)``, close to specific loudness, each normalised to sum 1 so that only
    the spectral shape counts. Three differences are summarised:
    the spectrum ``d = m_ref - m_proc``, the normalised spectrum
    ``d / (m_ref + m_proc)``, and the slope ``diff(m_ref) - diff(m_proc)`` (first
    differences across bands). HAAQI uses the standard deviations of the first two
    (Kates & Arehart 2016, eq. 10).

    Args:
        reference_sl, processed_sl: band levels in dB SL, ``(bands,)`` (or
            ``(bands, columns)``, normalised and summarised over all values).

    Returns:
        ``(dloud, dnorm, dslope)``, each ``[sum |d|, bands * std(d), max |d|]`` (``std``
        the biased one).
    """
    nbands = reference_sl.shape[0]
    reference_magnitude = 10 ** (reference_sl / 20)
    processed_magnitude = 10 ** (processed_sl / 20)
    reference_magnitude = reference_magnitude / np.sum(reference_magnitude)
    processed_magnitude = processed_magnitude / np.sum(processed_magnitude)

    def summary(difference: np.ndarray) -> np.ndarray:
        magnitude = np.abs(difference)
        return np.array([np.sum(magnitude), nbands * np.std(difference), np.max(magnitude)])

    difference = reference_magnitude - processed_magnitude
    normalised = difference / (reference_magnitude + processed_magnitude)
    slope = np.diff(reference_magnitude, axis=0) - np.diff(processed_magnitude, axis=0)
    return summary(difference), summary(normalised), summary(slope)


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
def _band_segment_covariances(
    x, y, nwin, maxlag, window, full_weights, half_weights, full_norm, half_norm, cov, ms_x, ms_y
):
    """Max normalised cross-covariance over +/- maxlag of the windowed segments of one
    band ``x, y (samples,)``, into ``cov, ms_x, ms_y (nseg,)``.

    The reference segment sits in a zero-padded buffer so that every lag is a
    contiguous dot product with the processed segment.
    """
    nseg = cov.shape[0]
    half = nwin // 2
    n_lags = 2 * maxlag + 1
    padded_x = np.zeros(nwin + 2 * maxlag)
    seg_y = np.empty(nwin)
    lagged = np.empty(n_lags)
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
            padded_x[maxlag + i] = x[start + i] * w
            seg_y[i] = y[start + i] * w
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
            cov[seg] = min(max(peak / math.sqrt(energy_x * energy_y), 0.0), 1.0)
        else:
            cov[seg] = 0.0
        ms_x[seg] = 2.0 * energy_x
        ms_y[seg] = 2.0 * energy_y


@njit(cache=True, parallel=True)
def _segment_covariances(x, y, nwin, maxlag, window, weights, norms, cov, ms_x, ms_y):
    """:func:`_band_segment_covariances` of every band of ``x, y (bands, samples)``, bands
    in parallel; ``weights`` and ``norms`` are (full, half) window pairs."""
    for band in prange(x.shape[0]):
        _band_segment_covariances(
            x[band],
            y[band],
            nwin,
            maxlag,
            window,
            weights[0],
            weights[1],
            norms[0],
            norms[1],
            cov[band],
            ms_x[band],
            ms_y[band],
        )


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

    _segment_covariances(
        x,
        y,
        nwin,
        maxlag,
        window,
        (full_weights, half_weights),
        (full_norm, half_norm),
        cov,
        ms_x,
        ms_y,
    )
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
