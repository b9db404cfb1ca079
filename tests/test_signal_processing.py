"""Signal utilities: RMS, resampling, clipping, 16-bit conversion, standardisation."""

import numpy as np
import pytest

from clarity.utils.signal_processing import (
    clip_signal,
    compute_rms,
    denormalize_signals,
    normalize_signal,
    resample,
    to_16bit,
)


def test_compute_rms():
    assert compute_rms(np.array([3.0, -3.0, 3.0, -3.0])) == pytest.approx(3.0)
    t = np.arange(48000) / 48000
    assert compute_rms(np.sin(2 * np.pi * 100 * t)) == pytest.approx(1 / np.sqrt(2), rel=1e-9)
    assert compute_rms(np.array([])) == 0.0


@pytest.mark.parametrize("shape", [(44100,), (44100, 2)])
def test_resample_rate_and_length(shape):
    rng = np.random.default_rng(0)
    t = np.arange(44100) / 44100
    tone = np.sin(2 * np.pi * 440 * t)
    signal = tone if len(shape) == 1 else np.stack([tone, 0.5 * tone], axis=1)
    out = resample(signal, 44100, 16000)
    assert out.shape == (16000, *shape[1:])
    # the 440 Hz tone is still a 440 Hz tone at the new rate (away from the edges)
    expected = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    mono = out if out.ndim == 1 else out[:, 0]
    assert np.max(np.abs(mono[500:-500] - expected[500:-500])) < 1e-3
    assert resample(signal, 16000, 16000) is signal
    noise = rng.standard_normal(1000)
    assert resample(noise, 8000, 24000).shape == (3000,)


def test_resample_bad_input():
    with pytest.raises(ValueError, match="sample_rate"):
        resample(np.zeros(10), 0, 16000)
    with pytest.raises(ValueError, match="new_sample_rate"):
        resample(np.zeros(10), 16000, -1)
    with pytest.raises(ValueError, match="NaN or inf"):
        resample(np.array([0.0, np.nan]), 16000, 8000)
    with pytest.raises(ValueError, match="method"):
        resample(np.zeros(10), 16000, 8000, method="linear")


def test_clip_signal_counts():
    signal = np.array([0.5, 1.5, -2.0, 1.0, -1.0, 0.0])
    clipped, n_clipped = clip_signal(signal)
    assert n_clipped == 2
    np.testing.assert_array_equal(clipped, [0.5, 1.0, -1.0, 1.0, -1.0, 0.0])
    soft, n_soft = clip_signal(signal, soft_clip=True)
    assert n_soft == 0
    np.testing.assert_allclose(soft, np.tanh(signal))
    empty, n_empty = clip_signal(np.array([]))
    assert empty.size == 0 and n_empty == 0


def test_to_16bit():
    out = to_16bit(np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, 1e-6]))
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, [0, 16384, -16384, 32767, -32768, 32767, 0])
    with pytest.raises(ValueError, match="NaN or inf"):
        to_16bit(np.array([np.inf]))


def test_normalize_denormalize_round_trip():
    rng = np.random.default_rng(3)
    mixture = 0.3 * rng.standard_normal((2, 1000)) + 0.1
    normalised, reference = normalize_signal(mixture)
    assert reference.shape == (1000,)
    np.testing.assert_allclose(reference, mixture.mean(0))
    assert normalised.mean() == pytest.approx(0.0, abs=0.05)
    np.testing.assert_allclose(denormalize_signals(normalised, reference), mixture, atol=1e-12)
