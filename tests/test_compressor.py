"""Compressor and multiband compressor: official numbers, shapes, parameters and input checks."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from clarity.enhancer.multiband_compressor import Crossover, MultibandCompressor
from clarity.enhancer.multiband_compressor.compressor_qmul import Compressor

REFERENCE = Path(__file__).parent / "data" / "reference"
CASES = np.load(REFERENCE / "compressor_cases.npz")
SETTINGS = json.loads((REFERENCE / "compressor_cases.json").read_text())
SAMPLE_RATE = int(CASES["sample_rate"])
XOVER = list(CASES["crossover_frequencies"])


def reference_mbc(settings: str) -> MultibandCompressor:
    mbc = MultibandCompressor(crossover_frequencies=XOVER, sample_rate=SAMPLE_RATE)
    mbc.set_compressors(**SETTINGS[settings])
    return mbc


def test_multiband_matches_reference_with_bands():
    left = CASES["input"][0].copy()
    output, bands = reference_mbc("multiband")(left, return_bands=True)
    assert np.max(np.abs(output - CASES["mbc_output_left"])) <= 1e-9
    assert np.max(np.abs(bands - CASES["mbc_bands_left"])) <= 1e-9
    np.testing.assert_array_equal(left, CASES["input"][0])  # input left untouched


def test_multiband_soft_knee_matches_reference_stereo():
    output = reference_mbc("multiband_knee")(CASES["input"])
    assert np.max(np.abs(output - CASES["mbc_knee_output_stereo"])) <= 1e-9


def test_single_compressor_matches_reference():
    compressor = Compressor(sample_rate=SAMPLE_RATE, **SETTINGS["single"])
    output = compressor(CASES["input"])
    assert np.max(np.abs(output - CASES["compressor_output_stereo"])) <= 1e-9


def test_mono_equals_one_channel_of_stereo():
    mbc = reference_mbc("multiband_knee")
    stereo = mbc(CASES["input"][:, :5000])
    mono = mbc(CASES["input"][1, :5000])
    assert mono.shape == (1, 5000)
    np.testing.assert_array_equal(mono[0], stereo[1])
    compressor = Compressor(threshold=-20, ratio=4, sample_rate=SAMPLE_RATE)
    np.testing.assert_array_equal(compressor(CASES["input"][0]), compressor(CASES["input"])[0])


def test_compression_reduces_loud_and_keeps_quiet_signals():
    t = np.arange(44100) / 44100
    loud = 0.9 * np.sin(2 * np.pi * 1000 * t)
    compressor = Compressor(threshold=-20, ratio=4, attack=5, release=50, sample_rate=44100)
    out = compressor(loud[np.newaxis])[0]
    # the peak is 19.1 dB over the threshold: the static curve removes 14.3 dB of it, and the
    # smoothed instantaneous detector removes less (it averages the level over each cycle)
    steady_peak = np.max(np.abs(out[-4410:]))
    assert 0.9 * 10 ** (-14.3 / 20) < steady_peak < 0.9 * 10 ** (-6 / 20)
    quiet = 0.01 * np.sin(2 * np.pi * 1000 * t)  # -40 dB, below threshold: untouched
    np.testing.assert_allclose(compressor(quiet), quiet, rtol=1e-15, atol=1e-12)  # 0 -> 1e-12


def test_silent_and_empty_input():
    mbc = reference_mbc("multiband")
    silent = mbc(np.zeros((2, 1000)))
    assert silent.shape == (2, 1000)
    assert np.max(np.abs(silent)) < 1e-10  # official floors exact zeros at 1e-12
    empty, bands = mbc(np.zeros((2, 0)), return_bands=True)
    assert empty.shape == (2, 0)
    assert bands.shape == (6, 2, 0)


def test_scalar_parameters_are_broadcast():
    mbc = MultibandCompressor([1000.0, 4000.0], 16000, compressors_params={"ratio": 2.0})
    assert [c.ratio for c in mbc.compressor] == [2.0, 2.0, 2.0]
    mbc.set_compressors(threshold=-25, ratio=[1.0, 2.0, 3.0], makeup_gain=3)
    assert [c.threshold for c in mbc.compressor] == [-25.0] * 3
    assert [c.ratio for c in mbc.compressor] == [1.0, 2.0, 3.0]


def test_wrong_list_length_names_parameter_and_lengths():
    mbc = MultibandCompressor([1000.0, 4000.0], 16000)
    with pytest.raises(ValueError, match=r"attack.*expected 3.*got 2"):
        mbc.set_compressors(attack=[10.0, 10.0])
    with pytest.raises(ValueError, match=r"knee_width.*expected 3.*got 4"):
        mbc.set_compressors(knee_width=[0.0, 1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="unknown"):
        MultibandCompressor([1000.0], 16000, compressors_params={"gain": 1.0})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sample_rate": 0}, "sample_rate"),
        ({"attack": 0.0}, "attack"),
        ({"release": -1.0}, "release"),
        ({"ratio": 0.0}, "ratio"),
        ({"knee_width": -1.0}, "knee_width"),
        ({"threshold": float("nan")}, "threshold"),
    ],
)
def test_bad_compressor_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Compressor(**kwargs)


def test_out_of_range_parameter_warns():
    with pytest.warns(UserWarning, match="ratio"):
        Compressor(ratio=40.0)


def test_bad_signals():
    mbc = reference_mbc("multiband")
    with pytest.raises(ValueError, match="NaN or inf"):
        mbc(np.array([0.1, np.inf]))
    with pytest.raises(ValueError, match="shape"):
        mbc(np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match="NaN or inf"):
        Compressor()(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="sample_rate"):
        MultibandCompressor([1000.0], sample_rate=-1)


def compressor_oracle(signal, threshold, ratio, attack, release, makeup_gain, knee_width):
    """Sample-by-sample textbook compressor (Giannoulis et al. 2012) for one channel."""
    alpha_attack = np.exp(-1.0 / (0.001 * 44100 * attack))
    alpha_release = np.exp(-1.0 / (0.001 * 44100 * release))
    output = np.empty_like(signal)
    smoothed = 0.0
    for t, x in enumerate(signal):
        x = x if x != 0.0 else 1e-12
        level = max(20 * np.log10(abs(x)), -120.0)
        if 2 * (level - threshold) < -knee_width:
            wanted = level
        elif knee_width > 0 and 2 * abs(level - threshold) <= knee_width:
            wanted = level + (1 / ratio - 1) * (level - threshold + knee_width / 2) ** 2 / (
                2 * knee_width
            )
        else:
            wanted = threshold + (level - threshold) / ratio
        target = level - wanted
        alpha = alpha_attack if target > smoothed else alpha_release
        smoothed = alpha * smoothed + (1 - alpha) * target
        output[t] = x * 10 ** ((makeup_gain - smoothed) / 20)
    return output


@pytest.mark.parametrize("knee_width", [0.0, 8.0])
def test_matches_sample_by_sample_oracle(knee_width):
    # a burst after silence, exact zeros and a decaying tail
    rng = np.random.default_rng(7)
    n_samples = 12411
    envelope = np.where(np.arange(n_samples) < n_samples // 3, 0.02, 0.7)
    signal = envelope * rng.standard_normal(n_samples)
    signal[:50] = 0.0
    signal[-2000:] *= np.linspace(1.0, 0.0, 2000)
    params = {"threshold": -24.0, "ratio": 5.0, "attack": 2.0, "release": 60.0}
    params |= {"makeup_gain": 4.0, "knee_width": knee_width}
    output = Compressor(sample_rate=44100, **params)(signal)
    expected = compressor_oracle(signal, **params)
    assert np.max(np.abs(output - expected)) <= 1e-12 * np.max(np.abs(expected))


def test_zeros_become_eps_without_touching_the_input():
    signal = np.array([[0.0, 0.5, 0.0, -0.25, 0.0]])
    kept = signal.copy()
    params = {"threshold": -20.0, "ratio": 3.0, "attack": 1.0, "release": 10.0}
    params |= {"makeup_gain": 6.0, "knee_width": 0.0}
    output = Compressor(sample_rate=44100, **params)(signal)
    np.testing.assert_array_equal(signal, kept)
    expected = compressor_oracle(signal[0], **params)
    np.testing.assert_allclose(output[0], expected, rtol=1e-14, atol=0)
    assert output[0, 0] == pytest.approx(1e-12 * 10 ** (6 / 20), rel=1e-12)


def test_multiband_attributes_keep_the_values_given():
    mbc = MultibandCompressor([1000.0, 4000.0], 16000, compressors_params={"attack": 5})
    assert mbc.attack == 5 and mbc.release == 100.0 and mbc.knee_width == 0.0
    mbc.set_compressors(ratio=[1.0, 2.0, 3.0], threshold=-30)
    assert mbc.ratio == [1.0, 2.0, 3.0] and mbc.threshold == -30
    assert mbc.sample_rate == 16000.0 and mbc.num_compressors == 3
    np.testing.assert_array_equal(mbc.xover_freqs, [1000.0, 4000.0])
    assert [c.alpha_attack for c in mbc.compressor] == [np.exp(-1 / (0.001 * 16000 * 15))] * 3
    assert "Multiband Compressor Summary:" in str(mbc)


def test_long_signal_crosses_block_boundaries():
    # longer than the blocks of the multiband loop and of the compressors: the states carry
    frequencies = [800.0]
    signal = 0.4 * np.random.default_rng(10).standard_normal(40_000)
    mbc = MultibandCompressor(frequencies, 44100)
    params = {"threshold": -28.0, "ratio": 3.0, "attack": 2.0, "release": 40.0}
    params |= {"makeup_gain": 3.0, "knee_width": 4.0}
    mbc.set_compressors(**params)
    output, compressed = mbc(signal, return_bands=True)
    bands = Crossover(frequencies, 44100)(signal)
    for band in range(2):
        expected = compressor_oracle(bands[band], **params)
        assert np.max(np.abs(compressed[band, 0] - expected)) <= 1e-12 * np.max(np.abs(expected))
    np.testing.assert_array_equal(output[0], compressed[0, 0] + compressed[1, 0])


@pytest.mark.parametrize("n_bands", [9, 17])
def test_more_bands_than_a_vector_of_lanes(n_bands):
    # every band must still get its own compressor, and the sum must run in band order
    frequencies = list(np.geomspace(100.0, 12000.0, n_bands - 1))
    signal = 0.5 * np.random.default_rng(9).standard_normal((2, 3000))
    mbc = MultibandCompressor(frequencies, 44100)
    mbc.set_compressors(
        threshold=list(np.linspace(-45, -15, n_bands)),
        ratio=list(np.linspace(1.0, 5.0, n_bands)),
        makeup_gain=list(np.linspace(0, 12, n_bands)),
    )
    output, compressed = mbc(signal, return_bands=True)
    bands = Crossover(frequencies, 44100)(signal)
    expected = np.array([c(band) for c, band in zip(mbc.compressor, bands, strict=True)])
    np.testing.assert_array_equal(compressed, expected)
    np.testing.assert_array_equal(output, expected.sum(axis=0))
    for band in (0, n_bands - 1):
        params = {
            name: getattr(mbc.compressor[band], name)
            for name in ("threshold", "ratio", "attack", "release", "makeup_gain", "knee_width")
        }
        oracle = compressor_oracle(bands[band, 1], **params)
        assert np.max(np.abs(compressed[band, 1] - oracle)) <= 1e-12 * np.max(np.abs(oracle))


def test_more_channels_than_vector_lanes():
    signal = 0.3 * np.random.default_rng(3).standard_normal((11, 3000))
    compressor = Compressor(threshold=-25, ratio=3, attack=3, release=40, sample_rate=44100)
    output = compressor(signal)
    for channel in (0, 7, 8, 10):
        np.testing.assert_array_equal(output[channel], compressor(signal[channel]))


@pytest.mark.parametrize(
    "frequencies", [[353.55, 707.11, 1414.21, 2828.43, 5656.85], [100.0, 1000.0, 8000.0], [3000.0]]
)
@pytest.mark.parametrize("n_samples", [5, 4000])
def test_multiband_equals_crossover_then_band_compressors(frequencies, n_samples):
    # a few samples (shorter than a filter chain) and a few thousand
    signal = 0.5 * np.random.default_rng(4).standard_normal((2, n_samples))
    n_bands = len(frequencies) + 1
    mbc = MultibandCompressor(frequencies, 44100)
    mbc.set_compressors(
        attack=list(np.linspace(2, 12, n_bands)),
        release=list(np.linspace(30, 120, n_bands)),
        threshold=list(np.linspace(-40, -20, n_bands)),
        ratio=list(np.linspace(1.0, 4.0, n_bands)),
        makeup_gain=list(np.linspace(0, 9, n_bands)),
        knee_width=[0.0, 6.0] * (n_bands // 2) + [3.0] * (n_bands % 2),
    )
    output, compressed = mbc(signal, return_bands=True)
    bands = Crossover(frequencies, 44100)(signal)
    expected = np.array([c(band) for c, band in zip(mbc.compressor, bands, strict=True)])
    np.testing.assert_array_equal(compressed, expected)
    np.testing.assert_array_equal(output, expected.sum(axis=0))
    np.testing.assert_array_equal(mbc(signal), output)


def test_extreme_dynamics_match_oracle():
    # from 1e-200 (floored at -120 dB) to 1e5 (+100 dB FS), and an expander (ratio < 1)
    rng = np.random.default_rng(8)
    signal = rng.standard_normal(3000) * np.repeat([1e-200, 1e-7, 1.0, 1e5, 1e-3], 600)
    for params in (
        {"threshold": -40.0, "ratio": 8.0, "attack": 1.0, "release": 20.0},
        {"threshold": -20.0, "ratio": 0.5, "attack": 1.0, "release": 20.0},
    ):
        params |= {"makeup_gain": 6.0, "knee_width": 0.0}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ratio 0.5 is outside the recommended range
            output = Compressor(sample_rate=44100, **params)(signal)
        expected = compressor_oracle(signal, **params)
        np.testing.assert_allclose(output, expected, rtol=1e-12, atol=0)
