"""The official CAD2 Task 2 chunked separation loop, written plainly, as the yardstick that
`clarity.separation.inference.separate_sources` is compared with (tests) and timed against
(benchmarks/bench_separation.py)."""

from __future__ import annotations

import torch


def official_loop(
    model: torch.nn.Module,
    mix: torch.Tensor,
    sample_rate: int,
    segment: float = 6.0,
    overlap: float = 0.1,
    number_sources: int = 2,
) -> torch.Tensor:
    """The official CAD2 loop written plainly (torchaudio linear Fade over the whole chunk)."""
    batch, channels, length = mix.shape
    chunk_len = int(sample_rate * segment * (1 + overlap))
    overlap_frames = overlap * sample_rate
    fade_in_len, fade_out_len = 0, int(overlap_frames)
    final = torch.zeros(batch, number_sources, channels, length)
    start, end = 0, chunk_len
    while start < length - overlap_frames:
        with torch.no_grad():
            out = model.forward_modules(mix[:, :, start:end])
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
