"""Conv-TasNet: published checkpoint layout, one forward and its inference transformations,
causality, save/load round trip."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from clarity.separation.convtasnet import (
    CausalTrim,
    ChannelwiseLayerNorm,
    ConvTasNetConfig,
    ConvTasNetStereo,
    GlobalLayerNorm,
)
from clarity.separation.fast_inference import (
    DepthwiseConv,
    GlobalNormDepthwise,
    GlobalNormPointwise,
    PointwiseConv,
    fold_norms_into_pointwise_convs,
    make_activations_in_place,
    prepare_for_inference,
)

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
        reference = model(mixture)
    fast = model.infer(mixture)
    assert fast.shape == (1, 2, 2, 2000)
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-4)
    assert reference.abs().max() > 1e-2


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
def test_prepared_model_matches_the_forward(norm_type, causal, mask_nonlinear, batch):
    torch.manual_seed(3)
    model = perturbed(
        ConvTasNetStereo(**TINY, norm_type=norm_type, causal=causal, mask_nonlinear=mask_nonlinear)
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # 997 samples: the last encoder frame is incomplete, so the output end is zero padded
    mixture = torch.randn(batch, 2, 997) + 0.3
    with torch.no_grad():
        reference = model(mixture)
    prepared = prepare_for_inference(model)
    with torch.inference_mode():
        fast = prepared(mixture)
    assert fast.shape == (batch, 2, 2, 997)
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-5)
    assert reference.abs().max() > 1e-2  # a meaningful comparison
    torch.testing.assert_close(model.infer(mixture), reference, rtol=0, atol=1e-5)
    for key, value in model.state_dict().items():  # the model itself is not transformed
        assert torch.equal(value, before[key]), key
    kinds = {type(m) for m in prepared.modules()}
    assert nn.PReLU not in kinds and nn.Conv1d in kinds  # the encoder stays a convolution
    assert {PointwiseConv, DepthwiseConv, nn.LeakyReLU} <= kinds
    fused = {GlobalNormDepthwise, GlobalNormPointwise}
    assert fused <= kinds if norm_type == "gLN" else not fused & kinds
    assert CausalTrim not in kinds
    assert not any(p.requires_grad for p in prepared.parameters())


@pytest.mark.parametrize("norm_type", ["gLN", "cLN"])
def test_norm_folding_alone_keeps_classes_and_output(norm_type):
    """Folding by module traversal: same norm classes without affine, plain Conv1d with bias."""
    model = perturbed(ConvTasNetStereo(**TINY, norm_type=norm_type), seed=7)
    folded = copy.deepcopy(model)
    fold_norms_into_pointwise_convs(folded)
    norms = [m for m in folded.modules() if isinstance(m, (GlobalLayerNorm, ChannelwiseLayerNorm))]
    without_affine = [m for m in norms if m.gamma is None]
    assert len(without_affine) == 1 + TINY["X"] * TINY["R"]  # first cLN, each block's 2nd norm
    assert len(norms) - len(without_affine) == TINY["X"] * TINY["R"]  # before the padded conv
    biased = [m for m in folded.modules() if isinstance(m, nn.Conv1d) and m.bias is not None]
    assert len(biased) == len(without_affine)
    mixture = torch.randn(2, 2, 700)
    with torch.no_grad():
        torch.testing.assert_close(folded(mixture), model(mixture), rtol=0, atol=1e-5)


def test_in_place_activation_is_the_prelu():
    prelu = nn.PReLU()
    with torch.no_grad():
        prelu.weight.fill_(0.3)
    holder = nn.Sequential(prelu)
    make_activations_in_place(holder)
    assert isinstance(holder[0], nn.LeakyReLU) and holder[0].inplace
    x = torch.randn(3, 5, 7)
    with torch.no_grad():
        torch.testing.assert_close(holder(x.clone()), prelu(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("taps", "dilation", "causal"), [(3, 1, False), (3, 4, True), (5, 2, False), (2, 3, True)]
)
def test_cpu_convolutions_match_conv1d(taps, dilation, causal):
    torch.manual_seed(8)
    channels, frames = 6, 40
    pad = (taps - 1) * dilation if causal else (taps - 1) * dilation // 2
    conv = nn.Conv1d(channels, channels, taps, padding=pad, dilation=dilation, groups=channels,
                     bias=False)  # fmt: skip
    x = torch.randn(2, channels, frames)
    with torch.no_grad():
        expected = conv(x)
        if causal:
            expected = expected[..., :frames]
        right = 0 if causal else pad
        torch.testing.assert_close(DepthwiseConv(conv, pad, right)(x), expected, rtol=0,
                                   atol=1e-6)  # fmt: skip
        pointwise = nn.Conv1d(channels, 4, 1, bias=True)
        torch.testing.assert_close(PointwiseConv(pointwise)(x), pointwise(x), rtol=0, atol=1e-6)


@pytest.mark.parametrize("offset", [0.0, 3.0])
def test_global_norm_fused_with_the_next_convolution(offset):
    """gLN + depthwise (zero padding at the edges) and gLN + pointwise, also for inputs whose
    mean is large against their spread (the variance is E[y^2] - mean^2)."""
    torch.manual_seed(11)
    channels, frames = 6, 50
    norm = GlobalLayerNorm(channels)
    with torch.no_grad():
        norm.gamma.add_(0.3 * torch.randn_like(norm.gamma))
        norm.beta.add_(0.3 * torch.randn_like(norm.beta))
    depthwise = nn.Conv1d(channels, channels, 3, padding=4, dilation=4, groups=channels,
                          bias=False)  # fmt: skip
    pointwise = nn.Conv1d(channels, 5, 1, bias=True)
    y = torch.randn(3, channels, frames) + offset
    with torch.no_grad():
        fused_depthwise = GlobalNormDepthwise(norm, DepthwiseConv(depthwise, 4, 4))
        torch.testing.assert_close(fused_depthwise(y), depthwise(norm(y)), rtol=0, atol=1e-5)
        fused_pointwise = GlobalNormPointwise(norm, PointwiseConv(pointwise))
        torch.testing.assert_close(fused_pointwise(y), pointwise(norm(y)), rtol=0, atol=1e-5)


def test_published_size_prepared_matches_forward():
    torch.manual_seed(9)
    model = perturbed(ConvTasNetStereo())
    mixture = 0.1 * torch.randn(1, 2, 3000)
    with torch.no_grad():
        reference = model(mixture)
    torch.testing.assert_close(model.infer(mixture), reference, rtol=0, atol=1e-4)


def test_bfloat16_autocast_on_cpu_runs_and_stays_close():
    torch.manual_seed(10)
    model = perturbed(ConvTasNetStereo(**TINY))
    prepared = prepare_for_inference(model)
    mixture = torch.randn(1, 2, 800)
    with torch.inference_mode():
        reference = prepared(mixture)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = prepared(mixture)
    assert low.shape == reference.shape
    error = (low.float() - reference).norm() / reference.norm()
    assert 0 < error < 0.05  # bfloat16 rounding (8-bit mantissa), not a different function


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
    before = model.infer(mixture)
    after = model.infer(changed)
    with torch.no_grad():
        reference_after = model(changed)
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


def test_model_is_built_from_one_config():
    config = ConvTasNetConfig(**TINY, norm_type="cLN", causal=True)
    model = ConvTasNetStereo(config)
    assert model.config is config and model.causal and model.N == config.N
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {
        k: tuple(v.shape) for k, v in ConvTasNetStereo(**TINY, norm_type="cLN", causal=True)
        .state_dict().items()
    }  # fmt: skip
    with pytest.raises(ValueError, match="not both"):
        ConvTasNetStereo(config, N=4)
