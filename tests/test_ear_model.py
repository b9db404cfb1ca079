"""Kates ear model and HAAQI feature stages against pyClarity 0.9.0 intermediates."""

import math
from pathlib import Path

import numba
import numpy as np
import pytest
from scipy.signal import lfilter

from clarity.evaluator.haspi import eb

DATA = Path(__file__).parent / "data" / "reference" / "ear_model_intermediates.npz"


@pytest.fixture(scope="module")
def case():
    return dict(np.load(DATA))


@pytest.fixture(scope="module")
def model_outputs(case):
    np.random.seed(0)
    outputs = eb.ear_model(
        case["reference"],
        24000,
        case["processed"],
        24000,
        case["audiogram_levels"],
        2,
        float(case["level1"]),
    )
    return outputs, np.random.get_state()


NAMES = [
    "reference_db",
    "reference_basilar_membrane",
    "processed_db",
    "processed_basilar_membrane",
    "reference_sl",
    "processed_sl",
]


@pytest.mark.parametrize("index", range(6))
def test_ear_model_outputs_match_reference(case, model_outputs, index):
    outputs, _ = model_outputs
    # BM motion carries the threshold noise; envelopes and levels are deterministic
    tolerance = 1e-3 if "basilar" in NAMES[index] else 1e-6
    got = np.asarray(outputs[index])
    assert got.shape == case[NAMES[index]].shape
    np.testing.assert_allclose(got, case[NAMES[index]], rtol=0, atol=tolerance)
    assert outputs[6] == case["model_sample_rate"]


def test_threshold_noise_is_drawn_like_the_official_code(case, model_outputs):
    _, state_after = model_outputs
    nsamp = case["reference_db"].shape[1]
    np.random.seed(0)
    np.random.standard_normal((32, nsamp))  # reference bands, then processed bands
    np.random.standard_normal((32, nsamp))
    expected = np.random.get_state()
    assert np.array_equal(expected[1], state_after[1])
    assert expected[2:] == state_after[2:]


def test_feature_stages_match_reference(case):
    reference_smooth = eb.env_smooth(case["reference_db"], 8, 24000)
    processed_smooth = eb.env_smooth(case["processed_db"], 8, 24000)
    np.testing.assert_allclose(reference_smooth, case["reference_smooth"], atol=1e-9)
    np.testing.assert_allclose(processed_smooth, case["processed_smooth"], atol=1e-9)

    mean, _, high, per_band = eb.melcor9(
        case["reference_smooth"], case["processed_smooth"], 2.5, 0.0, 8
    )
    np.testing.assert_allclose(
        [mean, high], [case["melcor9_mean"], case["melcor9_cepstral_high"]], atol=1e-9
    )
    np.testing.assert_allclose(per_band, case["melcor9_per_band"], atol=1e-9)

    dloud, dnorm, dslope = eb.spectrum_diff(case["reference_sl"], case["processed_sl"])
    np.testing.assert_allclose(dloud, case["dloud"], atol=1e-9)
    np.testing.assert_allclose(dnorm, case["dnorm"], atol=1e-9)
    np.testing.assert_allclose(dslope, case["dslope"], atol=1e-9)

    covariance, reference_ms, _ = eb.bm_covary(
        case["reference_basilar_membrane"], case["processed_basilar_membrane"], 16, 24000
    )
    np.testing.assert_allclose(covariance, case["signal_cross_covariance"], atol=1e-9)
    np.testing.assert_allclose(reference_ms, case["reference_mean_square"], rtol=1e-9, atol=1e-9)

    average, sync = eb.ave_covary2(
        case["signal_cross_covariance"], case["reference_mean_square"], 2.5
    )
    np.testing.assert_allclose(average, case["ave_covariance"], atol=1e-9)
    np.testing.assert_allclose(sync, case["ihc_sync_covariance"], atol=1e-9)


def test_band_vectorised_gammatone_equals_per_band_calls():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal(2000), rng.standard_normal(2000)
    cf = eb.center_frequency(4)
    bw_x, bw_y = np.array([1.0, 1.2, 1.5, 2.0]), np.array([1.1, 1.0, 1.3, 2.5])
    bank = eb.gammatone_basilar_membrane(x, bw_x, y, bw_y, 24000, cf)
    for k in range(4):
        single = eb.gammatone_basilar_membrane(x, bw_x[k], y, bw_y[k], 24000, cf[k])
        for banked, one in zip(bank, single, strict=True):
            np.testing.assert_array_equal(banked[k], one)


def test_group_delay_compensation_aligns_to_the_slowest_band():
    cf = eb.center_frequency(32)
    bandwidths = np.ones(32)
    compensated = eb.group_delay_compensate(np.ones((32, 2000)), bandwidths, cf, 24000)
    leading_zeros = np.argmax(compensated > 0, axis=1)
    assert leading_zeros[0] == 0  # the narrowest (lowest) band has the longest delay
    assert np.all(np.diff(leading_zeros) >= 0)
    assert leading_zeros[-1] > 100


def test_input_align_removes_a_known_delay():
    rng = np.random.default_rng(4)
    noise = rng.standard_normal(4000)
    reference = np.sign(noise) * (0.5 + np.abs(noise))  # no near-silent samples to prune
    processed = np.concatenate((np.zeros(100), reference[:-100]))
    aligned_reference, aligned_processed = eb.input_align(reference, processed)
    assert len(aligned_reference) == len(aligned_processed) == 4000
    # the processed signal is left 2 ms (48 samples) late to allow for dispersion
    np.testing.assert_array_equal(
        aligned_processed[48 : 4000 - 52], aligned_reference[: 4000 - 100]
    )


def test_envelope_align_finds_the_lag():
    rng = np.random.default_rng(5)
    reference = np.abs(rng.standard_normal((2, 6000)))
    output = np.roll(reference, 30, axis=1)
    aligned = eb.envelope_align(reference, output)
    np.testing.assert_array_equal(aligned[:, :5900], reference[:, :5900])


@pytest.mark.parametrize("rate", [16000, 32000, 44100])
def test_resample_24khz_keeps_rms(rate):
    t = np.arange(rate) / rate
    tone = np.sin(2 * np.pi * 1000 * t)
    resampled, out_rate = eb.resample_24khz(tone, rate)
    assert out_rate == 24000
    assert abs(len(resampled) - rate * 24 / round(rate / 1000)) < 1
    np.testing.assert_allclose(np.sqrt(np.mean(resampled**2)), np.sqrt(0.5), rtol=2e-2)


def test_silent_input_stays_finite():
    silent = np.zeros(4800)
    resampled, _ = eb.resample_24khz(silent, 16000)
    assert np.all(resampled == 0)
    np.random.seed(1)
    outputs = eb.ear_model(silent, 24000, silent, 24000, np.full(6, 30.0), 2, 65.0)
    for output in outputs[:6]:
        assert np.all(np.isfinite(output))
    np.testing.assert_array_equal(outputs[0], 0.0)


@pytest.mark.parametrize(("npts", "max_lag"), [(5000, 100), (5000, 4999), (3001, 40), (64, 63)])
def test_lagged_correlation_equals_direct_sums(npts, max_lag):
    # short lag ranges go block-wise, long ones through one circular correlation
    rng = np.random.default_rng(6)
    first, second = rng.standard_normal((2, 2, npts))
    got = eb._lagged_correlation(first, second, max_lag)
    for row in range(2):
        full = np.correlate(first[row], second[row], "full")  # lags -(n-1) .. n-1
        expected = full[npts - 1 - max_lag : npts + max_lag]
        np.testing.assert_allclose(got[row], expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("threads", [1, 2])
def test_band_threads_do_not_change_the_numbers(threads):
    rng = np.random.default_rng(7)
    reference = rng.standard_normal(6000)
    processed = 0.5 * reference + 0.1 * rng.standard_normal(6000)
    hearing_loss = np.array([10, 20, 30, 40, 50, 60.0])

    def run():
        np.random.seed(3)
        outputs = eb.ear_model(reference, 24000, processed, 24000, hearing_loss, 1, 65.0)
        return outputs[:6], eb.bm_covary(outputs[1], outputs[3], 16, 24000)

    configured = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        expected = run()
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        got = run()
    finally:
        numba.set_num_threads(configured)
    for want, have in zip(expected[0] + expected[1], got[0] + got[1], strict=True):
        np.testing.assert_array_equal(have, want)


def kates_gammatone(signal: np.ndarray, pole: float, tpt_center_frequency: float):
    """Oracle: Kates's gammatone of one band, demodulation by the rotation recursion and
    scipy's lfilter on the real and imaginary parts: (envelope, BM motion)."""
    cos, sin = np.empty(signal.size), np.empty(signal.size)
    c, s = 1.0, 0.0
    cos_step, sin_step = math.cos(tpt_center_frequency), math.sin(tpt_center_frequency)
    for t in range(signal.size):
        if t > 0:
            c, s = c * cos_step + s * sin_step, s * cos_step - c * sin_step
        cos[t], sin[t] = c, s
    b1, b2 = 4.0 * pole, 4.0 * pole * pole
    a2, a3, a4 = -6.0 * pole * pole, 4.0 * pole * pole * pole, -pole * pole * pole * pole
    gain = 2.0 * (1 - b1 - a2 - a3 - a4) / (1 + b1 + b2)
    b, a = [1.0, b1, b2], [1.0, -b1, -a2, -a3, -a4]
    real, imaginary = lfilter(b, a, signal * cos), lfilter(b, a, signal * sin)
    envelope = gain * np.sqrt(real * real + imaginary * imaginary)
    return envelope, gain * (real * cos + imaginary * sin)


def test_gammatone_equals_kates_filter_run_with_lfilter():
    # each band and signal must reproduce Kates's filter (lfilter) bit for bit
    n_samples, sample_rate = 5000, 24000.0
    signals = np.random.default_rng(3).standard_normal((2, n_samples))
    center = eb.center_frequency(32)[[3, 20, 31]]
    bandwidths = np.array([[1.1, 1.7], [2.4, 1.0], [1.0, 3.2]])  # (band, signal)
    bank = eb.gammatone_basilar_membrane(
        signals[0], bandwidths[:, 0], signals[1], bandwidths[:, 1], sample_rate, center
    )
    tpt = 2 * np.pi / sample_rate
    for band in range(3):
        erb = 24.7 + center[band] / 9.26449
        for signal in range(2):
            pole = np.exp(-(bandwidths[band, signal] * tpt * erb * 1.019))
            envelope, motion = kates_gammatone(signals[signal], pole, tpt * center[band])
            np.testing.assert_array_equal(bank[2 * signal][band], envelope)
            np.testing.assert_array_equal(bank[2 * signal + 1][band], motion)
