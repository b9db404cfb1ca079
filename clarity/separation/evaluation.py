"""Separation quality of target / accompaniment estimates: BSSEval v4 SDR and SI-SDR.

SDR is the one of BSSEval v4 as SiSEC 2018 and museval report it [1] (``museval.evaluate``,
mode "v4", as in the official CAD2 evaluation): the ``bss_eval_images`` SDR on 1 s windows
(1 s hop, full windows only), the median over windows as the track score, tracks aggregated by
their median. In the images version the target is the true source image itself, so the
spatial-distortion, interference and artefact terms add up to ``estimate - reference`` and the
SDR of a window is ``10 log10(sum(reference**2) / sum((estimate - reference)**2))`` over its
samples and channels: the 512-tap filters of v4 only split that error into ISR/SIR/SAR, which
are not reported here. As in museval, a window is skipped when any source's reference or
estimate is silent in it, and each source is scored against its own reference (no
permutation). SI-SDR [2] comes from ``fast_bss_eval`` [3], on the whole track with the
channels concatenated.

References:
    [1] F.-R. Stöter, A. Liutkus and N. Ito, "The 2018 Signal Separation Evaluation Campaign",
        LVA/ICA 2018.
    [2] J. Le Roux, S. Wisdom, H. Erdogan and J. R. Hershey, "SDR — half-baked or well done?",
        ICASSP 2019.
    [3] R. Scheibler, "SDR — Medium rare with fast computations", ICASSP 2022.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import fast_bss_eval
import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from clarity.separation.convtasnet import ConvTasNetStereo
from clarity.separation.dataset import RebalanceMusicDataset
from clarity.separation.inference import separate_sources
from clarity.utils.flac_encoder import write_atomically

SOURCE_NAMES = ("target", "accompaniment")
MAX_DB = 100.0  # scores are clamped to +-100 dB (a perfect estimate has infinite SDR)


def _as_pair(
    reference: np.ndarray, estimate: np.ndarray, axes: tuple[str, ...] = ("channels", "samples")
) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64 arrays of one shape with the named ``axes``; ValueError otherwise."""
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.shape != estimate.shape or reference.ndim != len(axes):
        raise ValueError(
            f"reference and estimate must both be ({', '.join(axes)}), got "
            f"{reference.shape} and {estimate.shape}"
        )
    return reference, estimate


def framewise_sdr(
    references: np.ndarray, estimates: np.ndarray, sample_rate: int, window: float = 1.0
) -> np.ndarray:
    """BSSEval v4 (images) SDR of each source in dB: the median over ``window``-second windows.

    ``references`` and ``estimates`` are (sources, channels, samples). Windows where any
    source's reference or estimate is all zeros are skipped (NaN for every source if none
    remain); a signal shorter than one window is scored whole. Returns (sources,), each value
    clamped to +-``MAX_DB``.
    """
    references, estimates = _as_pair(references, estimates, ("sources", "channels", "samples"))
    n_sources, n_channels, n_samples = references.shape
    frame = int(window * sample_rate)
    n_frames = n_samples // frame
    if n_frames == 0:
        frame, n_frames = n_samples, 1
    shape = (n_sources, n_channels, n_frames, frame)
    reference_frames = references[..., : n_frames * frame].reshape(shape)
    estimate_frames = estimates[..., : n_frames * frame].reshape(shape)
    silent = ~reference_frames.any(axis=(1, 3)) | ~estimate_frames.any(axis=(1, 3))
    active = ~silent.any(axis=0)  # (frames,)
    if not active.any():
        return np.full(n_sources, np.nan)
    signal = np.square(reference_frames[:, :, active]).sum(axis=(1, 3))  # (sources, active)
    error = np.square(estimate_frames[:, :, active] - reference_frames[:, :, active])
    with np.errstate(divide="ignore"):  # a perfect window: +inf dB, clamped below
        scores = 10 * np.log10(signal / error.sum(axis=(1, 3)))
    return np.median(np.clip(scores, -MAX_DB, MAX_DB), axis=1)


def si_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR in dB of a (channels, samples) estimate, channels concatenated."""
    reference, estimate = _as_pair(reference, estimate)
    scores = fast_bss_eval.si_sdr(
        reference.reshape(1, -1), estimate.reshape(1, -1), clamp_db=MAX_DB
    )
    return float(scores[0])


def score_track(
    references: np.ndarray, estimates: np.ndarray, sample_rate: int
) -> dict[str, float]:
    """SDR and SI-SDR of each source; inputs (2, channels, samples) as [target, accompaniment].

    Returns ``{"target_sdr", "target_si_sdr", "accompaniment_sdr", "accompaniment_si_sdr"}``.
    """
    if len(references) != len(SOURCE_NAMES) or len(estimates) != len(SOURCE_NAMES):
        raise ValueError("references and estimates must hold [target, accompaniment]")
    sdr = framewise_sdr(references, estimates, sample_rate)
    scores = {}
    for index, name in enumerate(SOURCE_NAMES):
        scores[f"{name}_sdr"] = float(sdr[index])
        scores[f"{name}_si_sdr"] = si_sdr(references[index], estimates[index])
    return scores


def evaluate_model(
    model: ConvTasNetStereo,
    dataset: RebalanceMusicDataset,
    out_dir: str | Path,
    segment: float = 6.0,
    overlap: float = 0.1,
    n_save_examples: int = 5,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> list[dict]:
    """Separate every whole-song item of ``dataset`` and score it.

    Writes ``<out_dir>/results.csv`` (one row per song, then a ``median`` row) and, for the
    first ``n_save_examples`` songs (-1: all), ``<out_dir>/<song>/{target,accompaniment}.wav``.
    Returns the per-song rows.
    """
    if dataset.split == "train":
        raise ValueError("evaluate_model needs whole songs: use a split other than 'train'")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in tqdm(range(len(dataset)), desc="evaluating", disable=not progress):
        song = dataset.target_songs[index]
        mixture, references = dataset[index]
        estimates = separate_sources(
            model, mixture.unsqueeze(0).to(device), dataset.sample_rate, segment, overlap,
            number_sources=2, device=device,
        )[0].cpu().numpy()  # fmt: skip
        rows.append(
            {"song": song, **score_track(references.numpy(), estimates, dataset.sample_rate)}
        )
        if n_save_examples < 0 or index < n_save_examples:
            for name, estimate in zip(SOURCE_NAMES, estimates, strict=True):
                path = out_dir / song / f"{name}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                write_atomically(
                    path,
                    lambda temporary, audio=estimate: sf.write(
                        temporary, audio.T, dataset.sample_rate, format="WAV"
                    ),
                )
    columns = ["song", *(f"{n}_{m}" for n in SOURCE_NAMES for m in ("sdr", "si_sdr"))]
    median = {
        "song": "median",
        **{c: float(np.nanmedian([r[c] for r in rows])) for c in columns[1:]},
    }
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=columns)
    writer.writeheader()
    writer.writerows([*rows, median])
    text = table.getvalue()
    write_atomically(out_dir / "results.csv", lambda temporary: temporary.write_text(text))
    return rows
