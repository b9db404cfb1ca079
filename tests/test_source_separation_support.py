"""get_device and separate_sources with the pyClarity 0.9.0 signatures (no torchaudio needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from official_separation_loop import official_loop
from torch import nn

from clarity.separation.inference import chunk_schedule
from clarity.utils.source_separation_support import get_device, separate_sources

SAMPLE_RATE = 1000


class PositionDependentModel(nn.Module):
    """Four sources whose values depend on where the chunk starts (running sums, squares), so
    a chunk cut at another place or faded elsewhere changes the result."""

    def forward(self, chunk: torch.Tensor) -> torch.Tensor:
        running = torch.cumsum(chunk, dim=-1) / chunk.shape[-1]
        return torch.stack([chunk, chunk**2, running, -0.5 * chunk + running], dim=1)

    forward_modules = forward  # the name official_loop calls


class Ones(nn.Module):
    """Two sources of ones: the output shows the fades themselves."""

    def forward(self, chunk: torch.Tensor) -> torch.Tensor:
        batch, channels, length = chunk.shape
        return torch.ones(batch, 2, channels, length)


class RandomSources(nn.Module):
    """Draws its four outputs from the legacy NumPy generator, one draw per call."""

    calls = 0

    def forward(self, chunk: torch.Tensor) -> torch.Tensor:
        type(self).calls += 1
        return torch.Tensor(np.random.uniform(size=(chunk.shape[0], 4, *chunk.shape[1:])))


def test_get_device_settings(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert get_device(None) == (torch.device("cpu"), "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    device, kind = get_device(None)
    assert (device, kind) == (torch.device("cuda"), "cuda")
    assert isinstance(device, torch.device) and device.index is None
    assert get_device("cpu") == (torch.device("cpu"), "cpu")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert get_device("gpu1") == (torch.device("cuda:1"), "cuda")
    assert get_device("gpu0") == (torch.device("cuda", 0), "cuda")


@pytest.mark.parametrize("setting", ["wrong", "cuda", "GPU0", "gpu", "gpu-1", "gpu2"])
def test_get_device_rejects_other_settings(monkeypatch, setting):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match="device"):
        get_device(setting)


@pytest.mark.parametrize(
    ("seconds", "segment", "overlap", "shape"),
    [
        (3.7, 1.0, 0.1, (1, 2)),  # several chunks
        (0.9, 1.0, 0.1, (1, 2)),  # one chunk shorter than a segment
        (2.2, 0.5, 0.25, (2, 1)),  # batch of two mono tracks
        (1.5, 0.5, 0.0, (1, 2)),  # no cross-fade
    ],
)
def test_separate_sources_matches_the_official_loop(seconds, segment, overlap, shape):
    generator = torch.Generator().manual_seed(4)
    mix = torch.randn(*shape, int(seconds * SAMPLE_RATE), generator=generator)
    model = PositionDependentModel()
    expected = official_loop(model, mix, SAMPLE_RATE, segment, overlap, number_sources=4)
    separated = separate_sources(model, mix, SAMPLE_RATE, segment, overlap)
    assert isinstance(separated, np.ndarray) and separated.dtype == np.float32
    assert separated.shape == (*shape[:1], 4, *shape[1:], mix.shape[-1])
    np.testing.assert_allclose(separated, expected.numpy(), rtol=0, atol=1e-6)


def test_track_without_batch_dimension_and_float64_array():
    mix = np.random.default_rng(5).normal(size=(2, 2500))  # float64 (channels, samples)
    model = PositionDependentModel()
    separated = separate_sources(model, mix, SAMPLE_RATE, segment=1.0, device="cpu")
    expected = official_loop(
        model, torch.from_numpy(mix[np.newaxis]).float(), SAMPLE_RATE, 1.0, 0.1, 4
    )
    assert separated.shape == (1, 4, 2, 2500)
    np.testing.assert_allclose(separated, expected.numpy(), rtol=0, atol=1e-6)
    # a channels-first view of a (samples, channels) array, even with negative strides
    strided = np.ascontiguousarray(mix[:, ::-1].T)[::-1].T
    assert strided.strides[1] < 0
    np.testing.assert_array_equal(separate_sources(model, strided, SAMPLE_RATE, 1.0), separated)


def test_linear_cross_fades_sum_to_one_and_a_lone_chunk_fades_out():
    """Ramps k / (n - 1): neighbours' fade-out and fade-in add up to 1 across each overlap; the
    last chunk is not faded out, but a single chunk is (the official loop only stops fading
    out once a later chunk reaches the end)."""
    several = separate_sources(Ones(), np.zeros((1, 3500)), SAMPLE_RATE, segment=1.0)
    np.testing.assert_allclose(several, 1.0, rtol=0, atol=1e-6)
    single = separate_sources(Ones(), np.zeros((1, 900)), SAMPLE_RATE, segment=1.0)
    fade = 100  # overlap 0.1 s at 1 kHz
    np.testing.assert_array_equal(single[..., : 900 - fade], 1.0)
    ramp = 1.0 - np.arange(fade) / (fade - 1)
    np.testing.assert_allclose(single[0, 0, 0, 900 - fade :], ramp, rtol=0, atol=1e-7)


def test_one_model_call_per_chunk_in_order():
    """A model drawing random outputs sees as many calls as the official loop makes (10 s
    segments, 0.1 s overlap by default), so the legacy NumPy draws stay in step."""
    length = 25 * SAMPLE_RATE
    np.random.seed(7)
    RandomSources.calls = 0
    separated = separate_sources(RandomSources(), np.zeros((1, 1, length)), SAMPLE_RATE)
    chunks = chunk_schedule(length, SAMPLE_RATE, segment=10.0, overlap=0.1)
    assert RandomSources.calls == len(chunks) == 3
    np.random.seed(7)
    first = np.random.uniform(size=(1, 4, 1, chunks[0].stop))
    head = chunks[1].start  # before the second chunk nothing overlaps the first
    np.testing.assert_allclose(separated[..., :head], first[..., :head], rtol=1e-6)


def test_a_model_returning_a_view_of_its_input_does_not_alter_the_mix():
    class Expand(nn.Module):
        def forward(self, chunk):
            return chunk.unsqueeze(1).expand(-1, 2, -1, -1)

    class Copy(nn.Module):
        def forward(self, chunk):
            return chunk.unsqueeze(1).repeat(1, 2, 1, 1)

    mix = np.random.default_rng(6).normal(size=(1, 2, 3000)).astype(np.float32)
    before = mix.copy()
    viewed = separate_sources(Expand(), mix, SAMPLE_RATE, segment=1.0)
    np.testing.assert_array_equal(mix, before)
    np.testing.assert_array_equal(viewed, separate_sources(Copy(), mix, SAMPLE_RATE, 1.0))


def test_bad_mixtures_and_model_outputs_raise_value_error():
    with pytest.raises(ValueError, match="batch, channels, samples"):
        separate_sources(Ones(), np.zeros((1, 1, 2, 500)), SAMPLE_RATE)

    class WrongLength(nn.Module):
        def forward(self, chunk):
            return torch.zeros(chunk.shape[0], 2, chunk.shape[1], chunk.shape[2] - 1)

    with pytest.raises(ValueError, match="model returned shape"):
        separate_sources(WrongLength(), np.zeros((1, 2, 500)), SAMPLE_RATE)
    with pytest.raises(ValueError, match="not longer than"):
        separate_sources(Ones(), np.zeros((1, 2, 50)), SAMPLE_RATE)  # 0.1 s fade is 100
