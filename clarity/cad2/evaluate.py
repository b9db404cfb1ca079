"""The evaluation pipeline: HAAQI of each enhanced signal against its rebalanced reference.

The reference of a pair is built from the true stems: each whole stem track's loudness is
changed by the scene's gain, the stems are summed, scaled by the level adjustment, cut to the
mixture's segment and compressed per ear with the listener's settings. Each ear is scored with
HAAQI (Kates & Arehart 2016) at `HAAQI_sample_rate`, with `equalisation=2` and
`level1 = 65 - 20 log10(rms)` of that channel of the uncompressed reference mixture. The
enhanced FLAC is resampled from `remix_sample_rate`, the reference from `input_sample_rate`.
When `evaluate.set_random_seed`, NumPy's legacy generator is seeded with
`seed_from_text(scene id)` before the left ear is scored, so HAAQI's internal noise repeats
from run to run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from clarity.cad2.audio_io import cut_segment, read_track
from clarity.cad2.batching import scores_file_name
from clarity.cad2.enhance import (
    enhanced_path,
    enhanced_signal_problem,
    load_run_inputs,
    make_compressor,
)
from clarity.cad2.metadata import RecipeMetadata, Song
from clarity.cad2.preflight import check_audio_files
from clarity.cad2.remix import (
    EARS,
    adjust_level,
    apply_gains,
    compress_ears,
    ear_compressor_settings,
    remix_stems,
)
from clarity.cad2.runner import Pair, RunSummary, raise_for_failures, run_pairs
from clarity.cad2.scores import mean_scores, open_scores_file, score_settings
from clarity.cad2.seeding import seed_from_text
from clarity.enhancer.multiband_compressor import MultibandCompressor
from clarity.evaluator.haaqi import compute_haaqi
from clarity.utils.audiogram import Listener
from clarity.utils.file_lock import exclusive_lock
from clarity.utils.flac_encoder import read_flac_signal, save_flac_signal
from clarity.utils.signal_processing import compute_rms, resample

logger = logging.getLogger(__name__)

# Audiogram.severity labels, mildest first, and their names in the score plots.
SEVERITY_NAMES = {"NOTHING": "no loss", "MILD": "mild", "MODERATE": "moderate", "SEVERE": "severe"}


def reference_mixture(
    song: Song, gains: dict[str, float], music_dir: str | Path, sample_rate: int
) -> np.ndarray:
    """Rebalanced, levelled reference over the mixture's segment: `(samples, channels)`.

    Args:
        song: its source tracks are read whole, rebalanced, summed, then cut.
        gains: source id -> dB (as listed for the scene, no averaging of repeated voices).
        music_dir: folder the tracks are relative to.
        sample_rate: Hz of every track.
    """
    stems = {
        source: read_track(Path(music_dir) / track.track, sample_rate)
        for source, track in song.sources.items()
    }
    remix = adjust_level(remix_stems(apply_gains(stems, sample_rate, gains)), gains)
    return cut_segment(remix, sample_rate, song.mixture.start, song.mixture.duration)


def score_pair(
    pair: Pair,
    metadata: RecipeMetadata,
    compressor: MultibandCompressor,
    config: DictConfig,
) -> dict[str, Any]:
    """HAAQI of one enhanced signal: the row of the scores file."""
    scene_id, listener_id = pair
    song = metadata.song_of(scene_id)
    listener = metadata.listeners[listener_id]
    path = enhanced_path(config.path.exp_folder, scene_id, listener_id)
    problem = enhanced_signal_problem(config, metadata, pair)
    if problem == "not found":
        raise FileNotFoundError(f"enhanced signal not found: {path}")
    if problem is not None:
        raise ValueError(f"enhanced signal {path}: {problem}; run enhance again")
    enhanced, _ = read_flac_signal(path)
    reference = reference_mixture(
        song, metadata.gains_of(scene_id), config.path.music_dir, config.input_sample_rate
    )
    silent = [ear for channel, ear in enumerate(EARS) if not np.any(reference[:, channel])]
    if silent:
        raise ValueError(
            f"the reference mixture of scene {scene_id} is silent in the {' and '.join(silent)} "
            "channel(s) (all its stems are silent there): HAAQI is undefined for a silent "
            "reference (the official toolkit stops with an IndexError)"
        )
    settings = ear_compressor_settings(
        metadata.compressor_params[listener_id],
        config.enhancer.attack,
        config.enhancer.release,
        config.enhancer.threshold,
    )
    compressed_reference = compress_ears(reference, compressor, settings)
    if config.evaluate.save_references:
        from clarity.cad2.report import reference_path

        save_flac_signal(
            signal=compressed_reference,
            filename=reference_path(config.path.exp_folder, scene_id, listener_id),
            signal_sample_rate=config.input_sample_rate,
            output_sample_rate=config.remix_sample_rate,
            do_clip_signal=True,
        )
    if config.evaluate.set_random_seed:
        np.random.seed(seed_from_text(scene_id))
    scores = {}
    for channel, ear in enumerate(EARS):
        scores[ear] = compute_haaqi(
            processed_signal=resample(
                enhanced[:, channel], config.remix_sample_rate, config.HAAQI_sample_rate
            ),
            reference_signal=resample(
                compressed_reference[:, channel], config.input_sample_rate, config.HAAQI_sample_rate
            ),
            processed_sample_rate=config.HAAQI_sample_rate,
            reference_sample_rate=config.HAAQI_sample_rate,
            audiogram=getattr(listener, f"audiogram_{ear}"),
            equalisation=2,
            level1=65 - 20 * np.log10(compute_rms(reference[:, channel])),
        )
    not_finite = {ear: score for ear, score in scores.items() if not np.isfinite(score)}
    if not_finite:
        raise ValueError(
            f"HAAQI of scene {scene_id} listener {listener_id} is not finite: {not_finite}"
        )
    return {
        "scene": scene_id,
        "song": song.name,
        "listener": listener.id,
        "left_haaqi": float(scores["left"]),
        "right_haaqi": float(scores["right"]),
        "avg_haaqi": float(np.mean([scores["left"], scores["right"]])),
    }


_worker: dict[str, Any] = {}


def _prepare_worker(config: dict, metadata: RecipeMetadata) -> None:
    """Set up a scoring process (or this one): the config, metadata and a compressor."""
    _worker["config"] = OmegaConf.create(config)
    _worker["metadata"] = metadata
    _worker["compressor"] = make_compressor(_worker["config"])


def _score_in_worker(pair: Pair) -> dict[str, Any]:
    return score_pair(pair, _worker["metadata"], _worker["compressor"], _worker["config"])


def scores_path(config: DictConfig) -> Path:
    """`<path.exp_folder>/scores.csv`, or the batch's `scores_<batch + 1>-<batch_size>.csv`."""
    return Path(config.path.exp_folder) / scores_file_name(
        config.evaluate.batch, config.evaluate.batch_size
    )


def listener_severity(listener: Listener) -> str:
    """Hearing-loss grade of the worse ear ("no loss", "mild", "moderate" or "severe")."""
    grades = list(SEVERITY_NAMES)
    worse = max(
        (listener.audiogram_left.severity, listener.audiogram_right.severity), key=grades.index
    )
    return SEVERITY_NAMES[worse]


def plot_run_scores(config: DictConfig, metadata: RecipeMetadata, path: Path) -> Path:
    """Plot a scores file next to it (`.png`), with the bound runs of `evaluate.plot_bounds`
    (name -> experiment folder) whose score file of the same name exists.

    pandas and matplotlib are imported here, not with the module: a run that does not plot
    starts without them."""
    import pandas as pd

    from clarity.cad2.score_plots import plot_scores

    scores = pd.read_csv(path)
    bounds = {}
    for name, folder in config.evaluate.plot_bounds.items():
        bound_file = Path(folder) / path.name
        if bound_file.is_file() and bound_file.resolve() != path.resolve():
            bounds[name] = pd.read_csv(bound_file)
    return plot_scores(
        scores,
        path.with_suffix(".png"),
        {name: listener_severity(metadata.listeners[name]) for name in set(scores.listener)},
        {scene: len(metadata.song_of(scene).sources) for scene in set(scores.scene)},
        bounds,
    )


def run_evaluate(config: DictConfig) -> tuple[RunSummary, Path]:
    """Score every pair of the batch; keep rows already in the scores file unless `overwrite`.

    Pairs run in `evaluate.num_workers` processes; this process alone writes the scores file.

    Returns:
        The run summary and the scores file.

    The scores file is locked for the whole run (`evaluate.wait_for_lock`: wait for another run
    holding it instead of stopping).

    Raises:
        ValueError: before any work, for a bad config, metadata or reference audio file.
        FileLockedError: before any work, when another process writes the same scores file.
        FailedScenesError: after the run, listing the pairs that failed.
    """
    metadata, pairs = load_run_inputs(config)
    music_dir = Path(config.path.music_dir)
    check_audio_files(
        [
            music_dir / track.track
            for scene_id, _ in pairs
            for track in metadata.song_of(scene_id).sources.values()
        ],
        config.input_sample_rate,
    )
    path = scores_path(config)
    with exclusive_lock(path, wait=config.evaluate.wait_for_lock):
        return _evaluate_pairs(config, metadata, pairs, path)


def _evaluate_pairs(
    config: DictConfig, metadata: RecipeMetadata, pairs: list[Pair], path: Path
) -> tuple[RunSummary, Path]:
    """`run_evaluate` once its scores file is locked."""
    results, done = open_scores_file(
        path,
        config.overwrite,
        score_settings(config),
        config.evaluate.batch,
        config.evaluate.batch_size,
    )
    logger.info("Scoring %d pair(s) into %s", len(pairs), path)
    summary = run_pairs(
        pairs,
        _score_in_worker,
        stage="evaluate",
        is_done=lambda pair: pair in done,
        on_result=lambda _pair, row: results.add_result(row),
        num_workers=config.evaluate.num_workers,
        initializer=_prepare_worker,
        initargs=(OmegaConf.to_container(config, resolve=True), metadata),
    )
    if path.is_file() and (summary.processed or summary.skipped):
        means = mean_scores(path)
        logger.info("Mean HAAQI over %s: %.4f", path, means["avg_haaqi"])
        print(f"Mean HAAQI ({path.name}): {means['avg_haaqi']:.4f}")
        if config.evaluate.plot:
            logger.info("Scores plotted in %s", plot_run_scores(config, metadata, path))
        if config.evaluate.report:
            from clarity.cad2.report import write_report

            logger.info("Listening report in %s", write_report(config, metadata, path))
    raise_for_failures(summary)
    return summary, path
