"""Chunked separation vs the official loop, per-instrument helper, checkpoint folders."""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest
import torch
from official_separation_loop import official_loop
from torch import nn

from clarity.separation import checkpoints as checkpoints_module
from clarity.separation.checkpoints import (
    INSTRUMENTS,
    checkpoint_name,
    load_separation_models,
    validate_checkpoint_dir,
)
from clarity.separation.convtasnet import ConvTasNetStereo
from clarity.separation.inference import (
    chunk_schedule,
    resolve_device,
    separate_instruments,
    separate_sources,
)
from clarity.separation.stacked import StackedModels, stackable

torch.set_num_threads(1)

SAMPLE_RATE = 8000
TINY = {"N": 12, "L": 8, "B": 10, "H": 14, "P": 3, "X": 2, "R": 2, "C": 2}


@pytest.fixture(scope="module")
def model() -> ConvTasNetStereo:
    torch.manual_seed(0)
    model = ConvTasNetStereo(**TINY, samplerate=SAMPLE_RATE).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith(("gamma", "beta")) or parameter.dim() == 1:
                parameter.add_(0.2 * torch.randn_like(parameter))
    return model


@pytest.mark.parametrize(
    ("seconds", "segment", "overlap", "batch"),
    [(2.35, 0.5, 0.1, 1), (1.7, 0.3, 0.25, 2), (0.4, 0.5, 0.1, 1), (1.1, 0.5, 0.0, 1)],
)
def test_chunked_separation_matches_the_official_loop(model, seconds, segment, overlap, batch):
    generator = torch.Generator().manual_seed(1)
    mix = 0.2 * torch.randn(batch, 2, int(seconds * SAMPLE_RATE), generator=generator)
    expected = official_loop(model, mix, SAMPLE_RATE, segment, overlap)
    separated = separate_sources(model, mix, SAMPLE_RATE, segment, overlap, number_sources=2)
    assert isinstance(separated, torch.Tensor)
    assert separated.shape == expected.shape
    torch.testing.assert_close(separated, expected, rtol=0, atol=1e-5)
    assert expected.abs().max() > 1e-2


@pytest.mark.parametrize("norm_type", ["gLN", "cLN"])
def test_chunks_stacked_into_one_call_give_the_official_loop(norm_type):
    """chunks_per_call > 1 (for GPUs) stacks chunks of one length on the batch axis; each is
    normalised on its own, so the output is that of the official one-chunk-per-call loop."""
    torch.manual_seed(2)
    model = ConvTasNetStereo(**TINY, norm_type=norm_type, samplerate=SAMPLE_RATE).eval()
    generator = torch.Generator().manual_seed(3)
    mix = 0.2 * torch.randn(2, 2, int(3.3 * SAMPLE_RATE), generator=generator)
    expected = official_loop(model, mix, SAMPLE_RATE, 0.5, 0.1)
    schedule = chunk_schedule(mix.shape[-1], SAMPLE_RATE, 0.5, 0.1)
    runs = [len(list(run)) for _, run in itertools.groupby(c.stop - c.start for c in schedule)]
    assert runs == [1, 5]  # a first chunk, then five of one length
    calls = []
    model.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    for chunks_per_call, batches in ((3, [2, 6, 4]), (100, [2, 10])):  # batch 2 x chunks
        calls.clear()
        stacked = separate_sources(model, mix, SAMPLE_RATE, 0.5, 0.1, number_sources=2,
                                   chunks_per_call=chunks_per_call)  # fmt: skip
        torch.testing.assert_close(stacked, expected, rtol=0, atol=1e-5)
        assert calls == batches


def test_bfloat16_autocast_is_close_to_float32(model):
    mix = 0.2 * torch.randn(1, 2, 2 * SAMPLE_RATE, generator=torch.Generator().manual_seed(4))
    exact = separate_sources(model, mix, SAMPLE_RATE, 0.5, 0.1, number_sources=2)
    rounded = separate_sources(model, mix, SAMPLE_RATE, 0.5, 0.1, number_sources=2,
                               precision="bfloat16")  # fmt: skip
    assert rounded.dtype == torch.float32
    error = (rounded - exact).norm() / exact.norm()
    assert 0 < error < 0.05  # bfloat16 keeps 8 bits of mantissa: not exact, but close
    with pytest.raises(ValueError, match=r"precision must be one of .*got 'half'"):
        separate_sources(model, mix, SAMPLE_RATE, 0.5, 0.1, precision="half")
    with pytest.raises(ValueError, match="chunks_per_call must be >= 1"):
        separate_sources(model, mix, SAMPLE_RATE, 0.5, 0.1, chunks_per_call=0)


def test_array_input_gives_array_output_and_generic_models_work(model):
    mix = np.random.default_rng(2).normal(0, 0.2, (2, 5000)).astype(np.float32)

    class LayerByLayer(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, chunk):
            return self.inner.forward_modules(chunk)

    fused = separate_sources(model, mix, SAMPLE_RATE, segment=0.2, overlap=0.1)
    generic = separate_sources(LayerByLayer(model), mix, SAMPLE_RATE, segment=0.2, overlap=0.1)
    assert isinstance(fused, np.ndarray) and fused.shape == (1, 2, 2, 5000)
    np.testing.assert_allclose(fused, generic, rtol=0, atol=1e-5)


def test_chunk_schedule_covers_the_signal_with_matching_fades():
    chunks = chunk_schedule(length=20_000, sample_rate=SAMPLE_RATE, segment=0.5, overlap=0.1)
    assert chunks[0].start == 0 and chunks[0].fade_in == 0
    assert chunks[-1].stop == 20_000 and chunks[-1].fade_out == 0
    for previous, current in itertools.pairwise(chunks):
        assert current.start == previous.stop - 800  # overlap of 0.1 s at 8 kHz
        assert current.fade_in == previous.fade_out == 800
    with pytest.raises(ValueError, match="overlap"):
        chunk_schedule(100, SAMPLE_RATE, segment=0.5, overlap=1.5)


def test_bad_arguments_raise_value_error(model, monkeypatch):
    with pytest.raises(ValueError, match="number_sources=4"):
        separate_sources(model, torch.zeros(1, 2, 1000), SAMPLE_RATE, number_sources=4)
    with pytest.raises(ValueError, match="batch, channels, samples"):
        separate_sources(model, torch.zeros(1, 1, 2, 1000), SAMPLE_RATE)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        separate_sources(model, torch.zeros(1, 2, 1000), SAMPLE_RATE, device="cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")
    assert resolve_device(None) == torch.device("cpu")


def test_bare_cuda_resolves_to_the_index_models_are_moved_to(monkeypatch):
    """model.to("cuda") puts parameters on "cuda:0"; separate_sources compares with that."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device("cuda") == torch.device("cuda:0")
    assert resolve_device(None, default="cuda") == torch.device("cuda:0")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert resolve_device("cpu") == torch.device("cpu")


class CountingModel(ConvTasNetStereo):
    """Counts fused inference calls (one per chunk)."""

    calls = 0

    def infer(self, mixture, workspace=None):
        type(self).calls += 1
        return super().infer(mixture, workspace)


def test_separate_instruments_runs_each_distinct_model_once(model):
    violin = CountingModel(**TINY, samplerate=SAMPLE_RATE).eval()
    cello = perturbed_copy(model)
    mixture = np.random.default_rng(3).normal(0, 0.2, (2, 3000)).astype(np.float32)
    estimates = separate_instruments(
        {"Violin": violin, "Cello": cello, "Flute": model},
        mixture,
        SAMPLE_RATE,
        ["Violin", "Violin", "Cello"],
        segment=1.0,
        overlap=0.1,
        device="cpu",
    )
    assert list(estimates) == ["Violin", "Cello"]
    assert CountingModel.calls == 1  # 3000 samples fit in one chunk; the second violin reuses it
    target, accompaniment = estimates["Cello"]
    assert target.shape == accompaniment.shape == (2, 3000) and target.dtype == np.float32
    expected = separate_sources(cello, mixture, SAMPLE_RATE, segment=1.0, overlap=0.1)
    np.testing.assert_array_equal(target, expected[0, 0])
    with pytest.raises(ValueError, match=r"no separation model for instruments \['Oboe'\]"):
        separate_instruments({"Violin": violin}, mixture, SAMPLE_RATE, ["Oboe"])


def test_models_stacked_into_one_call_give_the_estimates_of_one_model_at_a_time(model):
    """models_per_call > 1 (for GPUs) runs the models of one architecture as one vmapped call;
    a model of another architecture runs on its own."""
    torch.manual_seed(5)
    other_size = ConvTasNetStereo(**{**TINY, "H": 16}, samplerate=SAMPLE_RATE).eval()
    models = {"Violin": model, "Cello": perturbed_copy(model), "Flute": other_size}
    mixture = np.random.default_rng(4).normal(0, 0.2, (2, 3000)).astype(np.float32)
    instruments = ["Flute", "Violin", "Cello", "Violin"]
    options = {"segment": 0.2, "overlap": 0.1, "device": "cpu"}  # 2 chunks
    one_at_a_time = separate_instruments(models, mixture, SAMPLE_RATE, instruments, **options)
    stacked = separate_instruments(models, mixture, SAMPLE_RATE, instruments, **options,
                                   models_per_call=8)  # fmt: skip
    assert list(stacked) == list(one_at_a_time) == ["Flute", "Violin", "Cello"]
    for instrument, (target, accompaniment) in stacked.items():
        np.testing.assert_allclose(target, one_at_a_time[instrument][0], rtol=0, atol=1e-5)
        np.testing.assert_allclose(accompaniment, one_at_a_time[instrument][1], rtol=0, atol=1e-5)
    assert np.abs(stacked["Violin"][0] - stacked["Cello"][0]).max() > 1e-2

    pieces = torch.from_numpy(mixture[np.newaxis, :, :1000])
    with torch.inference_mode():
        outputs = StackedModels([models["Violin"], models["Cello"]])(pieces)
        expected = torch.cat([models["Violin"](pieces), models["Cello"](pieces)], dim=1)
    assert outputs.shape == (1, 4, 2, 1000)
    torch.testing.assert_close(outputs, expected, rtol=0, atol=1e-5)
    assert not stackable(model, other_size)
    with pytest.raises(ValueError, match=r"model 1 .* cannot be stacked with model 0"):
        StackedModels([model, other_size])
    with pytest.raises(ValueError, match="models_per_call must be >= 1"):
        separate_instruments(models, mixture, SAMPLE_RATE, instruments, models_per_call=0)


def perturbed_copy(model: ConvTasNetStereo) -> ConvTasNetStereo:
    copy = ConvTasNetStereo(**TINY, samplerate=SAMPLE_RATE).eval()
    copy.load_state_dict(model.state_dict())
    with torch.no_grad():
        copy.decoder.basis_signals.weight.mul_(-1.5)
    return copy


def write_checkpoints(root, instruments, causality="noncausal"):
    causal = causality == "causal"
    for index, instrument in enumerate(instruments):
        torch.manual_seed(index)
        model = ConvTasNetStereo(**TINY, causal=causal, norm_type="cLN" if causal else "gLN")
        model.save_pretrained(root / checkpoint_name(instrument, causality))


def test_checkpoint_names_and_causality():
    assert checkpoint_name("Violin", "causal") == "ConvTasNet_Violin_Causal"
    assert checkpoint_name("Sax", "noncausal") == "ConvTasNet_Sax_NonCausal"
    with pytest.raises(ValueError, match="causality"):
        checkpoint_name("Sax", "Causal")
    with pytest.raises(ValueError, match="unknown instruments"):
        checkpoint_name("Piano", "causal")
    with pytest.raises(ValueError, match="causality"):
        load_separation_models("semi", checkpoint_dir=None)


def test_missing_checkpoints_are_all_listed_before_loading(tmp_path, monkeypatch):
    write_checkpoints(tmp_path, ["Cello", "Flute"])
    (tmp_path / "ConvTasNet_Flute_NonCausal" / "model.safetensors").unlink()
    loads = []
    monkeypatch.setattr(
        checkpoints_module.ConvTasNetStereo, "from_pretrained", lambda *a, **k: loads.append(a)
    )
    with pytest.raises(ValueError) as error:
        load_separation_models("noncausal", tmp_path, ["Cello", "Flute", "Oboe", "Violin"])
    message = str(error.value)
    assert "ConvTasNet_Oboe_NonCausal" in message and "ConvTasNet_Violin_NonCausal" in message
    assert str(tmp_path / "ConvTasNet_Flute_NonCausal" / "model.safetensors") in message
    assert "Cello" not in message
    assert loads == []  # nothing was loaded


@pytest.mark.parametrize("force", [False, True])
def test_hub_ids_and_force_download_reach_from_pretrained(monkeypatch, force):
    calls = []

    def fake_from_pretrained(source, **options):
        calls.append((source, options))
        return source

    monkeypatch.setattr(
        checkpoints_module.ConvTasNetStereo, "from_pretrained", fake_from_pretrained
    )
    load_separation_models("causal", None, ["Oboe", "Sax"], force_download=force)
    assert [source for source, _ in calls] == [
        "cadenzachallenge/ConvTasNet_Oboe_Causal",
        "cadenzachallenge/ConvTasNet_Sax_Causal",
    ]
    assert all(options["force_download"] is force for _, options in calls)


def test_load_separation_models_from_a_local_folder(tmp_path):
    write_checkpoints(tmp_path, ["Cello", "Violin"], causality="causal")
    models = load_separation_models("causal", tmp_path, ["Violin", "Cello", "Violin"])
    assert list(models) == ["Violin", "Cello"]
    assert all(m.causal and not m.training for m in models.values())
    folders = validate_checkpoint_dir(tmp_path, "causal", ["Cello"])
    assert folders == {"Cello": tmp_path / "ConvTasNet_Cello_Causal"}
    with pytest.raises(ValueError, match="ConvTasNet_Bassoon_Causal"):
        validate_checkpoint_dir(tmp_path, "causal")  # all eight by default
    assert len(INSTRUMENTS) == 8


def test_causal_flag_of_config_must_match_the_requested_causality(tmp_path):
    write_checkpoints(tmp_path, ["Cello"], causality="noncausal")
    source = tmp_path / "ConvTasNet_Cello_NonCausal"
    source.rename(tmp_path / "ConvTasNet_Cello_Causal")
    with pytest.raises(ValueError, match="causal=False, expected True"):
        validate_checkpoint_dir(tmp_path, "causal", ["Cello"])
    config_path = tmp_path / "ConvTasNet_Cello_Causal" / "config.json"
    config_path.write_text(json.dumps({"causal": True, "R": "x"}), encoding="utf-8")
    with pytest.raises(ValueError, match="'R' must be a positive int"):
        load_separation_models("causal", tmp_path, ["Cello"])


@pytest.mark.parametrize("damage", ["cut short", "not safetensors"])
def test_a_corrupt_weights_file_is_named_before_loading(tmp_path, damage):
    write_checkpoints(tmp_path, ["Cello"])
    weights = tmp_path / "ConvTasNet_Cello_NonCausal" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:4] if damage == "cut short" else b"\xff" * 64 + data)
    with pytest.raises(ValueError, match=rf"unreadable {re.escape(str(weights))}: not a complete "
                                         "safetensors file"):
        validate_checkpoint_dir(tmp_path, "noncausal", ["Cello"])
