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
from clarity.cad2.separators import OracleSeparator, PassthroughSeparator, build_separator
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


def test_convtasnet_adds_the_residual_share_and_passthrough_splits_the_mixture(
    mini_dataset, oracle_config, tiny_checkpoints
):
    metadata, _ = load_run_inputs(oracle_config)
    song = metadata.song_of(SCENE)
    mixture = read(mini_dataset, "mixture.flac")[SEGMENT]
    separator_config = {
        "type": "convtasnet", "causality": "noncausal", "checkpoint_dir": str(tiny_checkpoints),
        "device": "cpu", "add_residual": 0.1, "separation": {"segment": 10.0, "overlap": 0.1},
    }
    separator = build_separator(separator_config, mini_dataset / "audio", SAMPLE_RATE,
                                ["Cello", "Violin"])
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
    without = build_separator({**separator_config, "add_residual": 0.0},
                              mini_dataset / "audio", SAMPLE_RATE, ["Cello", "Violin"])
    np.testing.assert_array_equal(without(song, mixture)["source_3"], separated["Cello"][0].T)

    shares = PassthroughSeparator()(song, mixture)
    np.testing.assert_allclose(sum(shares.values()), mixture, rtol=1e-6, atol=1e-7)
