"""Multichannel Conv-TasNet, the separation model of the CAD2 Task 2 baseline.

Conv-TasNet [1] encodes the waveform with a learned filterbank (stride ``L / 2``), estimates one
mask per source with a temporal convolutional network (TCN) of ``R`` repeats of ``X`` dilated
depthwise-separable blocks, and decodes the masked representation back to audio by overlap-add.
The stereo variant follows Demucs v1 [2]: the encoder reads all ``audio_channels`` at once and the
decoder writes ``audio_channels`` signals per source.

The module tree (and therefore the ``state_dict`` keys) is the one of the published CAD2
checkpoints (``cadenzachallenge/ConvTasNet_<Instrument>_<Causal|NonCausal>``), so those load
unchanged. Two forward paths share the parameters:

* :meth:`ConvTasNetStereo.forward_modules` runs the modules layer by layer, channels first. It is
  differentiable and is the one used for training and as the numerical reference.
* Without autograd (``torch.inference_mode`` / ``torch.no_grad``) :meth:`ConvTasNetStereo.forward`
  runs a fused channels-last path with reusable buffers: norms are folded into the neighbouring
  convolutions, activations are applied in place and no large tensor is allocated per block.

References:
    [1] Y. Luo and N. Mesgarani, "Conv-TasNet: Surpassing ideal time-frequency magnitude masking
        for speech separation", IEEE/ACM TASLP 27(8), 2019.
    [2] A. Défossez, N. Usunier, L. Bottou and F. Bach, "Music source separation in the waveform
        domain", arXiv:1911.13254, 2019.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812 (the usual torch alias)
from safetensors.torch import load_file, save_file
from torch import nn

from clarity.utils.flac_encoder import write_atomically
from clarity.utils.json_files import read_json_object

EPS = 1e-8
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
README_FILE = "README.md"
NORM_TYPES = ("gLN", "cLN")
MASK_NONLINEARITIES = ("relu", "softmax")


@dataclass(frozen=True)
class ConvTasNetConfig:
    """Hyper-parameters of :class:`ConvTasNetStereo`, saved as ``config.json``.

    Defaults are the published CAD2 Task 2 size (6,595,120 parameters).
    """

    N: int = 256  # encoder filters
    L: int = 20  # encoder filter length, samples (hop is L // 2)
    B: int = 256  # bottleneck channels
    H: int = 512  # channels inside a TCN block
    P: int = 3  # depthwise kernel size
    X: int = 8  # blocks per repeat (dilations 1, 2, ..., 2**(X-1))
    R: int = 3  # repeats
    C: int = 2  # sources (target, accompaniment)
    audio_channels: int = 2
    samplerate: int = 44100  # Hz
    norm_type: str = "gLN"
    causal: bool = False
    mask_nonlinear: str = "relu"

    def __post_init__(self) -> None:
        for name in ("N", "L", "B", "H", "P", "X", "R", "C", "audio_channels", "samplerate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"ConvTasNet config field '{name}' must be a positive int, got {value!r}"
                )
        if self.L < 2:
            raise ValueError(f"ConvTasNet config field 'L' must be >= 2, got {self.L}")
        if self.norm_type not in NORM_TYPES:
            raise ValueError(
                f"ConvTasNet config field 'norm_type' must be one of {NORM_TYPES}, "
                f"got {self.norm_type!r}"
            )
        if self.mask_nonlinear not in MASK_NONLINEARITIES:
            raise ValueError(
                "ConvTasNet config field 'mask_nonlinear' must be one of "
                f"{MASK_NONLINEARITIES}, got {self.mask_nonlinear!r}"
            )
        if not isinstance(self.causal, bool):
            raise ValueError(
                f"ConvTasNet config field 'causal' must be a bool, got {self.causal!r}"
            )
        if not self.causal and self.P % 2 == 0:
            raise ValueError(
                f"ConvTasNet config field 'P' must be odd for a non-causal model, got {self.P}"
            )

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> ConvTasNetConfig:
        """Build a config from a ``config.json`` dict; unknown keys raise ``ValueError``."""
        unknown = sorted(set(values) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"{source}: unknown ConvTasNet config keys {unknown}")
        return cls(**values)


class ChannelwiseLayerNorm(nn.Module):
    """cLN: normalise each frame over channels, then a per-channel affine; (batch, ch, frames)."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(y, dim=1, keepdim=True, unbiased=False)
        return self.gamma * (y - mean) * torch.rsqrt(var + EPS) + self.beta


class GlobalLayerNorm(nn.Module):
    """gLN: normalise over channels and frames of each item, then a per-channel affine."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(y, dim=(1, 2), keepdim=True, unbiased=False)
        return self.gamma * (y - mean) * torch.rsqrt(var + EPS) + self.beta


def _make_norm(norm_type: str, channels: int) -> nn.Module:
    return GlobalLayerNorm(channels) if norm_type == "gLN" else ChannelwiseLayerNorm(channels)


class CausalTrim(nn.Module):
    """Drop the last ``size`` frames: a conv padded by ``size`` on both sides then sees the past."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., : x.shape[-1] - self.size]


class Encoder(nn.Module):
    """Learned analysis filterbank: (batch, audio_channels, samples) -> ReLU (batch, N, frames)."""

    def __init__(self, L: int, N: int, audio_channels: int):
        super().__init__()
        self.conv1d_U = nn.Conv1d(audio_channels, N, kernel_size=L, stride=L // 2, bias=False)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv1d_U(mixture))


def overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """Overlap-add (..., frames, frame_length) with ``hop`` samples between frame starts.

    Returns (..., hop * (frames - 1) + frame_length).
    """
    *outer, n_frames, frame_length = frames.shape
    length = hop * (n_frames - 1) + frame_length
    columns = frames.reshape(-1, n_frames, frame_length).transpose(1, 2)
    signal = F.fold(
        columns, output_size=(1, length), kernel_size=(1, frame_length), stride=(1, hop)
    )
    return signal.reshape(*outer, length)


class Decoder(nn.Module):
    """Learned synthesis basis: masked encodings (batch, C, N, frames) -> (batch, C, ac, T)."""

    def __init__(self, N: int, L: int, audio_channels: int):
        super().__init__()
        self.L = L
        self.audio_channels = audio_channels
        self.basis_signals = nn.Linear(N, audio_channels * L, bias=False)

    def forward(self, mixture_w: torch.Tensor, est_mask: torch.Tensor) -> torch.Tensor:
        source_w = (mixture_w.unsqueeze(1) * est_mask).transpose(2, 3)  # (batch, C, frames, N)
        frames = self.basis_signals(source_w)  # (batch, C, frames, ac * L)
        batch, n_src, n_frames, _ = frames.shape
        frames = frames.view(batch, n_src, n_frames, self.audio_channels, self.L).transpose(2, 3)
        return overlap_add(frames, self.L // 2)


class DepthwiseSeparableConv(nn.Module):
    """Dilated depthwise conv, PReLU, norm, pointwise conv: (batch, H, K) -> (batch, B, K)."""

    def __init__(self, H: int, B: int, P: int, dilation: int, norm_type: str, causal: bool):
        super().__init__()
        padding = (P - 1) * dilation if causal else (P - 1) * dilation // 2
        depthwise = nn.Conv1d(H, H, P, padding=padding, dilation=dilation, groups=H, bias=False)
        layers = [depthwise, CausalTrim(padding)] if causal else [depthwise]
        layers += [nn.PReLU(), _make_norm(norm_type, H), nn.Conv1d(H, B, 1, bias=False)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TemporalBlock(nn.Module):
    """Residual TCN block: 1x1 conv B->H, PReLU, norm, depthwise-separable conv H->B, + input."""

    def __init__(self, B: int, H: int, P: int, dilation: int, norm_type: str, causal: bool):
        super().__init__()
        self.dilation = dilation
        self.causal = causal
        self.net = nn.Sequential(
            nn.Conv1d(B, H, 1, bias=False),
            nn.PReLU(),
            _make_norm(norm_type, H),
            DepthwiseSeparableConv(H, B, P, dilation, norm_type, causal),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class TemporalConvNet(nn.Module):
    """Mask estimator: cLN, bottleneck N->B, R x X temporal blocks, mask conv B->C*N."""

    def __init__(self, config: ConvTasNetConfig):
        super().__init__()
        c = config
        self.C = c.C
        self.mask_nonlinear = c.mask_nonlinear
        repeats = [
            nn.Sequential(
                *(TemporalBlock(c.B, c.H, c.P, 2**x, c.norm_type, c.causal) for x in range(c.X))
            )
            for _ in range(c.R)
        ]
        self.network = nn.Sequential(
            ChannelwiseLayerNorm(c.N),
            nn.Conv1d(c.N, c.B, 1, bias=False),
            nn.Sequential(*repeats),
            nn.Conv1d(c.B, c.C * c.N, 1, bias=False),
        )

    def forward(self, mixture_w: torch.Tensor) -> torch.Tensor:
        """(batch, N, frames) -> masks (batch, C, N, frames)."""
        batch, n_filters, n_frames = mixture_w.shape
        score = self.network(mixture_w).view(batch, self.C, n_filters, n_frames)
        return F.softmax(score, dim=1) if self.mask_nonlinear == "softmax" else F.relu(score)

    def blocks(self) -> list[TemporalBlock]:
        return [block for repeat in self.network[2] for block in repeat]


class InferenceWorkspace:
    """Flat buffers reused across blocks and chunks, viewed to the shape each call needs.

    Pass one workspace to successive :meth:`ConvTasNetStereo.infer` calls (e.g. the chunks of
    one song) so the large activations are allocated once.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        numel = 1
        for size in shape:
            numel *= size
        buffer = self._buffers.get(name)
        if (
            buffer is None
            or buffer.numel() < numel
            or buffer.device != like.device
            or buffer.dtype != like.dtype
        ):
            buffer = torch.empty(numel, device=like.device, dtype=like.dtype)
            self._buffers[name] = buffer
        return buffer[:numel].view(shape)


class ConvTasNetStereo(nn.Module):
    """Multichannel Conv-TasNet (Luo & Mesgarani 2019; stereo as in Demucs v1).

    Args follow the published ``config.json``: ``N`` encoder filters, ``L`` filter length
    (samples), ``B`` bottleneck channels, ``H`` block channels, ``P`` depthwise kernel size,
    ``X`` blocks per repeat, ``R`` repeats, ``C`` sources, ``audio_channels``, ``samplerate``
    (Hz), ``norm_type`` ("gLN" or "cLN"), ``causal`` (left padding only; use with "cLN") and
    ``mask_nonlinear`` ("relu" or "softmax").

    ``forward(mixture (batch, audio_channels, samples)) -> (batch, C, audio_channels, samples)``.
    """

    def __init__(
        self,
        N: int = 256,
        L: int = 20,
        B: int = 256,
        H: int = 512,
        P: int = 3,
        X: int = 8,
        R: int = 3,
        C: int = 2,
        audio_channels: int = 2,
        samplerate: int = 44100,
        norm_type: str = "gLN",
        causal: bool = False,
        mask_nonlinear: str = "relu",
    ):
        super().__init__()
        self.config = ConvTasNetConfig(
            N, L, B, H, P, X, R, C, audio_channels, samplerate, norm_type, causal, mask_nonlinear
        )
        self.N, self.L, self.B, self.H, self.P, self.X, self.R, self.C = N, L, B, H, P, X, R, C
        self.audio_channels = audio_channels
        self.samplerate = samplerate
        self.norm_type = norm_type
        self.causal = causal
        self.mask_nonlinear = mask_nonlinear
        self.encoder = Encoder(L, N, audio_channels)
        self.separator = TemporalConvNet(self.config)
        self.decoder = Decoder(N, L, audio_channels)
        for parameter in self.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_normal_(parameter)

    # ------------------------------------------------------------------ forward passes
    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """Separate (batch, audio_channels, samples) into (batch, C, audio_channels, samples).

        Uses the fused inference path when autograd is off, the module path otherwise.
        """
        self._check_input(mixture)
        if torch.is_grad_enabled() and any(p.requires_grad for p in self.parameters()):
            return self.forward_modules(mixture)
        return self.infer(mixture)

    def forward_modules(self, mixture: torch.Tensor) -> torch.Tensor:
        """Differentiable layer-by-layer forward (training path and numerical reference)."""
        self._check_input(mixture)
        mixture_w = self.encoder(mixture)
        est_source = self.decoder(mixture_w, self.separator(mixture_w))
        return F.pad(est_source, (0, mixture.shape[-1] - est_source.shape[-1]))

    def _check_input(self, mixture: torch.Tensor) -> None:
        if mixture.ndim != 3 or mixture.shape[1] != self.audio_channels:
            raise ValueError(
                "mixture must be (batch, audio_channels="
                f"{self.audio_channels}, samples), got shape {tuple(mixture.shape)}"
            )
        if mixture.shape[-1] < self.L:
            raise ValueError(
                f"mixture must have at least L={self.L} samples, got {mixture.shape[-1]}"
            )

    @torch.inference_mode()
    def infer(
        self, mixture: torch.Tensor, workspace: InferenceWorkspace | None = None
    ) -> torch.Tensor:
        """Fused inference forward, same result as :meth:`forward_modules` up to rounding.

        Runs channels last, (batch, frames, channels), in reusable ``workspace`` buffers.
        mixture (batch, audio_channels, samples) -> (batch, C, audio_channels, samples).
        """
        self._check_input(mixture)
        ws = workspace if workspace is not None else InferenceWorkspace()
        c = self.config
        hop = c.L // 2
        batch, _, length = mixture.shape
        frames = mixture.unfold(-1, c.L, hop)  # (batch, ac, K, L)
        n_frames = frames.shape[2]
        frames = frames.permute(0, 2, 1, 3).reshape(batch * n_frames, c.audio_channels * c.L)
        encoder_w = self.encoder.conv1d_U.weight.reshape(c.N, -1)
        mixture_w = ws.get("mixture_w", (batch, n_frames, c.N), mixture)
        torch.mm(frames, encoder_w.t(), out=mixture_w.view(batch * n_frames, c.N)).relu_()

        network = self.separator.network
        layer_norm = network[0]
        normed = F.layer_norm(
            mixture_w, (c.N,), layer_norm.gamma.view(-1), layer_norm.beta.view(-1), EPS
        )
        residual = ws.get("residual", (batch, n_frames, c.B), mixture)
        torch.mm(
            normed.view(-1, c.N),
            network[1].weight.view(c.B, c.N).t(),
            out=residual.view(-1, c.B),
        )
        del normed
        hidden = ws.get("hidden", (batch, n_frames, c.H), mixture)
        depthwise = ws.get("depthwise", (batch, n_frames, c.H), mixture)
        blocks = self.separator.blocks()
        slopes = torch.cat(
            [torch.cat([b.net[1].weight, b.net[3].net[-3].weight]) for b in blocks]
        ).tolist()
        for index, block in enumerate(blocks):
            _fused_block(block, residual, hidden, depthwise, slopes[2 * index : 2 * index + 2])

        score = ws.get("score", (batch, n_frames, c.C, c.N), mixture)
        torch.mm(
            residual.view(-1, c.B),
            network[3].weight.view(c.C * c.N, c.B).t(),
            out=score.view(-1, c.C * c.N),
        )
        if c.mask_nonlinear == "softmax":
            score = torch.softmax(score, dim=2)
        else:
            score.relu_()
        score.mul_(mixture_w.unsqueeze(2))  # masked encodings (batch, K, C, N)
        decoded = torch.matmul(score, self.decoder.basis_signals.weight.t())  # (.., ac * L)
        decoded = decoded.view(batch, n_frames, c.C, c.audio_channels, c.L).permute(0, 2, 3, 1, 4)
        est_source = overlap_add(decoded, hop)
        return F.pad(est_source, (0, length - est_source.shape[-1]))

    # ------------------------------------------------------------------ checkpoints
    @classmethod
    def from_pretrained(
        cls,
        repo_id_or_local_dir: str | Path,
        device: str | torch.device = "cpu",
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        force_download: bool = False,
    ) -> ConvTasNetStereo:
        """Load a published checkpoint: a folder or hub repo with config.json + model.safetensors.

        Existing folders are read directly (absolute or ``.``/``~`` paths must exist); anything
        else is a Hugging Face hub id, downloaded with ``huggingface_hub.hf_hub_download``.
        The model is returned in eval mode on ``device``.
        """
        folder = Path(repo_id_or_local_dir).expanduser()
        looks_local = folder.is_absolute() or str(repo_id_or_local_dir).startswith((".", "~"))
        if looks_local and not folder.is_dir():
            raise ValueError(f"checkpoint folder {folder} does not exist")
        if folder.is_dir():
            config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
            missing = [str(p) for p in (config_path, weights_path) if not p.is_file()]
            if missing:
                raise ValueError(f"checkpoint folder {folder} lacks {missing}")
        else:
            from huggingface_hub import hf_hub_download

            config_path, weights_path = (
                Path(
                    hf_hub_download(
                        str(repo_id_or_local_dir),
                        name,
                        revision=revision,
                        cache_dir=cache_dir,
                        force_download=force_download,
                    )
                )
                for name in (CONFIG_FILE, WEIGHTS_FILE)
            )
        values = read_json_object(config_path, "ConvTasNet config")
        model = cls(**asdict(ConvTasNetConfig.from_dict(values, source=str(config_path))))
        state = load_file(str(weights_path))
        check_state_dict(model, state, source=str(weights_path))
        model.load_state_dict(state)
        return model.to(device).eval()

    def save_pretrained(self, save_directory: str | Path) -> Path:
        """Write config.json, model.safetensors and README.md (each atomically) into a folder."""
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        write_atomically(folder / WEIGHTS_FILE, lambda path: save_file(state, str(path)))
        config_text = json.dumps(asdict(self.config), indent=2, sort_keys=True) + "\n"
        write_atomically(folder / CONFIG_FILE, lambda path: path.write_text(config_text, "utf-8"))
        readme = _model_card(self.config, sum(p.numel() for p in self.parameters()))
        write_atomically(folder / README_FILE, lambda path: path.write_text(readme, "utf-8"))
        return folder


def _fused_block(
    block: TemporalBlock,
    residual: torch.Tensor,
    hidden: torch.Tensor,
    depthwise: torch.Tensor,
    slopes: list[float],
) -> None:
    """One temporal block in place on ``residual`` (batch, K, B), using two (batch, K, H) buffers.

    Each norm is reduced to centring in place; its per-channel scale and shift are folded into
    the next linear layer: the depthwise taps plus a bias that honours the zero padding at the
    edges, and the pointwise weights plus a bias.
    """
    conv_in, _, norm_in, separable = block.net
    sep = separable.net
    depthwise_conv, norm_out, pointwise = sep[0], sep[-2], sep[-1]
    n_bottleneck = residual.shape[-1]
    n_hidden = hidden.shape[-1]

    torch.mm(
        residual.view(-1, n_bottleneck),
        conv_in.weight.view(n_hidden, n_bottleneck).t(),
        out=hidden.view(-1, n_hidden),
    )
    F.leaky_relu_(hidden, slopes[0])
    scale, shift = _norm_affine(norm_in, hidden)
    taps = depthwise_conv.weight.view(n_hidden, -1).t()  # (P, H)
    _depthwise_affine(hidden, depthwise, taps, scale, shift, block.dilation, block.causal)
    F.leaky_relu_(depthwise, slopes[1])

    scale, shift = _norm_affine(norm_out, depthwise)
    weight = pointwise.weight.view(n_bottleneck, n_hidden)  # (B, H)
    residual.add_(torch.matmul(shift, weight.t()))  # (1, 1, B)
    if scale.shape[0] == 1:
        residual.view(-1, n_bottleneck).addmm_(
            depthwise.view(-1, n_hidden), (weight * scale.view(1, -1)).t()
        )
    else:  # per-item gLN scale: one weight matrix per item
        residual.baddbmm_(depthwise, (weight * scale).transpose(1, 2))


def _norm_affine(norm: nn.Module, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre ``y`` (batch, K, H) in place; return (scale, shift), ``norm(y) == scale * y + shift``.

    gLN removes the item mean and returns scale (batch, 1, H) = gamma / std; cLN removes each
    frame's mean and std and returns gamma, beta (1, 1, H). Sums of squares are taken per frame
    (vector norms over H) and then summed, which keeps float32 accuracy on long chunks.
    """
    gamma, beta = norm.gamma.view(1, 1, -1), norm.beta.view(1, 1, -1)
    if isinstance(norm, GlobalLayerNorm):
        count = y.shape[1] * y.shape[2]
        y.sub_(y.sum(dim=(1, 2), keepdim=True) / count)
        energy = torch.linalg.vector_norm(y, dim=-1).square_().sum(dim=1) / count
        return gamma * torch.rsqrt(energy + EPS).view(-1, 1, 1), beta
    y.sub_(y.mean(dim=-1, keepdim=True))
    energy = torch.linalg.vector_norm(y, dim=-1, keepdim=True).square_() / y.shape[-1]
    y.mul_(torch.rsqrt(energy + EPS))
    return gamma, beta


def _depthwise_affine(
    source: torch.Tensor,
    out: torch.Tensor,
    taps: torch.Tensor,
    scale: torch.Tensor,
    shift: torch.Tensor,
    dilation: int,
    causal: bool,
) -> None:
    """``out = depthwise_conv(scale * source + shift)`` along frames, zero padded like the module.

    ``source``/``out`` are (batch, K, H); ``taps`` (P, H). Tap ``k`` reads frame
    ``t + k * dilation - pad`` with ``pad = (P - 1) * dilation`` (causal) or half of it.
    """
    n_taps, n_frames = taps.shape[0], source.shape[1]
    pad = (n_taps - 1) * dilation if causal else (n_taps - 1) * dilation // 2
    offsets = [k * dilation - pad for k in range(n_taps)]
    centre = offsets.index(0)
    scaled_taps = taps.view(n_taps, 1, 1, -1) * scale.unsqueeze(0)  # (P, batch or 1, 1, H)
    torch.addcmul(shift * taps.sum(dim=0), source, scaled_taps[centre], out=out)
    for k, offset in enumerate(offsets):
        if k == centre:
            continue
        first, stop = max(0, -offset), min(n_frames, n_frames - offset)
        if first < stop:
            out[:, first:stop].addcmul_(source[:, first + offset : stop + offset], scaled_taps[k])
        # frames whose tap falls in the zero padding must not receive that tap's shift
        outside = shift * taps[k]
        out[:, : min(first, n_frames)].sub_(outside)
        out[:, max(stop, first) :].sub_(outside)


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise ``ValueError`` naming missing, unexpected and wrongly shaped keys of ``state``."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    mismatched = [
        f"{k}: checkpoint {list(found[k])} vs model {list(expected[k])}"
        for k in sorted(set(expected) & set(found))
        if expected[k] != found[k]
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if mismatched:
        problems.append("shape mismatch " + "; ".join(mismatched))
    if problems:
        raise ValueError(f"{source} does not fit its config: " + " | ".join(problems))


def _model_card(config: ConvTasNetConfig, n_parameters: int) -> str:
    kind = "causal" if config.causal else "non-causal"
    lines = [
        "# Conv-TasNet (stereo) source separation model",
        "",
        f"A {kind} multichannel Conv-TasNet with {n_parameters:,} parameters that separates a",
        f"{config.audio_channels}-channel {config.samplerate} Hz mixture into {config.C} sources",
        "(target instrument, accompaniment) for the Cadenza CAD2 Task 2 recipe.",
        "",
        "Load with `clarity.separation.convtasnet.ConvTasNetStereo.from_pretrained(<folder>)`.",
        "",
        "Configuration (`config.json`):",
        "",
        *(f"- `{k}`: {v}" for k, v in asdict(config).items()),
        "",
    ]
    return "\n".join(lines)
