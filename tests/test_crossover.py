"""Linkwitz-Riley crossover: official numbers, flat sum, shapes and input checks."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import lfilter

from clarity.enhancer.multiband_compressor import Crossover

REFERENCE = Path(__file__).parent / "data" / "reference"
CASES = np.load(REFERENCE / "compressor_cases.npz")


def test_matches_reference_bands():
    xover = Crossover(np.array(CASES["crossover_frequencies"]), int(CASES["sample_rate"]))
    bands = xover(CASES["input"][0][np.newaxis, :], axis=-1)
    assert bands.shape == CASES["crossover_bands_left"].shape
    assert np.max(np.abs(bands - CASES["crossover_bands_left"])) <= 1e-10


def lfilter_bands(xover: Crossover, signal: np.ndarray) -> np.ndarray:
    """Oracle: the official cascade of each band, run with scipy's lfilter (bands, ..., samples)."""
    bands = []
    for band in range(xover.num_bands):
        filtered = signal
        for b, a in xover.band_filters(band):
            filtered = lfilter(b, a, filtered, axis=-1)
        bands.append(filtered)
    return np.array(bands)


def music_like(n_samples: int, seed: int) -> np.ndarray:
    """1/f noise of unit RMS with a strong 60 Hz tone (stresses the low-frequency all-passes)."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1.0))
    noise = np.fft.irfft(spectrum, n=n_samples)
    tone = np.sin(2 * np.pi * 60 * np.arange(n_samples) / 44100)
    return noise / np.sqrt(np.mean(noise**2)) + tone


SIGNALS = {
    "mono_noise": np.random.default_rng(1).standard_normal(20000),
    "stereo_music": np.stack([music_like(20000, 2), music_like(20000, 3)]),
    "loud": 30.0 * music_like(20000, 4),
    "quiet": 1e-6 * music_like(20000, 5),
    "silence": np.zeros((2, 3000)),
}


@pytest.mark.parametrize("name", sorted(SIGNALS))
@pytest.mark.parametrize(
    "frequencies",
    [[353.55, 707.11, 1414.21, 2828.43, 5656.85], [100.0, 1000.0, 8000.0], [3000.0, 9000.0]],
)
def test_within_1e10_of_lfilter_cascade(name, frequencies):
    signal = SIGNALS[name]
    xover = Crossover(frequencies, 44100)
    expected = lfilter_bands(xover, signal)
    scale = max(np.max(np.abs(signal)), 1e-300)
    assert np.max(np.abs(xover(signal) - expected)) <= 1e-10 * scale


def test_bands_sum_to_flat_magnitude():
    xover = Crossover([250.0, 1000.0, 4000.0], 44100)
    impulse = np.zeros(1 << 16)
    impulse[0] = 1.0
    total = xover(impulse).sum(axis=0)
    magnitude_db = 20 * np.log10(np.abs(np.fft.rfft(total)))
    assert np.max(np.abs(magnitude_db)) < 1e-6
    # but each band alone is far from flat
    band_db = 20 * np.log10(np.abs(np.fft.rfft(xover(impulse)[0])) + 1e-300)
    assert band_db.min() < -60


def test_channels_are_independent_and_axis_is_respected():
    xover = Crossover([700.0, 3000.0], 22050)
    stereo = np.random.default_rng(2).standard_normal((2, 2000))
    bands = xover(stereo)
    assert bands.shape == (3, 2, 2000)
    np.testing.assert_array_equal(bands[:, 1], xover(stereo[1]))
    time_first = xover(stereo.T, axis=0)
    assert time_first.shape == (3, 2000, 2)
    np.testing.assert_array_equal(time_first, np.moveaxis(bands, -1, 1))


def test_empty_and_silent_input():
    xover = Crossover(1000.0, 44100)
    assert xover(np.zeros((2, 0))).shape == (2, 2, 0)
    assert not np.any(xover(np.zeros(100)))


@pytest.mark.parametrize(
    ("frequencies", "sample_rate", "message"),
    [
        ([1000.0, 500.0], 44100, "increasing"),
        ([1000.0, 1000.0], 44100, "increasing"),
        ([1000.0, 30000.0], 44100, "Nyquist"),
        ([-10.0], 44100, "> 0"),
        ([1000.0], 0, "sample_rate"),
        ([1000.0], -44100, "sample_rate"),
    ],
)
def test_bad_settings(frequencies, sample_rate, message):
    with pytest.raises(ValueError, match=message):
        Crossover(frequencies, sample_rate)


def test_non_finite_signal_is_rejected():
    with pytest.raises(ValueError, match="NaN or inf"):
        Crossover([1000.0], 44100)(np.array([0.0, np.nan, 1.0]))


def test_reference_settings_file_is_consistent():
    settings = json.loads((REFERENCE / "compressor_cases.json").read_text())
    assert len(settings["multiband"]["ratio"]) == CASES["crossover_frequencies"].size + 1
