"""NAL-R FIR design against pyClarity 0.9.0 and its basic properties."""

from pathlib import Path

import numpy as np
import pytest

from clarity.enhancer.nalr import NALR
from clarity.utils.audiogram import Audiogram

REFERENCE = Path(__file__).parent / "data" / "reference" / "nalr_case.npz"


def test_fir_matches_reference():
    case = np.load(REFERENCE)
    nalr = NALR(nfir=int(case["nfir"]), sample_rate=int(case["sample_rate"]))
    fir, delay = nalr.build(
        Audiogram(levels=case["audiogram_levels"], frequencies=case["audiogram_frequencies"])
    )
    assert fir.shape == case["fir"].shape
    np.testing.assert_allclose(fir, case["fir"], rtol=0, atol=1e-9)
    assert delay[int(case["nfir"]) // 2] == 1.0 and np.sum(delay) == 1.0


def test_no_loss_gives_pure_delay():
    nalr = NALR(nfir=140, sample_rate=24000)
    fir, delay = nalr.build(
        Audiogram(levels=np.zeros(6), frequencies=[250, 500, 1000, 2000, 4000, 6000])
    )
    np.testing.assert_array_equal(fir, delay)


def test_gain_grows_with_loss_and_filter_is_linear_phase():
    nalr = NALR(nfir=220, sample_rate=24000)
    frequencies = [250, 500, 1000, 2000, 4000, 6000]
    mild, _ = nalr.build(Audiogram(levels=[10, 10, 20, 30, 40, 40], frequencies=frequencies))
    severe, _ = nalr.build(Audiogram(levels=[40, 50, 60, 70, 80, 80], frequencies=frequencies))
    np.testing.assert_allclose(mild, mild[::-1], atol=1e-12)  # symmetric taps
    assert np.sum(severe**2) > np.sum(mild**2)


def test_missing_audiogram_frequency_is_interpolated():
    nalr = NALR(nfir=220, sample_rate=24000)
    partial = Audiogram(levels=[10, 20, 40, 50, 60], frequencies=[250, 500, 2000, 4000, 6000])
    full = partial.resample(np.array([250, 500, 1000, 2000, 4000, 6000]))
    np.testing.assert_array_equal(nalr.build(partial)[0], nalr.build(full)[0])


def test_apply_is_full_convolution():
    nalr = NALR(nfir=20, sample_rate=24000)
    signal = np.zeros(50)
    signal[3] = 1.0
    fir, _ = nalr.build(Audiogram(levels=[30] * 6, frequencies=[250, 500, 1000, 2000, 4000, 6000]))
    out = nalr.apply(fir, signal)
    assert out.shape == (70,)
    np.testing.assert_allclose(out[3:24], fir)


@pytest.mark.parametrize(("nfir", "rate"), [(0, 24000), (140, 0), (140, -1)])
def test_bad_parameters_raise(nfir, rate):
    with pytest.raises(ValueError):
        NALR(nfir=nfir, sample_rate=rate)


def test_apply_rejects_2d():
    nalr = NALR(nfir=20, sample_rate=24000)
    with pytest.raises(ValueError, match="1-D"):
        nalr.apply(nalr.delay, np.zeros((2, 10)))
