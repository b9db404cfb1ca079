"""Linkwitz-Riley crossover: coefficients, bit-identity with the lfilter cascade, flat sum,
shapes and input checks."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import butter, freqz, lfilter

from clarity.enhancer.multiband_compressor import Crossover
from clarity.enhancer.multiband_compressor import crossover as crossover_module
from clarity.enhancer.multiband_compressor.crossover import (
    compute_coefficients,
    linkwitz_riley,
    make_all_pass,
)

REFERENCE = Path(__file__).parent / "data" / "reference"
CASES = np.load(REFERENCE / "compressor_cases.npz")
BENCH_FREQUENCIES = [353.55, 707.11, 1414.21, 2828.43, 5656.85]


def test_matches_reference_bands():
    xover = Crossover(np.array(CASES["crossover_frequencies"]), int(CASES["sample_rate"]))
    bands = xover(CASES["input"][0][np.newaxis, :], axis=-1)
    assert bands.shape == CASES["crossover_bands_left"].shape
    assert np.max(np.abs(bands - CASES["crossover_bands_left"])) <= 1e-10


def test_linkwitz_riley_is_a_squared_butterworth():
    b, a = linkwitz_riley(1000 / 22050, "low")
    butter_b, butter_a = butter(2, 1000 / 22050)
    np.testing.assert_allclose(b, np.convolve(butter_b, butter_b), rtol=1e-9, atol=1e-18)
    np.testing.assert_allclose(a, np.convolve(butter_a, butter_a), rtol=1e-9)
    high_b, _ = linkwitz_riley(1000 / 22050, "high")
    assert b.shape == a.shape == high_b.shape == (5,)
    assert np.sum(high_b) == pytest.approx(0.0, abs=1e-12)  # no DC through the high-pass


def test_make_all_pass_sums_the_two_filters():
    low = linkwitz_riley(0.1, "low")
    high = linkwitz_riley(0.1, "high")
    b, a = make_all_pass(*low, *high)
    assert b.shape == a.shape == (9,)
    _, response = freqz(b, a, worN=512)
    _, low_response = freqz(*low, worN=512)
    _, high_response = freqz(*high, worN=512)
    np.testing.assert_allclose(response, low_response + high_response, atol=1e-9)
    np.testing.assert_allclose(np.abs(response), 1.0, atol=1e-9)  # an all-pass


def test_compute_coefficients_shapes_and_layout():
    frequencies = np.array([500.0, 2000.0, 3000.0])
    bstore, astore, bstore_phi, astore_phi = compute_coefficients(frequencies, 8000, 4)
    assert bstore.shape == astore.shape == (5, 3, 2)
    assert bstore_phi.shape == astore_phi.shape == (9, 3)
    for i, frequency in enumerate(frequencies):
        for column, btype in enumerate(("low", "high")):
            b, a = linkwitz_riley(frequency / 4000, btype)
            np.testing.assert_array_equal(bstore[:, i, column], b)
            np.testing.assert_array_equal(astore[:, i, column], a)
        b, a = make_all_pass(bstore[:, i, 0], astore[:, i, 0], bstore[:, i, 1], astore[:, i, 1])
        np.testing.assert_array_equal(bstore_phi[:, i], b)
        np.testing.assert_array_equal(astore_phi[:, i], a)
    xover = Crossover(frequencies, 8000)
    np.testing.assert_array_equal(xover.bstore_phi, bstore_phi)
    assert xover.FILTER_ORDER == 4


def lfilter_bands(xover: Crossover, signal: np.ndarray) -> np.ndarray:
    """Oracle: band k is LP_k, then HP_0 .. HP_{k-1}, then AP_{k+1} .. AP_{N-1}, each run by
    scipy's lfilter from the stored coefficients (bands, ..., samples)."""
    n_xover = xover.xover_freqs.size
    bands = []
    for band in range(n_xover + 1):
        filtered = signal
        if band < n_xover:
            filtered = lfilter(xover.bstore[:, band, 0], xover.astore[:, band, 0], filtered)
        for m in range(band):
            filtered = lfilter(xover.bstore[:, m, 1], xover.astore[:, m, 1], filtered)
        for m in range(band + 1, n_xover):
            filtered = lfilter(xover.bstore_phi[:, m], xover.astore_phi[:, m], filtered)
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
    "frequencies", [BENCH_FREQUENCIES, [100.0, 1000.0, 8000.0], [3000.0, 9000.0], [1000.0]]
)
def test_bit_identical_to_lfilter_cascade(name, frequencies):
    signal = SIGNALS[name]
    xover = Crossover(frequencies, 44100)
    np.testing.assert_array_equal(xover(signal), lfilter_bands(xover, signal))


@pytest.mark.parametrize("n_bands", [9, 17])
def test_more_bands_than_a_vector_of_lanes(n_bands):
    # 17 bands x 2 channels = 34 lanes: more than one block of the kernel's lanes
    frequencies = list(np.geomspace(100.0, 12000.0, n_bands - 1))
    signal = 0.5 * np.random.default_rng(9).standard_normal((2, 3000))
    xover = Crossover(frequencies, 44100)
    bands = xover(signal)
    assert bands.shape == (n_bands, 2, 3000)
    np.testing.assert_array_equal(bands, lfilter_bands(xover, signal))


@pytest.mark.parametrize("threads", [1, 2, 3, 5])
def test_lanes_shared_among_threads_give_the_same_bits(threads, monkeypatch):
    # 6 bands x 2 channels = 12 lanes, in blocks of 12, 8 (8 + 4), 4 and 4 lanes
    signal = SIGNALS["stereo_music"]
    xover = Crossover(BENCH_FREQUENCIES, 44100)
    expected = xover(signal)
    monkeypatch.setattr(crossover_module.numba, "get_num_threads", lambda: threads)
    np.testing.assert_array_equal(xover(signal), expected)


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


def test_blocks_continue_the_filter_state():
    xover = Crossover(BENCH_FREQUENCIES, 44100)
    signal = np.random.default_rng(3).standard_normal((2, 5000))
    state = xover.new_state(2)
    first = xover.split_rows(signal[:, :1234], state)
    second = xover.split_rows(signal[:, 1234:], state)
    whole = np.concatenate([first, second]).transpose(1, 2, 0)
    np.testing.assert_array_equal(whole, xover(signal))


def test_xover_component_is_one_band():
    xover = Crossover([500.0, 2000.0, 6000.0], 44100)
    signal = np.random.default_rng(4).standard_normal(1000)
    np.testing.assert_array_equal(xover.xover_component(signal, 2, 3), xover(signal)[2])
    with pytest.raises(ValueError, match="filter_idx"):
        xover.xover_component(signal, 4, 3)


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


def test_str_lists_the_frequencies():
    assert (
        str(Crossover([250, 1000.123456], 44100)) == "Crossover frequencies: [250.0, 1000.1235] Hz"
    )


def test_reference_settings_file_is_consistent():
    settings = json.loads((REFERENCE / "compressor_cases.json").read_text())
    assert len(settings["multiband"]["ratio"]) == CASES["crossover_frequencies"].size + 1
