"""Multichannel Conv-TasNet, the separation model of the CAD2 Task 2 baseline.

Conv-TasNet [1] encodes the waveform with a learned filterbank (stride ``L / 2``), estimates one
mask per source with a temporal convolutional network (TCN) of ``R`` repeats of ``X`` dilated
depthwise-separable blocks, and decodes the masked representation back to audio by overlap-add.
The stereo variant follows Demucs v1 [2]: the encoder reads all ``audio_channels`` at once and the
decoder writes ``audio_channels`` signals per source.

The module tree (and therefore the ``state_dict`` keys) is the one of the published CAD2
checkpoints (``cadenzachallenge/ConvTasNet_<Instrument>_<Causal|NonCausal>``), so those load
unchanged. There is one forward (:meth:`ConvTasNetStereo.forward`, used for training and
inference); :meth:`ConvTasNetStereo.infer` runs it under ``torch.inference_mode`` on a copy whose
modules :mod:`clarity.separation.fast_inference` replaced by faster equivalents (norms folded into
1x1 convolutions, in-place activations, matrix-product and shifted-add convolutions on CPU).

References:
    [1] Y. Luo and N. Mesgarani, "Conv-TasNet: Surpassing ideal time-frequency magnitude masking
        for speech separation", IEEE/ACM TASLP 27(8), 2019.
    [2] A. Défossez, N. Usunier, L. Bottou and F. Bach, "Music source separation in the waveform
        domain", arXiv:1911.13254, 2019.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
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

    Defaults are the published CAD2 Task 2 size (6,595,120 parameters). The one definition of
    the model's sizes: training (``TrainingConfig.model``), the demo and the ``train.py``
    options (generated from these fields and their ``help`` metadata) take it from here.
    """

    N: int = field(default=256, metadata={"help": "encoder filters"})
    L: int = field(default=20, metadata={"help": "encoder filter length, samples (hop L/2)"})
    B: int = field(default=256, metadata={"help": "bottleneck channels"})
    H: int = field(default=512, metadata={"help": "channels inside a temporal block"})
    P: int = field(default=3, metadata={"help": "depthwise kernel size"})
    X: int = field(default=8, metadata={"help": "blocks per repeat (dilations 1..2**(X-1))"})
    R: int = field(default=3, metadata={"help": "repeats"})
    C: int = field(default=2, metadata={"help": "sources (target, accompaniment)"})
    audio_channels: int = field(default=2, metadata={"help": "audio channels in and out"})
    samplerate: int = field(default=44100, metadata={"help": "sample rate, Hz"})
    norm_type: str = field(default="gLN", metadata={"help": "gLN (global) or cLN (per frame)"})
    causal: bool = field(default=False, metadata={"help": "left padding only (use with cLN)"})
    mask_nonlinear: str = field(default="relu", metadata={"help": "relu or softmax masks"})

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
    """cLN: normalise each frame over channels, then a per-channel affine; (batch, ch, frames).

    ``affine=False`` leaves out ``gamma``/``beta`` (a norm whose affine was folded into the
    following 1x1 convolution, see :mod:`clarity.separation.fast_inference`).
    """

    def __init__(self, channels: int, affine: bool = True):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1)) if affine else None
        self.beta = nn.Parameter(torch.zeros(1, channels, 1)) if affine else None

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        # two passes, mean then the mean square of the centred values: on (batch, ch, frames)
        # these reductions over the channel axis run along contiguous frames, about twice as
        # fast on a CPU as torch.var_mean over that axis
        centred = y - y.mean(dim=1, keepdim=True)
        variance = centred.square().mean(dim=1, keepdim=True)
        normed = centred * torch.rsqrt(variance + EPS)
        if self.gamma is None:
            return normed
        return torch.addcmul(self.beta, normed, self.gamma)


class GlobalLayerNorm(nn.Module):
    """gLN: normalise over channels and frames of each item, then a per-channel affine.

    The same as group normalisation with one group; ``affine`` as in
    :class:`ChannelwiseLayerNorm`.
    """

    def __init__(self, channels: int, affine: bool = True):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1)) if affine else None
        self.beta = nn.Parameter(torch.zeros(1, channels, 1)) if affine else None

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.gamma is None:
            return F.group_norm(y, 1, eps=EPS)
        return F.group_norm(y, 1, self.gamma.view(-1), self.beta.view(-1), EPS)


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


class InferenceWorkspace:
    """The inference-ready copy of a model, made once for successive ``infer`` calls.

    Pass one to the :meth:`ConvTasNetStereo.infer` calls of, e.g., the chunks of one song; the
    copy is :func:`clarity.separation.fast_inference.prepare_for_inference` of the model.
    """

    def __init__(self) -> None:
        self._source: ConvTasNetStereo | None = None
        self._prepared: nn.Module | None = None

    def prepared(self, model: ConvTasNetStereo) -> nn.Module:
        """``model`` transformed for inference; made on the first call for that model."""
        if self._source is not model:
            from clarity.separation.fast_inference import prepare_for_inference  # imports us

            self._source, self._prepared = model, prepare_for_inference(model)
        return self._prepared


class ConvTasNetStereo(nn.Module):
    """Multichannel Conv-TasNet (Luo & Mesgarani 2019; stereo as in Demucs v1).

    Built from a :class:`ConvTasNetConfig` or its fields as keywords (the published
    ``config.json``), e.g. ``ConvTasNetStereo(N=64, causal=True, norm_type="cLN")``; each field
    is also an attribute (``model.causal``, ``model.C``).

    ``forward(mixture (batch, audio_channels, samples)) -> (batch, C, audio_channels, samples)``:
    encoder, mask estimator, decoder. It is the only forward; :meth:`infer` runs it on a copy
    transformed for speed.
    """

    def __init__(self, config: ConvTasNetConfig | None = None, **fields: object):
        super().__init__()
        if config is not None and fields:
            raise ValueError("give a ConvTasNetConfig or its fields, not both")
        self.config = config if config is not None else ConvTasNetConfig(**fields)
        for name, value in asdict(self.config).items():
            setattr(self, name, value)
        c = self.config
        self.encoder = Encoder(c.L, c.N, c.audio_channels)
        self.separator = TemporalConvNet(c)
        self.decoder = Decoder(c.N, c.L, c.audio_channels)
        for parameter in self.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_normal_(parameter)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """Separate (batch, audio_channels, samples) into (batch, C, audio_channels, samples)."""
        self._check_input(mixture)
        mixture_w = self.encoder(mixture)
        est_source = self.decoder(mixture_w, self.separator(mixture_w))
        return F.pad(est_source, (0, mixture.shape[-1] - est_source.shape[-1]))

    forward_modules = forward  # the name older callers use for the layer-by-layer forward

    def infer(
        self, mixture: torch.Tensor, workspace: InferenceWorkspace | None = None
    ) -> torch.Tensor:
        """:meth:`forward` under ``torch.inference_mode`` on the copy prepared for inference.

        Pass one ``workspace`` to successive calls so the copy is made once.
        """
        workspace = workspace if workspace is not None else InferenceWorkspace()
        with torch.inference_mode():
            return workspace.prepared(self)(mixture)

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
        model = cls(ConvTasNetConfig.from_dict(values, source=str(config_path)))
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
