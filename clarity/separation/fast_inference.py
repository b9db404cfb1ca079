"""Conv-TasNet made fast for inference by transforming its modules, not by a second forward.

:func:`prepare_for_inference` returns a copy of a :class:`ConvTasNetStereo` whose ``forward``
is the model's own, with sub-modules replaced, by walking the module tree, by equivalents that
cost less on a CPU:

* **norm folding** (any device) -- a norm followed by a 1x1 convolution (the bottleneck after
  the first cLN, the pointwise convolution after each block's second norm) keeps only its
  normalisation (same class, ``affine=False``) and its ``gamma``/``beta`` move into the
  convolution: ``W (gamma * n + beta) + c = (W gamma) n + (W beta + c)``, a plain
  ``nn.Conv1d`` with a bias;
* **in-place activations** (any device) -- a one-parameter ``PReLU`` becomes
  ``LeakyReLU(slope, inplace=True)``, the same function without one more large tensor;
* **CPU convolutions** -- a 1x1 ``nn.Conv1d`` becomes :class:`PointwiseConv` (one BLAS matrix
  product with the frames as its long side, no oneDNN layout reorders) and a depthwise one
  :class:`DepthwiseConv` (one multiply-add per tap on shifted views; a causal block's
  pad-then-trim becomes left padding only);
* **gLN fused with the next convolution** (CPU) -- gLN is, per item, an affine map
  ``a y + b`` once its two statistics are known, so the normalised tensor is never written:
  :class:`GlobalNormDepthwise` scales the taps (the shift only where a tap reads a real frame)
  and :class:`GlobalNormPointwise` scales the weights.

The copy is frozen (``requires_grad=False``), in eval mode and meant for
``torch.inference_mode``; it agrees with the model to float rounding (tests: within 1e-5 on
tiny models, 1e-4 at the published size). What was measured and not kept (TorchScript,
``torch.compile``, the allocator) is in ConvTasNet/README.md.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from clarity.separation.convtasnet import (
    EPS,
    CausalTrim,
    ChannelwiseLayerNorm,
    ConvTasNetStereo,
    DepthwiseSeparableConv,
    GlobalLayerNorm,
    TemporalBlock,
)

NORMS = (ChannelwiseLayerNorm, GlobalLayerNorm)


def prepare_for_inference(model: ConvTasNetStereo) -> ConvTasNetStereo:
    """A frozen eval-mode copy of ``model`` with norms folded and activations in place.

    The copy computes ``model.forward`` to float rounding (within 1e-4 for unit-scale audio);
    ``model`` itself is not changed. Run the copy under ``torch.inference_mode``.
    """
    prepared = copy.deepcopy(model).eval().requires_grad_(False)
    fold_norms_into_pointwise_convs(prepared)
    make_activations_in_place(prepared)
    if all(p.device.type == "cpu" for p in prepared.parameters()):
        use_cpu_kernels(prepared)
        fuse_global_norms(prepared)
    return prepared


def fold_norms_into_pointwise_convs(model: nn.Module) -> None:
    """In every ``nn.Sequential`` of ``model``, fold a norm's affine into a following 1x1 conv.

    In place. The norm is replaced by its class with ``affine=False``, the convolution by an
    ``nn.Conv1d`` with weight ``W * gamma`` (per input channel) and bias ``W beta + c``.
    """
    for sequence in model.modules():
        if not isinstance(sequence, nn.Sequential):
            continue
        for index in range(len(sequence) - 1):
            norm, conv = sequence[index], sequence[index + 1]
            if _is_affine_norm(norm) and _is_pointwise(conv):
                sequence[index], sequence[index + 1] = _folded(norm, conv)


def make_activations_in_place(model: nn.Module) -> None:
    """Replace every one-parameter ``nn.PReLU`` of ``model`` by an in-place ``nn.LeakyReLU``."""
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.PReLU) and child.weight.numel() == 1:
                setattr(parent, name, nn.LeakyReLU(child.weight.item(), inplace=True))


def _is_affine_norm(module: nn.Module) -> bool:
    return isinstance(module, NORMS) and module.gamma is not None


def _is_pointwise(module: nn.Module) -> bool:
    return (
        type(module) is nn.Conv1d
        and module.kernel_size == (1,)
        and module.stride == (1,)
        and module.padding == (0,)
        and module.groups == 1
    )


def _folded(norm: nn.Module, conv: nn.Conv1d) -> tuple[nn.Module, nn.Conv1d]:
    """(norm without affine, conv with the affine folded in): same output as ``conv(norm(y))``."""
    weight = conv.weight.detach()  # (out, in, 1)
    gamma, beta = norm.gamma.detach().view(1, -1, 1), norm.beta.detach().view(-1)
    folded = nn.Conv1d(conv.in_channels, conv.out_channels, 1, bias=True)
    folded = folded.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        folded.weight.copy_(weight * gamma)
        bias = weight.squeeze(-1) @ beta
        folded.bias.copy_(bias if conv.bias is None else bias + conv.bias.detach())
    folded.requires_grad_(False)
    return type(norm)(norm.gamma.shape[1], affine=False).to(weight.device), folded


def frames_major_product(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``weight @ x`` for ``x`` (batch, in, frames) and ``weight`` (out, in) or per item
    (batch, out, in), computed as ``(x^T weight^T)^T``: (batch, out, frames), a view of a
    frames-major (channels-last) result.

    The same products in the order BLAS runs fastest here: with the frames as the long side
    of the GEMM, MKL's sgemm ran at 29-34 GMAC/s on 2 AVX2 cores (AMD EPYC) against 22-25 with
    the channels as rows. Either memory layout of ``x`` is read without a copy, and every
    later stage works on both.
    """
    return torch.matmul(x.transpose(1, 2), weight.transpose(-1, -2)).transpose(1, 2)


class PointwiseConv(nn.Module):
    """A 1x1 ``nn.Conv1d`` as one matrix product: (batch, in, frames) -> (batch, out, frames).

    Same result as the convolution; on CPU the product runs as a BLAS GEMM with the frames as
    its long side (:func:`frames_major_product`) instead of oneDNN's convolution with its
    layout reorders.
    """

    def __init__(self, conv: nn.Conv1d):
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach().squeeze(-1).clone(), requires_grad=False)
        bias = None if conv.bias is None else conv.bias.detach().view(-1, 1).clone()
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = frames_major_product(x, self.weight)
        return out if self.bias is None else out.add_(self.bias)


class DepthwiseConv(nn.Module):
    """A depthwise ``nn.Conv1d`` (one filter per channel, zero padded) as shifted multiply-adds.

    (batch, channels, frames) -> (batch, channels, frames + left + right - (taps - 1) * dilation)
    with ``left``/``right`` zero padding: output frame ``t`` is
    ``sum_k w[:, k] * x[:, t + k * dilation - left]``. A causal block's convolution padded on
    both sides and then trimmed (:class:`CausalTrim`) becomes one of these with ``right = 0``.
    """

    def __init__(self, conv: nn.Conv1d, left: int, right: int):
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach().squeeze(1).clone(), requires_grad=False)
        self.dilation, self.left, self.right = conv.dilation[0], left, right

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convolve(x, self.weight)

    def convolve(
        self, x: torch.Tensor, taps: torch.Tensor, shift: torch.Tensor | None = None
    ) -> torch.Tensor:
        """This convolution with other ``taps`` ((channels, taps) or per item (batch, channels,
        taps)) of ``x + shift / scale``-like inputs: with ``shift`` (batch, channels, 1), the
        result is that of the convolution of ``taps`` applied to ``x`` plus ``shift`` on the
        real frames only (zero padding stays zero), i.e. ``conv(a x + b)`` for ``taps = w a``,
        ``shift = b``."""
        n_in = x.shape[-1]
        n_taps = taps.shape[-1]
        n_out = n_in + self.left + self.right - (n_taps - 1) * self.dilation
        offsets = [k * self.dilation - self.left for k in range(n_taps)]
        spans = [(max(0, -o), min(n_out, n_in - o)) for o in offsets]  # output frames per tap
        full = next((k for k, span in enumerate(spans) if span == (0, n_out)), None)
        weight = self.weight.unsqueeze(-1)  # (channels, taps, 1): the shift meets these taps
        # tap k as a (..., channels, 1) column, contiguous over the channels so that it streams
        # beside x in either memory layout
        columns = taps.transpose(-1, -2).contiguous().unsqueeze(-1)
        start = x.new_zeros(()) if shift is None else shift * weight.sum(dim=1)  # on real taps
        if full is None:
            out = x.new_zeros(*x.shape[:-1], n_out).add_(start)
        else:
            source = x[..., offsets[full] : offsets[full] + n_out]
            out = torch.empty_like(source)  # in the memory layout of x
            torch.addcmul(start, source, columns[..., full, :, :], out=out)
        for k, (first, stop) in enumerate(spans):
            if k != full and first < stop:
                source = x[..., first + offsets[k] : stop + offsets[k]]
                out[..., first:stop].addcmul_(source, columns[..., k, :, :])
        if shift is not None:
            for k, (first, stop) in enumerate(spans):  # frames where tap k reads the padding
                out[..., : min(first, n_out)].sub_(shift * weight[:, k])
                out[..., max(stop, first) :].sub_(shift * weight[:, k])
        return out


class GlobalNormDepthwise(nn.Module):
    """gLN followed by a :class:`DepthwiseConv`, without materialising the normalised tensor.

    gLN is, per item, ``a y + b`` with ``a = gamma / std`` and ``b = beta - a * mean``
    (statistics over channels and frames); the pair is ``conv(a y + b)``: taps scaled by ``a``
    and the shift ``b`` added where a tap reads a real frame.
    """

    def __init__(self, norm: GlobalLayerNorm, depthwise: DepthwiseConv):
        super().__init__()
        self.norm, self.depthwise = norm, depthwise

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        scale, shift = global_norm_affine(self.norm, y)
        return self.depthwise.convolve(y, self.depthwise.weight * scale, shift)


class GlobalNormPointwise(nn.Module):
    """gLN followed by a :class:`PointwiseConv`: ``W (a y + b) = (W a) y + W b`` per item."""

    def __init__(self, norm: GlobalLayerNorm, pointwise: PointwiseConv):
        super().__init__()
        self.norm, self.pointwise = norm, pointwise

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        scale, shift = global_norm_affine(self.norm, y)  # (batch, channels, 1) each
        weight = self.pointwise.weight  # (out, channels)
        bias = torch.matmul(weight, shift)  # (batch, out, 1)
        if self.pointwise.bias is not None:
            bias = bias + self.pointwise.bias
        return frames_major_product(y, weight * scale.transpose(1, 2)).add_(bias)


def global_norm_affine(norm: GlobalLayerNorm, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(a, b)`` with ``norm(y) == a * y + b``, each (batch, channels, 1).

    The statistics are the mean and the mean square over channels and frames, from two
    read-only passes: sums and vector norms along the axis that is contiguous in memory (the
    frames of a channels-first tensor, the channels of a channels-last one; float32, accurate
    over one row), added up over the other axis in float64, where ``var = E[y^2] - mean^2``
    is formed.
    """
    count = y.shape[1] * y.shape[2]
    along, across = (2, 1) if y.stride(2) == 1 else (1, 2)
    mean = y.sum(dim=along, keepdim=True).double().sum(dim=across, keepdim=True) / count
    row_norms = torch.linalg.vector_norm(y, dim=along, keepdim=True).double()
    square = row_norms.square().sum(dim=across, keepdim=True) / count
    variance = (square - mean.square()).clamp_min(0)
    rstd = torch.rsqrt(variance + EPS).to(y.dtype)
    scale = rstd.expand(-1, y.shape[1], -1)
    shift = -scale * mean.to(y.dtype)
    if norm.gamma is None:
        return scale, shift
    return norm.gamma * scale, norm.gamma * shift + norm.beta


def fuse_global_norms(model: nn.Module) -> None:
    """In every ``nn.Sequential``, fuse a :class:`GlobalLayerNorm` with the following
    :class:`DepthwiseConv` or :class:`PointwiseConv` (:class:`GlobalNormDepthwise`,
    :class:`GlobalNormPointwise`), in place. A :class:`DepthwiseSeparableConv` after the norm
    is first opened into its layers (its forward is its sequence)."""
    for block in model.modules():
        if isinstance(block, TemporalBlock) and isinstance(block.net[-1], DepthwiseSeparableConv):
            block.net = nn.Sequential(*block.net[:-1], *block.net[-1].net)
    for sequence in model.modules():
        if not isinstance(sequence, nn.Sequential):
            continue
        index = 0
        while index < len(sequence) - 1:
            norm, following = sequence[index], sequence[index + 1]
            if isinstance(norm, GlobalLayerNorm) and isinstance(following, DepthwiseConv):
                sequence[index] = GlobalNormDepthwise(norm, following)
            elif isinstance(norm, GlobalLayerNorm) and isinstance(following, PointwiseConv):
                sequence[index] = GlobalNormPointwise(norm, following)
            else:
                index += 1
                continue
            del sequence[index + 1]
            index += 1


def use_cpu_kernels(model: nn.Module) -> None:
    """Replace 1x1 convolutions by :class:`PointwiseConv` and depthwise ones (with a following
    :class:`CausalTrim`) by :class:`DepthwiseConv`, in place."""
    for parent in model.modules():
        children = list(parent.named_children())
        for index, (name, child) in enumerate(children):
            if _is_pointwise(child):
                setattr(parent, name, PointwiseConv(child))
            elif _is_depthwise(child):
                pad = child.padding[0]
                following = children[index + 1][1] if index + 1 < len(children) else None
                if isinstance(following, CausalTrim) and following.size == pad:
                    setattr(parent, name, DepthwiseConv(child, left=pad, right=0))
                    setattr(parent, children[index + 1][0], nn.Identity())
                else:
                    setattr(parent, name, DepthwiseConv(child, left=pad, right=pad))


def _is_depthwise(module: nn.Module) -> bool:
    return (
        type(module) is nn.Conv1d
        and module.groups == module.in_channels == module.out_channels
        and module.stride == (1,)
        and module.bias is None
        and module.padding_mode == "zeros"
        and isinstance(module.padding, tuple)
    )
