"""The recipe's steps are wired as the official CAD2 Task 2 baseline wires them.

Each test rebuilds one pair's signal from the official description, step by step with the
libraries themselves (pyloudnorm, the multiband compressor, the FLAC reader), and compares it
with what `enhance_pair`, `score_pair` and the separators produce on the miniature dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyloudnorm as pyln
import pytest

import clarity.cad2.evaluate as evaluate_module
from clarity.cad2.enhance import enhance_pair, enhanced_path, load_run_inputs, make_compressor
from clarity.cad2.evaluate import score_pair
from clarity.cad2.seeding import seed_from_text
from clarity.cad2.separators import (
    OracleSeparator,
    PassthroughSeparator,
    build_separator,
    wiener_filter,
)
from clarity.cad2.testing import COMPRESSOR_PARAMS, GAINS
from clarity.enhancer.multiband_compressor import MultibandCompressor
from clarity.separation.inference import separate_instruments
from clarity.utils.flac_encoder import read_flac_signal, save_flac_signal
from clarity.utils.signal_processing import compute_rms, resample

SAMPLE_RATE = 44100
SCENE, LISTENER = "S50001", "L0001"  # two violins and a cello, gains 3, 6 and -10 dB
SONG_FOLDER = Path("audio") / "valid" / "mini_quartet_000"
STEMS = {"source_1": "Violin_1.flac", "source_2": "Violin_2.flac", "source_3": "Cello.flac"}
SEGMENT = slice(int(0.25 * SAMPLE_RATE), int(3.25 * SAMPLE_RATE))


def read(root: Path, name: str) -> np.ndarray:
    return read_flac_signal(root / SONG_FOLDER / name)[0]


def louder(signal: np.ndarray, gain_db: float) -> np.ndarray:
    """pyloudnorm by hand: the signal's integrated loudness changed by `gain_db`."""
    loudness = pyln.Meter(SAMPLE_RATE).integrated_loudness(signal)
    return pyln.normalize.loudness(signal, loudness, loudness + gain_db)


def levelled(signal: np.ndarray, gains_db: list[float]) -> np.ndarray:
    """Scaled by -10 log10(mean 10^(g/10)) dB."""
    mean_power = np.mean(10 ** (np.array(gains_db) / 10))
    return signal * 10 ** (-10 * np.log10(mean_power) / 20)


def compressed(signal: np.ndarray, config, listener: str = LISTENER) -> np.ndarray:
    """Each ear of a (samples, 2) signal through the listener's compressor: (samples, 2)."""
    compressor = MultibandCompressor(
        crossover_frequencies=list(config.enhancer.crossover_frequencies),
        sample_rate=SAMPLE_RATE,
    )
    params = COMPRESSOR_PARAMS[listener]
    ears = []
    for channel, suffix in enumerate(("l", "r")):
        compressor.set_compressors(
            attack=list(config.enhancer.attack),
            release=list(config.enhancer.release),
            threshold=list(config.enhancer.threshold),
            ratio=params[f"cr_{suffix}"],
            makeup_gain=params[f"gain_{suffix}"],
        )
        ears.append(compressor(signal[:, channel])[0])
    return np.stack(ears, axis=1)


@pytest.fixture
def oracle_config(mini_dataset, tmp_path, recipe_config, recipe_overrides):
    return recipe_config(recipe_overrides(mini_dataset, tmp_path / "exp", "oracle"))


def test_enhance_averages_voice_gains_but_levels_with_the_scene_gains(mini_dataset, oracle_config):
    metadata, _ = load_run_inputs(oracle_config)
    gains = GAINS["gain_0001"]
    voices = (gains["source_1"] + gains["source_2"]) / 2  # the two violins share 4.5 dB
    applied = {"source_1": voices, "source_2": voices, "source_3": gains["source_3"]}
    remix = sum(
        louder(read(mini_dataset, name)[SEGMENT], applied[source]) for source, name in STEMS.items()
    )
    expected = compressed(levelled(remix, list(gains.values())), oracle_config)

    separator = OracleSeparator(mini_dataset / "audio", SAMPLE_RATE)
    enhanced = enhance_pair(
        (SCENE, LISTENER), metadata, separator, make_compressor(oracle_config), oracle_config
    )
    assert enhanced.shape == (3 * SAMPLE_RATE, 2)
    np.testing.assert_allclose(enhanced, expected, rtol=0, atol=1e-12)
    # Levelling with the averaged gains would be a different signal.
    wrong = compressed(levelled(remix, list(applied.values())), oracle_config)
    assert np.max(np.abs(wrong - expected)) > 1e-3


@pytest.mark.parametrize("seeded", [True, False])
def test_score_pair_calls_haaqi_as_the_official_recipe(
    mini_dataset, tmp_path, recipe_config, recipe_overrides, monkeypatch, seeded
):
    config = recipe_config(recipe_overrides(
        mini_dataset, tmp_path / "exp", "oracle", f"evaluate.set_random_seed={seeded}"
    ))
    metadata, _ = load_run_inputs(config)
    # Any 32 kHz stereo signal stands in for the enhanced one.
    enhanced = resample(0.5 * read(mini_dataset, "mixture.flac")[SEGMENT], SAMPLE_RATE, 32000)
    path = enhanced_path(config.path.exp_folder, SCENE, LISTENER)
    save_flac_signal(enhanced, path, 32000)
    enhanced = read_flac_signal(path)[0]

    # The reference: whole stem tracks with the scene's own gains (no averaging), summed,
    # levelled, then cut to the segment.
    gains = GAINS["gain_0001"]
    whole = sum(louder(read(mini_dataset, STEMS[s]), gains[s]) for s in STEMS)
    reference = levelled(whole, list(gains.values()))[SEGMENT]
    reference_ears = compressed(reference, config)

    calls = []

    def fake_haaqi(**kwargs):
        calls.append({**kwargs, "rng": np.random.get_state()})
        return 0.25 * len(calls)

    monkeypatch.setattr(evaluate_module, "compute_haaqi", fake_haaqi)
    np.random.seed(123)
    before = np.random.get_state()
    row = score_pair((SCENE, LISTENER), metadata, make_compressor(config), config)

    listener = metadata.listeners[LISTENER]
    assert [call["audiogram"] for call in calls] == [
        listener.audiogram_left, listener.audiogram_right
    ]
    np.random.seed(seed_from_text(SCENE))
    expected_state = np.random.get_state() if seeded else before
    for channel, call in enumerate(calls):
        assert call["processed_sample_rate"] == call["reference_sample_rate"] == 24000
        assert call["equalisation"] == 2
        assert call["level1"] == pytest.approx(
            65 - 20 * np.log10(compute_rms(reference[:, channel])), abs=1e-9
        )
        np.testing.assert_allclose(
            call["reference_signal"],
            resample(reference_ears[:, channel], SAMPLE_RATE, 24000),
            rtol=0, atol=1e-12,
        )
        np.testing.assert_array_equal(
            call["processed_signal"], resample(enhanced[:, channel], 32000, 24000)
        )
        assert call["rng"][2] == expected_state[2]
        np.testing.assert_array_equal(call["rng"][1], expected_state[1])
    assert row == {
        "scene": SCENE, "song": "mini_quartet_000", "listener": LISTENER,
        "left_haaqi": 0.25, "right_haaqi": 0.5, "avg_haaqi": 0.375,
    }


@pytest.fixture
def song_and_mixture(mini_dataset, oracle_config):
    """The song of `SCENE` and its mixture segment, `(samples, channels)`."""
    metadata, _ = load_run_inputs(oracle_config)
    return metadata.song_of(SCENE), read(mini_dataset, "mixture.flac")[SEGMENT]


def convtasnet_separator(tiny_checkpoints: Path, music_dir: Path, **settings):
    """The ConvTasNet separator of the tiny checkpoints (baseline settings, then `settings`)."""
    separator_config = {
        "type": "convtasnet", "causality": "noncausal", "checkpoint_dir": str(tiny_checkpoints),
        "device": "cpu", "add_residual": 0.1, "separation": {"segment": 10.0, "overlap": 0.1},
        **settings,
    }
    return build_separator(separator_config, music_dir, SAMPLE_RATE, ["Cello", "Violin"])


def test_convtasnet_adds_the_residual_share_and_passthrough_splits_the_mixture(
    mini_dataset, song_and_mixture, tiny_checkpoints
):
    song, mixture = song_and_mixture
    separator = convtasnet_separator(tiny_checkpoints, mini_dataset / "audio")
    estimates = separator(song, mixture)

    separated = separate_instruments(
        separator.models, mixture.T, SAMPLE_RATE, ["Violin", "Cello"], 10.0, 0.1, "cpu"
    )
    for source, instrument in (("source_1", "Violin"), ("source_2", "Violin"),
                               ("source_3", "Cello")):
        target, accompaniment = separated[instrument]
        assert estimates[source].shape == mixture.shape
        np.testing.assert_array_equal(
            estimates[source], (target + accompaniment * np.float32(0.1)).T
        )
        assert np.max(np.abs(accompaniment)) > 0
    without = convtasnet_separator(tiny_checkpoints, mini_dataset / "audio", add_residual=0.0)
    np.testing.assert_array_equal(without(song, mixture)["source_3"], separated["Cello"][0].T)

    shares = PassthroughSeparator()(song, mixture)
    np.testing.assert_allclose(sum(shares.values()), mixture, rtol=1e-6, atol=1e-7)


def test_wiener_filter_shares_a_repeated_instrument_and_sums_to_the_mixture(
    mini_dataset, song_and_mixture, tiny_checkpoints
):
    song, mixture = song_and_mixture
    baseline = convtasnet_separator(tiny_checkpoints, mini_dataset / "audio")
    filtered = convtasnet_separator(tiny_checkpoints, mini_dataset / "audio", wiener_filter=True)
    assert not baseline.wiener_filter and filtered.wiener_filter
    estimates = baseline(song, mixture)
    sources = filtered(song, mixture)

    assert list(sources) == list(estimates)
    for source in sources:
        assert sources[source].shape == mixture.shape and sources[source].dtype == np.float32
    np.testing.assert_array_equal(sources["source_1"], sources["source_2"])
    np.testing.assert_allclose(sum(sources.values()), mixture, atol=1e-5)
    assert np.max(np.abs(sources["source_3"] - estimates["source_3"])) > 1e-3


def test_wiener_filter_takes_back_what_an_estimate_leaked_from_another_source():
    time = np.arange(2 * 44100) / 44100
    low = 0.3 * np.sin(2 * np.pi * 440 * time)[:, None] * np.ones((1, 2))
    high = 0.2 * np.sin(2 * np.pi * 5000 * time)[:, None] * np.ones((1, 2))
    estimates = {"source_1": low + 0.3 * high, "source_2": high + 0.3 * low}
    sources = wiener_filter(estimates, low + high, {"source_1": "Cello", "source_2": "Flute"})

    middle = slice(4096, -4096)
    for source, truth in (("source_1", low), ("source_2", high)):
        leaked = np.linalg.norm((estimates[source] - truth)[middle])
        left = np.linalg.norm((sources[source] - truth)[middle])
        assert left < 0.6 * leaked  # about 0.5: masks of 1/1.09 and 0.09/1.09


def test_wiener_filter_is_refused_with_causal_models(mini_dataset, tiny_checkpoints):
    with pytest.raises(ValueError, match=r"wiener_filter.*93 ms.*5 ms"):
        convtasnet_separator(tiny_checkpoints, mini_dataset / "audio", causality="causal",
                             wiener_filter=True)
