"""HAAQI v1 against pyClarity 0.9.0 scores, and its behaviour on edge cases."""

import json
from pathlib import Path

import numpy as np
import pytest

from clarity.evaluator.haaqi import compute_haaqi, haaqi_v1
from clarity.evaluator.haaqi.haaqi import SilentReferenceError
from clarity.utils.audiogram import Audiogram

DATA = Path(__file__).parent / "data" / "reference"
CASES = json.loads((DATA / "haaqi_cases.json").read_text())
SIX = np.array([250, 500, 1000, 2000, 4000, 6000])
MODERATE = Audiogram(levels=np.array([20, 25, 30, 40, 50, 60]), frequencies=SIX)


@pytest.fixture(scope="module")
def arrays():
    return dict(np.load(DATA / "haaqi_cases.npz"))


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_haaqi_matches_reference(case, arrays):
    name = case["name"]
    audiogram = Audiogram(
        levels=np.array(case["audiogram_levels"]),
        frequencies=np.array(case["audiogram_frequencies"]),
    )
    np.random.seed(case["numpy_legacy_seed"])
    combined, nonlinear, linear, raw = haaqi_v1(
        arrays[f"{name}_reference"],
        case["reference_sample_rate"],
        arrays[f"{name}_processed"],
        case["processed_sample_rate"],
        audiogram,
        case["equalisation"],
        case["level1"],
    )
    expected = case["expected"]
    got = [combined, nonlinear, linear, *raw]
    want = [expected["combined"], expected["nonlinear"], expected["linear"], *expected["raw"]]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def _music(seconds=0.5, rate=24000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 6))
    return tone * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.standard_normal(len(t))


def test_identical_signals_score_near_one_and_noise_lowers_it():
    reference = _music()
    np.random.seed(0)
    same = haaqi_v1(reference, 24000, reference, 24000, MODERATE, 2, 65.0)[0]
    noisy = reference + 0.5 * np.random.default_rng(1).standard_normal(len(reference))
    np.random.seed(0)
    degraded = haaqi_v1(reference, 24000, noisy, 24000, MODERATE, 2, 65.0)[0]
    assert same > 0.9
    assert degraded < same - 0.1


def test_silent_processed_scores_low_but_finite():
    reference = _music()
    np.random.seed(0)
    combined, nonlinear, linear, raw = haaqi_v1(
        reference, 24000, np.zeros_like(reference), 24000, MODERATE, 2, 65.0
    )
    assert np.all(np.isfinite([combined, nonlinear, linear, *raw]))
    assert combined < 0.2


def test_silent_reference_is_refused_with_the_official_exception_type():
    np.random.seed(0)
    state = np.random.get_state()[1].copy()
    with pytest.raises(IndexError, match="reference is silent") as error:
        haaqi_v1(np.zeros(12000), 24000, _music(), 24000, MODERATE, 2, 65.0)
    assert isinstance(error.value, ValueError) and isinstance(error.value, SilentReferenceError)
    assert np.array_equal(np.random.get_state()[1], state)  # refused before any noise draw


def test_reference_below_threshold_matches_official_convention():
    quiet = 1e-4 * _music()
    np.random.seed(0)
    combined, nonlinear, linear, raw = haaqi_v1(quiet, 24000, quiet, 24000, MODERATE, 2, 40.0)
    assert raw[:2] == [0.0, 0.0]
    assert nonlinear == 0.0
    np.testing.assert_allclose(combined, 0.001 * linear + 0.161 * linear**2)


def test_missing_audiogram_frequency_equals_interpolated_audiogram():
    reference = _music()
    processed = 0.8 * reference + 0.05 * np.random.default_rng(2).standard_normal(len(reference))
    partial = Audiogram(levels=[10, 20, 40, 50, 60], frequencies=[250, 500, 2000, 4000, 6000])
    np.random.seed(3)
    first = haaqi_v1(reference, 24000, processed, 24000, partial, 2, 65.0)
    np.random.seed(3)
    second = haaqi_v1(reference, 24000, processed, 24000, partial.resample(SIX), 2, 65.0)
    assert first[0] == second[0]


def test_different_sample_rates_are_resampled():
    from scipy.signal import resample_poly

    reference = _music()
    processed = resample_poly(reference, 4, 3)  # same music at 32 kHz
    np.random.seed(0)
    combined = haaqi_v1(reference, 24000, processed, 32000, MODERATE, 2, 65.0)[0]
    assert combined > 0.9


def test_compute_haaqi_equals_combined_score():
    reference = _music()
    processed = 0.9 * reference
    np.random.seed(5)
    expected = haaqi_v1(reference, 24000, processed, 24000, MODERATE, 1, 65.0)[0]
    np.random.seed(5)
    assert compute_haaqi(processed, reference, 24000, 24000, MODERATE, 1, 65.0) == expected


def test_compute_haaqi_empty_reference_follows_official():
    assert compute_haaqi(np.array([]), np.array([]), 24000, 24000, MODERATE) == 1.0
    assert compute_haaqi(np.ones(10), np.array([]), 24000, 24000, MODERATE) == 0.0


@pytest.mark.parametrize(
    ("reference", "processed", "rates", "message"),
    [
        (np.array([]), np.ones(100), (24000, 24000), "reference: signal is empty"),
        (np.ones(100), np.array([]), (24000, 24000), "processed: signal is empty"),
        (np.array([1.0, np.nan, 1.0]), np.ones(3), (24000, 24000), "reference: .*NaN"),
        (np.ones(3), np.array([1.0, np.inf, 1.0]), (24000, 24000), "processed: .*infinite"),
        (np.ones(100), np.ones(100), (0, 24000), "reference_freq"),
        (np.ones(100), np.ones(100), (24000, -8000), "processed_freq"),
        (np.ones((2, 100)), np.ones(100), (24000, 24000), "1-D"),
    ],
)
def test_bad_inputs_raise(reference, processed, rates, message):
    with pytest.raises(ValueError, match=message):
        haaqi_v1(reference, rates[0], processed, rates[1], MODERATE, 2, 65.0)
