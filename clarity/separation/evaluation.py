"""Separation quality of target / accompaniment estimates: BSSEval v4-style SDR and SI-SDR.

SDR follows the BSSEval v4 protocol of SiSEC 2018 / museval [1]: the signals are cut into 1 s
windows (1 s hop), the SDR of each window is computed with a 512-tap distortion filter and the
median over windows (silent reference windows skipped) is the track score; tracks are then
aggregated by their median. The SDR itself comes from ``fast_bss_eval`` [2]; each source is
scored against its own reference (no permutation), with the channels of a window concatenated
in time, so one distortion filter serves both channels. SI-SDR [3] is computed on the whole
track, channels concatenated.

References:
    [1] F.-R. Stöter, A. Liutkus and N. Ito, "The 2018 Signal Separation Evaluation Campaign",
        LVA/ICA 2018.
    [2] R. Scheibler, "SDR — Medium rare with fast computations", ICASSP 2022.
    [3] J. Le Roux, S. Wisdom, H. Erdogan and J. R. Hershey, "SDR — half-baked or well done?",
        ICASSP 2019.
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


def _as_pair(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if reference.shape != estimate.shape or reference.ndim != 2:
        raise ValueError(
            "reference and estimate must both be (channels, samples), got "
            f"{reference.shape} and {estimate.shape}"
        )
    return reference, estimate


def framewise_sdr(
    reference: np.ndarray, estimate: np.ndarray, sample_rate: int, window: float = 1.0
) -> float:
    """Median SDR in dB over non-overlapping ``window``-second frames of (channels, samples).

    Frames where the reference or the estimate is silent are skipped; NaN if none remain.
    """
    reference, estimate = _as_pair(reference, estimate)
    frame = int(window * sample_rate)
    n_frames = reference.shape[1] // frame
    if n_frames == 0:  # shorter than one window: score the whole signal
        frame, n_frames = reference.shape[1], 1
    length = n_frames * frame
    # (frames, channels * frame): each frame's channels concatenated in time
    ref_frames = reference[:, :length].reshape(-1, n_frames, frame).transpose(1, 0, 2)
    est_frames = estimate[:, :length].reshape(-1, n_frames, frame).transpose(1, 0, 2)
    ref_frames = ref_frames.reshape(n_frames, 1, -1)
    est_frames = est_frames.reshape(n_frames, 1, -1)
    active = (np.abs(ref_frames).max(axis=(1, 2)) > 0) & (np.abs(est_frames).max(axis=(1, 2)) > 0)
    if not active.any():
        return float("nan")
    filter_length = min(512, ref_frames.shape[-1])
    scores = fast_bss_eval.sdr(
        ref_frames[active], est_frames[active], filter_length=filter_length, clamp_db=MAX_DB
    )
    return float(np.median(scores[:, 0]))


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
    scores = {}
    for name, reference, estimate in zip(SOURCE_NAMES, references, estimates, strict=True):
        scores[f"{name}_sdr"] = framewise_sdr(reference, estimate, sample_rate)
        scores[f"{name}_si_sdr"] = si_sdr(reference, estimate)
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
