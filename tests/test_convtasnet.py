"""Conv-TasNet: published checkpoint layout, fused inference, causality, save/load round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from clarity.separation.convtasnet import ConvTasNetConfig, ConvTasNetStereo

torch.set_num_threads(1)

REFERENCE = Path(__file__).parent / "data" / "reference" / "convtasnet_checkpoint_format.json"
TINY = {"N": 12, "L": 8, "B": 10, "H": 14, "P": 3, "X": 3, "R": 2, "C": 2, "samplerate": 8000}


@pytest.fixture(scope="module")
def published_format() -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


def perturbed(model: ConvTasNetStereo, seed: int = 0) -> ConvTasNetStereo:
    """Give norms and PReLUs non-default values so every parameter matters."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() <= 1 or name.endswith(("gamma", "beta")):
                noise = torch.randn(parameter.shape, generator=generator)
                parameter.add_(0.2 * noise)
    return model.eval()


@pytest.mark.parametrize("kind", ["NonCausal", "Causal"])
def test_published_size_has_exact_keys_shapes_and_parameter_count(published_format, kind):
    expected = published_format[kind]
    model = ConvTasNetStereo(**expected["config_json"])
    shapes = {key: list(value.shape) for key, value in model.state_dict().items()}
    assert list(shapes) == list(expected["state_dict"])
    assert shapes == expected["state_dict"]
    assert sum(p.numel() for p in model.parameters()) == expected["parameter_count"] == 6_595_120


@pytest.mark.parametrize("kind", ["NonCausal", "Causal"])
def test_checkpoint_in_published_format_loads(tmp_path, published_format, kind):
    expected = published_format[kind]
    generator = torch.Generator().manual_seed(1)
    state = {
        key: 0.05 * torch.randn(shape, generator=generator)
        for key, shape in expected["state_dict"].items()
    }
    folder = tmp_path / f"ConvTasNet_Violin_{kind}"
    folder.mkdir()
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(expected["config_json"]), encoding="utf-8")

    model = ConvTasNetStereo.from_pretrained(folder)
    assert not model.training
    assert model.causal == (kind == "Causal")
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    mixture = 0.1 * torch.randn(1, 2, 2000, generator=generator)
    with torch.no_grad():
        reference = model.forward_modules(mixture)
        fused = model(mixture)
    assert fused.shape == (1, 2, 2, 2000)
    torch.testing.assert_close(fused, reference, rtol=0, atol=1e-5)


def test_save_pretrained_writes_published_files_and_round_trips(tmp_path, published_format):
    model = perturbed(ConvTasNetStereo(**TINY))
    folder = model.save_pretrained(tmp_path / "export")
    assert sorted(p.name for p in folder.iterdir()) == published_format["NonCausal"]["saved_files"]
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert set(config) == set(published_format["NonCausal"]["config_json"])
    assert config["N"] == TINY["N"] and config["causal"] is False

    loaded = ConvTasNetStereo.from_pretrained(folder)
    mixture = torch.randn(2, 2, 1000)
    with torch.no_grad():
        torch.testing.assert_close(loaded(mixture), model(mixture), rtol=0, atol=0)
    assert set(load_file(str(folder / "model.safetensors"))) == set(model.state_dict())


@pytest.mark.parametrize(
    ("norm_type", "causal", "mask_nonlinear", "batch"),
    [("gLN", False, "relu", 1), ("gLN", False, "softmax", 3), ("cLN", True, "relu", 2),
     ("cLN", False, "relu", 1), ("gLN", True, "relu", 2)],
)  # fmt: skip
def test_fused_inference_matches_layer_by_layer_forward(norm_type, causal, mask_nonlinear, batch):
    torch.manual_seed(3)
    model = perturbed(
        ConvTasNetStereo(**TINY, norm_type=norm_type, causal=causal, mask_nonlinear=mask_nonlinear)
    )
    # 997 samples: the last encoder frame is incomplete, so the output end is zero padded
    mixture = torch.randn(batch, 2, 997) + 0.3
    with torch.no_grad():
        reference = model.forward_modules(mixture)
    fused = model.infer(mixture)
    assert fused.shape == (batch, 2, 2, 997)
    torch.testing.assert_close(fused, reference, rtol=0, atol=1e-5)
    assert reference.abs().max() > 1e-2  # a meaningful comparison


def test_gradients_flow_through_forward_in_training_mode():
    model = ConvTasNetStereo(**TINY).train()
    mixture = torch.randn(2, 2, 400)
    out = model(mixture)
    assert out.requires_grad
    out.abs().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_causal_output_ignores_input_more_than_5_ms_ahead():
    sample_rate = 44100
    torch.manual_seed(4)
    model = perturbed(ConvTasNetStereo(**{**TINY, "samplerate": sample_rate}, causal=True,
                                       norm_type="cLN"))  # fmt: skip
    mixture = torch.randn(1, 2, 4000)
    t = 2000
    horizon = int(0.005 * sample_rate)
    changed = mixture.clone()
    changed[..., t + horizon :] = torch.randn(1, 2, 4000 - t - horizon)
    with torch.no_grad():
        before = model.infer(mixture)
        after = model.infer(changed)
        reference_after = model.forward_modules(changed)
    torch.testing.assert_close(after[..., : t + 1], before[..., : t + 1], rtol=0, atol=1e-6)
    torch.testing.assert_close(reference_after, after, rtol=0, atol=1e-5)
    assert (after[..., t + horizon + 40 :] - before[..., t + horizon + 40 :]).abs().max() > 1e-3


def test_non_causal_output_depends_on_the_future():
    torch.manual_seed(5)
    model = perturbed(ConvTasNetStereo(**TINY))
    mixture = torch.randn(1, 2, 4000)
    changed = mixture.clone()
    changed[..., 3000:] += 1.0
    with torch.no_grad():
        difference = (model(changed)[..., :2000] - model(mixture)[..., :2000]).abs().max()
    assert difference > 1e-4


def _tiny_folder(tmp_path: Path) -> Path:
    return ConvTasNetStereo(**TINY).save_pretrained(tmp_path / "ConvTasNet_Cello_NonCausal")


def test_wrong_shape_error_names_the_key_and_both_shapes(tmp_path):
    folder = _tiny_folder(tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    key = "separator.network.2.0.1.net.0.weight"
    state[key] = torch.zeros(7, 10, 1)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match=r"shape mismatch") as error:
        ConvTasNetStereo.from_pretrained(folder)
    assert key in str(error.value)
    assert "[7, 10, 1]" in str(error.value) and "[14, 10, 1]" in str(error.value)


def test_missing_and_unexpected_keys_are_named(tmp_path):
    folder = _tiny_folder(tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    state.pop("decoder.basis_signals.weight")
    state["separator.extra.weight"] = torch.zeros(1)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ValueError) as error:
        ConvTasNetStereo.from_pretrained(folder)
    message = str(error.value)
    assert "missing keys ['decoder.basis_signals.weight']" in message
    assert "unexpected keys ['separator.extra.weight']" in message


def test_bad_config_and_missing_files_raise_value_error(tmp_path):
    folder = _tiny_folder(tmp_path)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    (folder / "config.json").write_text(json.dumps({**config, "kernel": 3}), encoding="utf-8")
    with pytest.raises(ValueError, match="unknown ConvTasNet config keys \\['kernel'\\]"):
        ConvTasNetStereo.from_pretrained(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ValueError, match=r"model\.safetensors"):
        ConvTasNetStereo.from_pretrained(folder)
    with pytest.raises(ValueError, match="does not exist"):
        ConvTasNetStereo.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="'P' must be odd"):
        ConvTasNetConfig(P=4)
    with pytest.raises(ValueError, match="norm_type"):
        ConvTasNetStereo(norm_type="BN")


def test_input_shape_is_checked():
    model = ConvTasNetStereo(**TINY)
    with pytest.raises(ValueError, match="audio_channels=2"):
        model.infer(torch.zeros(1, 1, 100))
