"""Torch device choice and chunked source separation with the pyClarity 0.9.0 signatures.

`get_device` turns a recipe's ``separator.device`` setting (None, "cpu", "gpu0", "gpu1", ...)
into a ``torch.device``. `separate_sources` runs a separation model over a long mixture in
overlapping chunks with linear cross-fades (the schedule of the torchaudio hybrid-Demucs
tutorial); it is an entry point over :func:`clarity.separation.inference.separate_in_chunks`,
the package's one implementation of chunked separation, and needs no torchaudio.
"""

from __future__ import annotations

import numpy as np
import torch

from clarity.separation.inference import (
    as_mixture_batch,
    check_model_device,
    model_device,
    resolve_device,
    separate_in_chunks,
)


def get_device(device: str | None) -> tuple[torch.device, str]:
    """The torch device for a device setting, and its type.

    Args:
        device: None (CUDA when available, else the CPU), "cpu", or "gpu<N>" for CUDA device
            number N.

    Returns:
        ``(torch.device, type)``: ``(device("cuda"), "cuda")`` or ``(device("cpu"), "cpu")``
        for None, ``(device("cpu"), "cpu")`` for "cpu", ``(device("cuda:N"), "cuda")`` for
        "gpuN".

    Raises:
        ValueError: any other setting, or a "gpuN" whose N is not a CUDA device index here.
    """
    if device is None:
        kind = "cuda" if torch.cuda.is_available() else "cpu"
        return torch.device(kind), kind
    if device == "cpu":
        return torch.device("cpu"), "cpu"
    if isinstance(device, str) and device.startswith("gpu"):
        number = device.removeprefix("gpu")
        if not number.isdigit():
            raise ValueError(f"GPU device must be 'gpu<N>' with a number N, got {device!r}")
        index = int(number)
        available = torch.cuda.device_count()
        if index >= available:
            raise ValueError(
                f"GPU device index {index} is not available ({available} CUDA device(s) here)"
            )
        return torch.device("cuda", index), "cuda"
    raise ValueError(f"Unsupported device type: {device!r}; use None, 'cpu' or 'gpu<N>'")


def separate_sources(
    model: torch.nn.Module,
    mix: torch.Tensor | np.ndarray,
    sample_rate: int,
    segment: float = 10.0,
    overlap: float = 0.1,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """Separate a mixture chunk by chunk with linear cross-fades.

    Chunks are ``int(sample_rate * segment * (1 + overlap))`` samples; neighbours share
    ``overlap * sample_rate`` samples, where the earlier chunk's output fades out and the later
    one's fades in along straight lines (0 to 1 over ``n`` samples: ``k / (n - 1)``), and the
    faded outputs are added (see :func:`clarity.separation.inference.chunk_schedule`).

    Args:
        model: maps ``(batch, channels, n)`` to ``(batch, sources, channels, n)``, already on
            ``device``.
        mix: ``(batch, channels, samples)`` mixture; ``(channels, samples)`` is one track.
            Computed in float32.
        sample_rate: Hz of ``mix``.
        segment: chunk length before the overlap is added, s.
        overlap: cross-fade length, s (a fraction of a second, in [0, 1)).
        device: where to compute; None: ``mix.device`` for a tensor, the model's device for an
            array.

    Returns:
        ``(batch, sources, channels, samples)`` float32 NumPy array, ``sources`` being the
        number the model returns.

    Raises:
        ValueError: the model is on another device, ``mix`` has not 2 or 3 dimensions (1 is
            taken as mono), the model's output has the wrong shape, or ``mix`` is not longer
            than the cross-fade.
    """
    if device is None:
        device = mix.device if isinstance(mix, torch.Tensor) else model_device(model)
    device = resolve_device(device)
    check_model_device(model, device)
    separated = separate_in_chunks(
        model, as_mixture_batch(mix, device), sample_rate, segment, overlap
    )
    return separated.cpu().numpy()
