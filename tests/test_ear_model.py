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
    got = eb._lagged_correlation(first, second, max_lag, workers=1)
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


# --------------------------------------------------------------------------------------
# Each public stage against pyClarity 0.9.0 (tests/data/reference/ear_model_stages.md)
# --------------------------------------------------------------------------------------

STAGES = Path(__file__).parent / "data" / "reference" / "ear_model_stages.npz"


@pytest.fixture(scope="module")
def stages():
    data = dict(np.load(STAGES))
    cf = eb.center_frequency(32)
    data["cf"] = cf
    data["normal"] = eb.loss_parameters(np.zeros(6), cf)
    data["impaired"] = eb.loss_parameters(data["hearing_loss"], cf)
    data["bw_control"] = eb.loss_parameters(np.full(6, 100.0), cf)[1]
    return data


def _band_parameters(stages, which):
    bands = stages["bands"]
    return [np.asarray(p)[bands] for p in stages[which]]


def test_control_path_and_bandwidths_match_reference(stages):
    bands, level1 = stages["bands"], float(stages["level1"])
    bw_control = stages["bw_control"][bands]
    control_x, _, control_y, _ = eb.gammatone_basilar_membrane(
        stages["reference_mid"], bw_control, stages["processed_mid"], bw_control, 24000,
        stages["cf"][bands],
    )  # fmt: skip
    np.testing.assert_array_equal(control_x, stages["control_reference"])
    np.testing.assert_array_equal(control_y, stages["control_processed"])
    bw_x = eb.bandwidth_adjust(control_x, _band_parameters(stages, "normal")[1], bw_control, level1)
    bw_y = eb.bandwidth_adjust(
        control_y, _band_parameters(stages, "impaired")[1], bw_control, level1
    )
    np.testing.assert_array_equal(bw_x, stages["bandwidth_reference"])
    np.testing.assert_array_equal(bw_y, stages["bandwidth_processed"])
    # one band as in pyClarity: a float
    single = eb.bandwidth_adjust(control_y[1], stages["impaired"][1][12], bw_control[1], level1)
    assert isinstance(single, float) and single == stages["bandwidth_processed"][1]


def test_gammatone_matches_reference_band_by_band_and_for_all_bands(stages):
    bands = stages["bands"]
    args = (
        stages["reference_mid"], stages["bandwidth_reference"], stages["processed_mid"],
        stages["bandwidth_processed"], 24000, stages["cf"][bands],
    )  # fmt: skip
    names = ["reference_env", "reference_bm", "processed_env", "processed_bm"]
    for name, got in zip(names, eb.gammatone_basilar_membrane(*args), strict=True):
        np.testing.assert_array_equal(got, stages[f"gammatone_{name}"])
    one = eb.gammatone_basilar_membrane(
        args[0], float(args[1][2]), args[2], float(args[3][2]), 24000, float(args[5][2])
    )
    for name, got in zip(names, one, strict=True):
        assert got.shape == (2400,)
        np.testing.assert_array_equal(got, stages[f"gammatone_{name}"][2])


def test_demodulation_carriers_match_reference(stages):
    sin, cos = eb.gammatone_bandwidth_demodulation(
        500, 2 * np.pi / 24000, 1234.5, np.zeros(500), np.zeros(500)
    )
    np.testing.assert_array_equal(sin, stages["demodulation_sin"])
    np.testing.assert_array_equal(cos, stages["demodulation_cos"])


@pytest.mark.parametrize(("signal", "which"), [("reference", "normal"), ("processed", "impaired")])
def test_compression_matches_reference(stages, signal, which):
    attn_ohc, _, low_knee, ratio, _ = _band_parameters(stages, which)
    env, bm = eb.env_compress_basilar_membrane(
        stages[f"gammatone_{signal}_env"], stages[f"gammatone_{signal}_bm"],
        stages[f"control_{signal}"], attn_ohc, low_knee, ratio, 24000, float(stages["level1"]),
    )  # fmt: skip
    # 10^(G/20) is formed as exp(G ln10 / 20): rounding-level differences only
    np.testing.assert_allclose(env, stages[f"compressed_{signal}_env"], rtol=1e-13, atol=0)
    np.testing.assert_allclose(bm, stages[f"compressed_{signal}_bm"], rtol=1e-12, atol=1e-300)
    one_env, _ = eb.env_compress_basilar_membrane(
        stages[f"gammatone_{signal}_env"][0], stages[f"gammatone_{signal}_bm"][0],
        stages[f"control_{signal}"][0], attn_ohc[0], low_knee[0], ratio[0], 24000,
        float(stages["level1"]),
    )  # fmt: skip
    np.testing.assert_array_equal(one_env, env[0])


def test_alignment_matches_reference(stages):
    for part in ("env", "bm"):
        aligned = eb.envelope_align(
            stages[f"compressed_reference_{part}"], stages[f"compressed_processed_{part}"]
        )
        np.testing.assert_allclose(aligned, stages[f"aligned_processed_{part}"], rtol=1e-12)


@pytest.mark.parametrize(
    ("signal", "which", "source"),
    [
        ("reference", "normal", "compressed_reference"),
        ("processed", "impaired", "aligned_processed"),
    ],
)
def test_sensation_level_and_ihc_adaptation_match_reference(stages, signal, which, source):
    attn_ihc = _band_parameters(stages, which)[4]
    level1 = float(stages["level1"])
    env, bm = eb.envelope_sl(stages[f"{source}_env"], stages[f"{source}_bm"], attn_ihc, level1)
    np.testing.assert_allclose(env, stages[f"sl_{signal}_env"], rtol=1e-14, atol=1e-12)
    np.testing.assert_allclose(bm, stages[f"sl_{signal}_bm"], rtol=1e-12)
    # the IHC stage gets the official inputs, so it is checked on its own
    db, adapted_bm = eb.inner_hair_cell_adaptation(
        stages[f"sl_{signal}_env"], stages[f"sl_{signal}_bm"], 2, 24000
    )
    np.testing.assert_array_equal(db, stages[f"ihc_{signal}_db"])
    np.testing.assert_array_equal(adapted_bm, stages[f"ihc_{signal}_bm"])
    one_db, _ = eb.inner_hair_cell_adaptation(
        stages[f"sl_{signal}_env"][1], stages[f"sl_{signal}_bm"][1], 2, 24000
    )
    np.testing.assert_array_equal(one_db, db[1])


def test_threshold_noise_matches_reference_draw_for_draw(stages):
    np.random.seed(11)
    reference = eb.basilar_membrane_add_noise(stages["ihc_reference_bm"], -10, stages["level1"])
    processed = eb.basilar_membrane_add_noise(stages["ihc_processed_bm"], -10, stages["level1"])
    np.testing.assert_array_equal(reference, stages["noisy_reference_bm"])
    np.testing.assert_array_equal(processed, stages["noisy_processed_bm"])


def test_group_delay_and_long_term_levels_match_reference(stages):
    compensated = eb.group_delay_compensate(
        stages["group_delay_input"], stages["group_delay_bandwidths"], stages["cf"], 24000
    )
    np.testing.assert_array_equal(compensated, stages["group_delay_output"])
    attn_ohc, _, low_knee, ratio, attn_ihc = stages["impaired"]
    levels = eb.convert_rms_to_sl(
        stages["rms_envelope"], stages["rms_control"], attn_ohc, low_knee, ratio, attn_ihc,
        float(stages["level1"]),
    )  # fmt: skip
    np.testing.assert_allclose(levels, stages["rms_sl"], rtol=0, atol=1e-12)


def test_mel_cepstrum_correlation_matches_reference_and_draws_like_it(case, stages):
    np.random.seed(3)
    average, individual = eb.mel_cepstrum_correlation(
        case["reference_smooth"], case["processed_smooth"], 2.5, 0.1
    )
    np.testing.assert_allclose(average, stages["mel_cepstrum_average"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(individual, stages["mel_cepstrum_individual"], rtol=0, atol=1e-12)
    assert np.random.get_state()[2] == stages["mel_cepstrum_state_pos"]


def test_spectrum_differences_match_reference(case, stages):
    got = eb.spectrum_diff(case["reference_sl"], case["processed_sl"])
    np.testing.assert_allclose(np.array(got), stages["spectrum_diff_1d"], rtol=1e-12, atol=0)
    # bands on the first axis: slopes are taken across bands, statistics over all values
    got = eb.spectrum_diff(
        stages["spectrum_diff_2d_reference"], stages["spectrum_diff_2d_processed"]
    )
    np.testing.assert_allclose(np.array(got), stages["spectrum_diff_2d"], rtol=1e-12, atol=0)


def test_spectrum_slope_is_the_difference_of_band_to_band_steps():
    # a processed spectrum with the reference's shape has no slope difference; tilting
    # one band step changes the slope by exactly that step (after normalisation)
    reference = np.array([40.0, 46.0, 50.0, 44.0])
    _, _, dslope = eb.spectrum_diff(reference, reference + 7.0)
    np.testing.assert_allclose(dslope, 0.0, atol=1e-15)
    tilted = reference.copy()
    tilted[3] += 6.0
    magnitude = 10 ** (np.stack((reference, tilted)) / 20)
    magnitude /= magnitude.sum(axis=1, keepdims=True)
    steps = np.diff(magnitude[0]) - np.diff(magnitude[1])
    _, _, dslope = eb.spectrum_diff(reference, tilted)
    np.testing.assert_allclose(
        dslope, [np.abs(steps).sum(), 4 * np.std(steps), np.abs(steps).max()]
    )
