"""The official CAD2 Task 2 chunked separation, written plainly, as the yardstick that
`clarity.separation.inference.separate_sources` is compared with (tests) and timed against
(benchmarks/bench_separation.py).

`official_loop` is the recipe's chunk-and-fade loop; `official_convtasnet_forward` is the
arithmetic of the official recipe's Conv-TasNet, layer after layer (norm statistics as two
means, ``pow(var + eps, 0.5)``, PReLU, convolutions channels first, overlap-add by
``index_add``), run on the parameters of one of our models.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F  # noqa: N812 (the usual torch alias)

EPS = 1e-8


def official_loop(
    model: torch.nn.Module,
    mix: torch.Tensor,
    sample_rate: int,
    segment: float = 6.0,
    overlap: float = 0.1,
    number_sources: int = 2,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """The official CAD2 loop written plainly (torchaudio linear Fade over the whole chunk).

    Each chunk goes through ``forward`` (default: ``model``) under ``torch.no_grad``.
    """
    forward = model if forward is None else forward
    batch, channels, length = mix.shape
    chunk_len = int(sample_rate * segment * (1 + overlap))
    overlap_frames = overlap * sample_rate
    fade_in_len, fade_out_len = 0, int(overlap_frames)
    final = torch.zeros(batch, number_sources, channels, length)
    start, end = 0, chunk_len
    while start < length - overlap_frames:
        with torch.no_grad():
            out = forward(mix[:, :, start:end])
        n = out.shape[-1]
        fade_in = torch.cat([torch.linspace(0, 1, fade_in_len), torch.ones(n - fade_in_len)])
        fade_out = torch.cat([torch.ones(n - fade_out_len), 1 - torch.linspace(0, 1, fade_out_len)])
        final[:, :, :, start:end] += fade_in * fade_out * out
        if start == 0:
            fade_in_len = int(overlap_frames)
            start += int(chunk_len - overlap_frames)
        else:
            start += chunk_len
        end += chunk_len
        if end >= length:
            fade_out_len = 0
    return final


def _norm(y: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, norm_type: str):
    if norm_type == "gLN":
        mean = y.mean(dim=1, keepdim=True).mean(dim=2, keepdim=True)
        var = torch.pow(y - mean, 2).mean(dim=1, keepdim=True).mean(dim=2, keepdim=True)
    else:
        mean = torch.mean(y, dim=1, keepdim=True)
        var = torch.var(y, dim=1, keepdim=True, unbiased=False)
    return gamma * (y - mean) / torch.pow(var + EPS, 0.5) + beta


def _overlap_and_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """(..., n_frames, frame_length) -> (..., hop * (n_frames - 1) + frame_length)."""
    *outer, n_frames, frame_length = frames.shape
    sub = torch.gcd(torch.tensor(frame_length), torch.tensor(hop)).item()
    n_out = (hop * (n_frames - 1) + frame_length) // sub
    index = torch.arange(n_out).unfold(0, frame_length // sub, hop // sub).reshape(-1)
    result = frames.new_zeros(*outer, n_out, sub)
    result.index_add_(-2, index, frames.reshape(*outer, -1, sub))
    return result.reshape(*outer, -1)


def official_convtasnet_forward(model: torch.nn.Module, mixture: torch.Tensor) -> torch.Tensor:
    """The official Conv-TasNet forward on the parameters of a ``ConvTasNetStereo``."""
    c = model.config
    params = dict(model.named_parameters())
    mixture_w = F.relu(F.conv1d(mixture, params["encoder.conv1d_U.weight"], stride=c.L // 2))
    net = "separator.network"
    x = _norm(mixture_w, params[f"{net}.0.gamma"], params[f"{net}.0.beta"], "cLN")
    x = F.conv1d(x, params[f"{net}.1.weight"])
    sep = 1 if c.causal else 0  # the causal trim shifts the module indices by one
    for r in range(c.R):
        for b in range(c.X):
            p = f"{net}.2.{r}.{b}.net"
            dilation = 2**b
            pad = (c.P - 1) * dilation if c.causal else (c.P - 1) * dilation // 2
            y = F.conv1d(x, params[f"{p}.0.weight"])
            y = F.prelu(y, params[f"{p}.1.weight"])
            y = _norm(y, params[f"{p}.2.gamma"], params[f"{p}.2.beta"], c.norm_type)
            y = F.conv1d(y, params[f"{p}.3.net.0.weight"], padding=pad, dilation=dilation,
                         groups=c.H)  # fmt: skip
            if c.causal:
                y = y[:, :, :-pad]
            y = F.prelu(y, params[f"{p}.3.net.{1 + sep}.weight"])
            y = _norm(y, params[f"{p}.3.net.{2 + sep}.gamma"], params[f"{p}.3.net.{2 + sep}.beta"],
                      c.norm_type)  # fmt: skip
            y = F.conv1d(y, params[f"{p}.3.net.{3 + sep}.weight"])
            x = y + x
    score = F.conv1d(x, params[f"{net}.3.weight"])
    batch, n_filters, n_frames = mixture_w.shape
    score = score.view(batch, c.C, n_filters, n_frames)
    est_mask = F.softmax(score, dim=1) if c.mask_nonlinear == "softmax" else F.relu(score)
    source_w = torch.transpose(torch.unsqueeze(mixture_w, 1) * est_mask, 2, 3)
    est_source = F.linear(source_w, params["decoder.basis_signals.weight"])
    est_source = est_source.view(batch, c.C, n_frames, c.audio_channels, c.L).transpose(2, 3)
    est_source = _overlap_and_add(est_source, c.L // 2)
    return F.pad(est_source, (0, mixture.shape[-1] - est_source.shape[-1]))
