"""Source estimates for a song's mixture: ConvTasNet models, the true stems, or the mixture.

A separator maps a song and its mixture segment, `(samples, channels)` at the recipe's input
sample rate, to one estimate per source of the song, `(samples, channels)` each.

- `convtasnet`: one ConvTasNet per instrument (Luo & Mesgarani 2019, stereo variant) gives a
  target and an accompaniment; the estimate is the target plus `add_residual` times the
  accompaniment, as in the challenge baseline. Two voices of one instrument get the same
  estimate. The `wiener_filter` setting re-makes the estimates as Wiener masks of the
  mixture (the function `wiener_filter`), a departure from the baseline, off by default.
- `oracle`: the true stems over the same segment, the upper bound of the recipe.
- `passthrough`: no separation: every source is the mixture divided by the number of sources,
  so the estimates sum back to the mixture and the remix only changes its overall level.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from clarity.cad2.audio_io import read_segment
from clarity.cad2.metadata import Song

SEPARATOR_TYPES = ("convtasnet", "oracle", "passthrough")
CAUSALITIES = ("causal", "noncausal")
WIENER_WINDOW = 4096  # samples of the Wiener filter's STFT window (93 ms at 44.1 kHz)


class Separator(Protocol):
    """Estimates the sources of a song from its mixture.

    A separator whose estimates depend on the listener sets `listener_aware = True` and takes
    the listener id as the keyword argument `listener_id`; the recipe then separates the scene
    once per listener instead of once per scene.
    """

    def __call__(self, song: Song, mixture: np.ndarray) -> dict[str, np.ndarray]:
        """Source id -> `(samples, channels)` estimate, for a `(samples, channels)` mixture."""


def is_listener_aware(separator: Separator) -> bool:
    """Whether `separator` wants the listener (its `listener_aware` attribute, default False)."""
    return bool(getattr(separator, "listener_aware", False))


@dataclass
class ConvTasNetSeparator:
    """Per-instrument ConvTasNet separation with a share of the accompaniment added back.

    Attributes:
        models: instrument ("Violin") -> model.
        sample_rate: Hz of the mixture.
        segment: chunk length in seconds; overlap: fraction of a chunk shared by neighbours.
        add_residual: share of the accompaniment added to each target (0 adds nothing).
        device: torch device name the models run on.
        chunks_per_call: chunks of a mixture separated in one model call (1: the official loop).
        precision: "float32", or autocast to "bfloat16" / "float16" on CUDA.
        models_per_call: instruments' models of a scene run as one call (1: one at a time).
        wiener_filter: re-estimate the sources by Wiener masks of the mixture
            (`wiener_filter`; non-causal); False is the challenge baseline.
    """

    models: Mapping[str, Any]
    sample_rate: int
    segment: float
    overlap: float
    add_residual: float
    device: str
    chunks_per_call: int = 1
    precision: str = "float32"
    models_per_call: int = 1
    wiener_filter: bool = False

    def __call__(self, song: Song, mixture: np.ndarray) -> dict[str, np.ndarray]:
        from clarity.separation.inference import separate_instruments

        instruments = song.source_instruments()
        separated = separate_instruments(
            self.models,
            np.ascontiguousarray(mixture.T),
            self.sample_rate,
            list(instruments.values()),
            self.segment,
            self.overlap,
            self.device,
            self.chunks_per_call,
            self.precision,
            self.models_per_call,
        )
        estimates = {}
        for source, instrument in instruments.items():
            target, accompaniment = (np.asarray(part) for part in separated[instrument])
            if self.add_residual > 0.0:
                target = target + accompaniment * np.float32(self.add_residual)
            estimates[source] = target.T
        if self.wiener_filter:
            return wiener_filter(estimates, mixture, instruments)
        return estimates


def wiener_filter(
    estimates: Mapping[str, np.ndarray],
    mixture: np.ndarray,
    source_instruments: Mapping[str, str],
    window_length: int = WIENER_WINDOW,
) -> dict[str, np.ndarray]:
    """Re-estimate each source by a Wiener mask of the estimates applied to the mixture.

    The k voices of one instrument, which the instrument's model cannot tell apart, first
    share its estimate (each gets 1/k of it instead of all of it). Then, per channel and
    time-frequency bin of a short-time Fourier transform (Hann window of `window_length`
    samples, hop a quarter of it), source m gets the share of the mixture that its estimate
    has of the estimates' power:

        S'_m(t, f) = |S_m(t, f)|^2 / sum_j |S_j(t, f)|^2 * X(t, f)

    (the Wiener filter with power spectrograms, alpha = 2 of A. Liutkus and R. Badeau,
    "Generalized Wiener filtering with fractional power spectrograms", ICASSP 2015). The masks
    sum to one, so the sources sum to the mixture and every sound of the mixture goes to
    someone; a bin where every estimate is silent is shared evenly. The window looks
    `window_length` samples ahead, so this is for non-causal systems only.

    Args:
        estimates: source id -> `(samples, channels)` estimate.
        mixture: `(samples, channels)` signal the estimates were separated from.
        source_instruments: source id -> model instrument ("Violin").
        window_length: STFT window in samples (4096: 93 ms at 44.1 kHz).

    Returns:
        source id -> `(samples, channels)` float32 estimate, in the order of `estimates`.
    """
    from scipy.signal import istft, stft

    samples = mixture.shape[0]
    frames = {"nperseg": window_length, "noverlap": window_length - window_length // 4}
    voices = Counter(source_instruments[source] for source in estimates)
    powers = {}
    for source, estimate in estimates.items():
        shared = np.asarray(estimate, dtype=np.float64).T / voices[source_instruments[source]]
        powers[source] = np.abs(stft(shared, **frames)[2]) ** 2
    floor = np.finfo(np.float64).tiny
    total = sum(powers.values()) + floor * len(powers)
    mixture_spectrum = stft(np.asarray(mixture, dtype=np.float64).T, **frames)[2]
    filtered = {}
    for source, power in powers.items():
        signal = istft((power + floor) / total * mixture_spectrum, **frames)[1]
        filtered[source] = np.ascontiguousarray(signal[:, :samples].T, dtype=np.float32)
    return filtered


@dataclass
class OracleSeparator:
    """The true stems over the mixture's segment (the upper bound).

    Attributes:
        music_dir: folder the song tracks are relative to.
        sample_rate: Hz expected of every stem.
    """

    music_dir: Path
    sample_rate: int

    def __call__(self, song: Song, mixture: np.ndarray) -> dict[str, np.ndarray]:
        segment = song.mixture
        return {
            source: read_segment(
                self.music_dir / track.track, self.sample_rate, segment.start, segment.duration
            )
            for source, track in song.sources.items()
        }


class PassthroughSeparator:
    """No separation: each source is `mixture / number of sources` (the lower bound)."""

    def __call__(self, song: Song, mixture: np.ndarray) -> dict[str, np.ndarray]:
        share = mixture / len(song.sources)
        return {source: share for source in song.sources}


def build_separator(separator_config: Mapping[str, Any], music_dir: Path, sample_rate: int,
                    instruments: list[str]) -> Separator:
    """Build the separator the `separator` config group asks for.

    Args:
        separator_config: keys `type`, `causality`, `checkpoint_dir` (None: hub ids),
            `force_redownload` (hub ids only), `device`, `add_residual`,
            `separation.segment`, `separation.overlap` and, optional, `separation.chunks_per_call`
            and `separation.models_per_call` (default 1) and `separation.precision` (default
            float32), and `wiener_filter` (default False; refused with causal models).
        music_dir: folder of the song tracks (for `oracle`).
        sample_rate: input sample rate in Hz.
        instruments: model instruments the songs to process need (for `convtasnet`).
    """
    kind = separator_config["type"]
    if kind == "oracle":
        return OracleSeparator(music_dir=Path(music_dir), sample_rate=sample_rate)
    if kind == "passthrough":
        return PassthroughSeparator()
    import torch

    from clarity.separation.checkpoints import load_separation_models
    from clarity.separation.inference import resolve_device

    wiener = bool(separator_config.get("wiener_filter", False))
    if wiener and separator_config["causality"] == "causal":
        raise ValueError(
            "separator.wiener_filter: the Wiener filter's STFT window looks "
            f"{WIENER_WINDOW} samples ({WIENER_WINDOW / sample_rate * 1000:.0f} ms) ahead, "
            "beyond the 5 ms the challenge allows a causal system; set it false with "
            "separator.causality=causal"
        )
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    device = str(resolve_device(separator_config["device"], default=default_device))
    checkpoint_dir = separator_config["checkpoint_dir"]
    models = load_separation_models(
        separator_config["causality"],
        None if checkpoint_dir is None else Path(checkpoint_dir),
        instruments,
        device,
        force_download=bool(separator_config.get("force_redownload", False)),
    )
    return ConvTasNetSeparator(
        models=models,
        sample_rate=sample_rate,
        segment=float(separator_config["separation"]["segment"]),
        overlap=float(separator_config["separation"]["overlap"]),
        add_residual=float(separator_config["add_residual"]),
        device=device,
        chunks_per_call=int(separator_config["separation"].get("chunks_per_call", 1)),
        precision=str(separator_config["separation"].get("precision", "float32")),
        models_per_call=int(separator_config["separation"].get("models_per_call", 1)),
        wiener_filter=wiener,
    )
