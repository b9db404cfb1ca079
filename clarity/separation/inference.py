"""Chunked source separation of long mixtures with linear cross-fades.

The schedule of chunks and fades reproduces ``separate_sources`` of the official CAD2 Task 2
baseline (after the torchaudio hybrid-Demucs tutorial), so outputs agree with it to float
rounding. For a signal of ``length`` samples, with ``chunk = int(sample_rate * segment *
(1 + overlap))`` and ``fade = overlap * sample_rate``:

* the first chunk is ``[0, chunk)``; every later chunk starts ``fade`` samples before the end of
  the previous one and, as in the official loop, spans ``chunk + fade`` samples;
* each chunk output is faded in over its first ``int(fade)`` samples (not the first chunk) and
  out over its last ``int(fade)`` samples (not the chunk that reaches the end of the signal), with
  linear ramps, and overlap-added into the result.

Only the ramps are multiplied (the rest of a chunk is added as is), chunks go through the model's
fused inference path sharing one buffer workspace, and everything runs under
``torch.inference_mode``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from clarity.separation.convtasnet import ConvTasNetStereo, InferenceWorkspace
from clarity.separation.stacked import StackedModels, stackable

# precision option -> autocast dtype of the model's forward (None: plain float32)
AUTOCAST_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a ``precision`` option (None for "float32").

    Raises:
        ValueError: ``precision`` is not a key of ``AUTOCAST_DTYPES``.
    """
    if precision not in AUTOCAST_DTYPES:
        raise ValueError(f"precision must be one of {list(AUTOCAST_DTYPES)}, got {precision!r}")
    return AUTOCAST_DTYPES[precision]


@dataclass(frozen=True)
class Chunk:
    """One model call: samples ``[start, stop)`` and the fade lengths applied to its output."""

    start: int
    stop: int
    fade_in: int
    fade_out: int


def chunk_schedule(length: int, sample_rate: int, segment: float, overlap: float) -> list[Chunk]:
    """Chunks and fades of the official separation loop for ``length`` samples."""
    if segment <= 0 or not 0 <= overlap < 1:
        raise ValueError(f"segment must be > 0 s and overlap in [0, 1), got {segment}, {overlap}")
    chunk_len = int(sample_rate * segment * (1 + overlap))
    fade_frames = overlap * sample_rate
    if chunk_len <= fade_frames:
        raise ValueError(
            f"segment={segment} s is too short for overlap={overlap} at {sample_rate} Hz"
        )
    chunks = []
    start, end = 0, chunk_len
    fade_in, fade_out = 0, int(fade_frames)
    while start < length - fade_frames:
        stop = min(end, length)
        chunks.append(Chunk(start, stop, min(fade_in, stop - start), min(fade_out, stop - start)))
        if start == 0:
            fade_in = int(fade_frames)
            start += int(chunk_len - fade_frames)
        else:
            start += chunk_len
        end += chunk_len
        if end >= length:
            fade_out = 0
    return chunks


def resolve_device(
    device: torch.device | str | None, default: torch.device | str = "cpu"
) -> torch.device:
    """``device`` as a ``torch.device`` (``default`` when None); CUDA must be available.

    A bare "cuda" gets the current CUDA index ("cuda:0"), the device that ``model.to("cuda")``
    puts parameters on, so the result compares equal to a model's or tensor's device.
    """
    resolved = torch.device(default if device is None else device)
    if resolved.type != "cuda":
        return resolved
    if not torch.cuda.is_available():
        raise ValueError(
            f"device={str(device)!r} was requested but CUDA is not available "
            "(torch.cuda.is_available() is False); use device='cpu'"
        )
    if resolved.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return resolved


def as_mixture_batch(mix: torch.Tensor | np.ndarray, device: torch.device) -> torch.Tensor:
    """``mix`` as a float32 ``(batch, channels, samples)`` tensor on ``device``.

    A ``(channels, samples)`` mixture is one track (batch 1) and a ``(samples,)`` one is also
    mono; any other number of dimensions raises ``ValueError``.
    """
    if not isinstance(mix, torch.Tensor):
        mix = torch.as_tensor(np.ascontiguousarray(mix))
    mix = mix.to(device=device, dtype=torch.float32)
    if mix.ndim == 1:
        return mix.view(1, 1, -1)
    if mix.ndim == 2:
        return mix.unsqueeze(0)
    if mix.ndim != 3:
        raise ValueError(f"mix must be (batch, channels, samples), got shape {tuple(mix.shape)}")
    return mix


def separate_in_chunks(
    model: nn.Module,
    mix: torch.Tensor,
    sample_rate: int,
    segment: float,
    overlap: float,
    number_sources: int | None = None,
    chunks_per_call: int = 1,
    precision: str = "float32",
) -> torch.Tensor:
    """Run ``model`` over ``mix`` chunk by chunk (:func:`chunk_schedule`) and cross-fade.

    The one implementation of chunked separation: :func:`separate_sources` and
    :func:`clarity.utils.source_separation_support.separate_sources` both call it.

    Args:
        model: maps ``(batch, channels, n)`` to ``(batch, sources, channels, n)``; a
            :class:`ConvTasNetStereo` uses its fused inference path. It must be on
            ``mix.device``.
        mix: ``(batch, channels, samples)`` tensor.
        sample_rate: Hz; segment: chunk length, s; overlap: cross-fade length, s, in [0, 1).
        number_sources: sources the model must return; None takes what it returns for the
            first chunk.
        chunks_per_call: up to this many successive chunks of one length go through the model
            in one call, stacked on the batch axis (the model treats batch items independently,
            so the result is that of one call per chunk to float rounding); more than 1 pays on
            a GPU.
        precision: "float32", or run the model under autocast to "bfloat16" or "float16"
            (CUDA); the output is float32 either way.

    Returns:
        ``(batch, sources, channels, samples)`` float32 on ``mix.device``; all zeros when
        ``mix`` is not longer than the cross-fade (no chunk is run).

    Raises:
        ValueError: a chunk's output has another shape, no chunk is run and
            ``number_sources`` is None, or an option is out of range.
    """
    if chunks_per_call < 1:
        raise ValueError(f"chunks_per_call must be >= 1, got {chunks_per_call}")
    dtype = autocast_dtype(precision)
    batch, channels, length = mix.shape
    separated = None
    if number_sources is not None:
        separated = torch.zeros(batch, number_sources, channels, length, device=mix.device)
    workspace = InferenceWorkspace()
    with torch.inference_mode():
        for group in _calls(chunk_schedule(length, sample_rate, segment, overlap), chunks_per_call):
            views = [mix[:, :, chunk.start : chunk.stop] for chunk in group]
            pieces = views[0] if len(views) == 1 else torch.cat(views)  # one chunk: no copy
            with torch.autocast(mix.device.type, dtype=dtype, enabled=dtype is not None):
                if isinstance(model, ConvTasNetStereo):
                    outs = model.infer(pieces, workspace)
                else:
                    outs = model(pieces)
            n_sources = None if separated is None else separated.shape[1]
            _check_chunk_output(outs, pieces, n_sources)
            if separated is None:
                separated = torch.zeros(batch, outs.shape[1], channels, length, device=mix.device)
            outs = outs.to(device=mix.device, dtype=torch.float32)
            shares_input = outs.untyped_storage().data_ptr() in (
                mix.untyped_storage().data_ptr(), pieces.untyped_storage().data_ptr()
            )
            if shares_input or not outs.is_contiguous():
                outs = outs.clone()  # a view of the input (or a broadcast): fade a copy
            for chunk, out in zip(group, outs.split(batch), strict=True):
                _apply_fades(out, chunk.fade_in, chunk.fade_out)
                separated[..., chunk.start : chunk.stop] += out
    if separated is None:
        raise ValueError(
            f"a mix of {length} samples is not longer than the {overlap} s cross-fade at "
            f"{sample_rate} Hz, so the model never ran and the number of sources is unknown"
        )
    return separated


def _calls(chunks: list[Chunk], chunks_per_call: int) -> list[list[Chunk]]:
    """``chunks`` in order, grouped into runs of at most ``chunks_per_call`` of one length."""
    calls: list[list[Chunk]] = []
    for chunk in chunks:
        last = calls[-1] if calls else None
        if last and len(last) < chunks_per_call and last[0].stop - last[0].start == (
            chunk.stop - chunk.start
        ):
            last.append(chunk)
        else:
            calls.append([chunk])
    return calls


def separate_sources(
    model: nn.Module,
    mix: torch.Tensor | np.ndarray,
    sample_rate: int,
    segment: float = 6.0,
    overlap: float = 0.1,
    number_sources: int = 2,
    device: torch.device | str | None = None,
    chunks_per_call: int = 1,
    precision: str = "float32",
) -> np.ndarray | torch.Tensor:
    """Separate a long mixture chunk by chunk with linear cross-fades (official schedule).

    The signature of ``separate_sources`` in the official CAD2 Task 2 ``enhance.py``.

    Args:
        model: separation model mapping (batch, channels, samples) to
            (batch, number_sources, channels, samples); a :class:`ConvTasNetStereo` uses its
            fused inference path. It must already be on ``device``.
        mix: mixture (batch, channels, samples); (channels, samples) and (samples,) are
            accepted and treated as batch 1 (and mono).
        sample_rate: sample rate of ``mix``, Hz.
        segment: chunk length, s (chunks are ``segment * (1 + overlap)`` long).
        overlap: cross-fade length as a fraction of a second, in [0, 1).
        number_sources: sources the model returns.
        device: where to compute; default ``mix.device`` for a tensor, the model's device for
            an array. "cuda" raises ``ValueError`` when CUDA is unavailable.
        chunks_per_call, precision: as in :func:`separate_in_chunks` (the official loop: 1,
            "float32").

    Returns:
        (batch, number_sources, channels, samples) float32: a ``torch.Tensor`` on ``device``
        for tensor input, an ``np.ndarray`` for array input.
    """
    as_numpy = not isinstance(mix, torch.Tensor)
    device = resolve_device(device, model_device(model) if as_numpy else mix.device)
    check_model_device(model, device)
    n_model_sources = getattr(model, "C", number_sources)
    if n_model_sources != number_sources:
        raise ValueError(
            f"number_sources={number_sources} but the model separates {n_model_sources} sources"
        )
    separated = separate_in_chunks(
        model, as_mixture_batch(mix, device), sample_rate, segment, overlap, number_sources,
        chunks_per_call, precision,
    )  # fmt: skip
    return separated.cpu().numpy() if as_numpy else separated


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter (CPU for a model without parameters)."""
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def check_model_device(model: nn.Module, device: torch.device) -> None:
    """Raise ``ValueError`` unless the model's parameters are on ``device``."""
    if model_device(model) != device:
        raise ValueError(
            f"model is on {model_device(model)} but device={device} was requested; "
            "move it first with model.to(device)"
        )


def _check_chunk_output(out: torch.Tensor, piece: torch.Tensor, n_sources: int | None) -> None:
    """Raise ``ValueError`` unless ``out`` is ``(batch, n_sources, channels, n)`` for ``piece``."""
    batch, channels, n = piece.shape
    sources_ok = n_sources is None or (out.ndim == 4 and out.shape[1] == n_sources)
    if out.ndim != 4 or (out.shape[0], out.shape[2], out.shape[3]) != (batch, channels, n) or (
        not sources_ok
    ):
        wanted = "sources" if n_sources is None else n_sources
        raise ValueError(
            f"model returned shape {tuple(out.shape)} for a chunk of shape {tuple(piece.shape)};"
            f" expected (batch, sources, channels, samples) = ({batch}, {wanted}, {channels}, {n})"
        )


def _apply_fades(signal: torch.Tensor, fade_in: int, fade_out: int) -> None:
    """Multiply the first ``fade_in`` / last ``fade_out`` samples by linear ramps, in place.

    Ramps are ``linspace(0, 1, n)`` and ``1 - linspace(0, 1, n)``, torchaudio's linear ``Fade``.
    """
    if fade_in > 0:
        signal[..., :fade_in] *= torch.linspace(0, 1, fade_in, device=signal.device)
    if fade_out > 0:
        length = signal.shape[-1]
        ramp = 1 - torch.linspace(0, 1, fade_out, device=signal.device)
        signal[..., length - fade_out :] *= ramp


def separate_instruments(
    models: Mapping[str, nn.Module],
    mixture: np.ndarray,
    sample_rate: int,
    instruments: Sequence[str],
    segment: float = 6.0,
    overlap: float = 0.1,
    device: torch.device | str | None = None,
    chunks_per_call: int = 1,
    precision: str = "float32",
    models_per_call: int = 1,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Run each distinct instrument's model once on a (channels, samples) mixture.

    Args:
        models: instrument name -> separation model (target, accompaniment).
        mixture: (channels, samples) mixture.
        sample_rate: Hz.
        instruments: the instruments of the scene, repeats allowed (e.g. two violins); each
            distinct name is separated once.
        segment, overlap, device, chunks_per_call, precision: as in :func:`separate_sources`.
        models_per_call: up to this many instruments' models of one architecture run as one
            :class:`~clarity.separation.stacked.StackedModels` call per chunk (1: one model
            at a time, as the official recipe; more pays on a GPU). Same estimates to float
            rounding.

    Returns:
        instrument -> (target (channels, samples), accompaniment (channels, samples)) float32,
        in the order of ``instruments``.
    """
    mixture = np.asarray(mixture, dtype=np.float32)
    if mixture.ndim != 2:
        raise ValueError(f"mixture must be (channels, samples), got shape {mixture.shape}")
    if models_per_call < 1:
        raise ValueError(f"models_per_call must be >= 1, got {models_per_call}")
    missing = sorted(set(instruments) - set(models))
    if missing:
        raise ValueError(f"no separation model for instruments {missing}; have {sorted(models)}")
    estimates = {}
    for group in _model_groups(models, list(dict.fromkeys(instruments)), models_per_call):
        model = models[group[0]] if len(group) == 1 else StackedModels([models[i] for i in group])
        sources = separate_sources(
            model,
            mixture[np.newaxis],
            sample_rate,
            segment=segment,
            overlap=overlap,
            number_sources=2 * len(group),
            device=device,
            chunks_per_call=chunks_per_call,
            precision=precision,
        )
        for index, instrument in enumerate(group):
            estimates[instrument] = (sources[0, 2 * index], sources[0, 2 * index + 1])
    return {instrument: estimates[instrument] for instrument in dict.fromkeys(instruments)}


def _model_groups(
    models: Mapping[str, nn.Module], instruments: list[str], models_per_call: int
) -> list[list[str]]:
    """``instruments`` in groups of at most ``models_per_call`` whose models can be stacked."""
    groups: list[list[str]] = []
    for instrument in instruments:
        group = next(
            (
                g
                for g in groups
                if len(g) < models_per_call and stackable(models[g[0]], models[instrument])
            ),
            None,
        )
        if group is None:
            groups.append([instrument])
        else:
            group.append(instrument)
    return groups
