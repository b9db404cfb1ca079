"""The enhancement pipeline: separate, rebalance, remix, level, compress, save.

For each scene-listener pair: the mixture segment is read, every source is estimated by the
configured separator, each estimate's loudness is changed by its gain (voices of a repeated
instrument share the mean gain), the estimates are summed, scaled by the level adjustment of
the scene's gains, compressed per ear with the listener's settings and saved as a 16-bit FLAC
at `remix_sample_rate`, clipped, to
`<path.exp_folder>/enhanced_signals/<split>/<scene>_<listener>_remix.flac`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from clarity.cad2.audio_io import (
    read_segment,
    resampled_length,
    segment_length,
    signal_file_problem,
)
from clarity.cad2.batching import select_batch
from clarity.cad2.experiment import claim_exp_folder
from clarity.cad2.metadata import (
    RecipeMetadata,
    load_recipe_metadata,
    scene_listener_pairs,
    split_of_scene,
)
from clarity.cad2.preflight import (
    check_audio_files,
    check_compressor_bands,
    check_config,
    check_instruments,
)
from clarity.cad2.remix import (
    adjust_level,
    apply_gains,
    average_repeated_instrument_gains,
    compress_ears,
    ear_compressor_settings,
    remix_stems,
)
from clarity.cad2.runner import Pair, RunSummary, raise_for_failures, run_pairs
from clarity.cad2.separators import Separator, build_separator, is_listener_aware
from clarity.enhancer.multiband_compressor import MultibandCompressor
from clarity.utils.flac_encoder import save_flac_signal

logger = logging.getLogger(__name__)

ENHANCED_FOLDER = "enhanced_signals"


def enhanced_path(exp_folder: str | Path, scene_id: str, listener_id: str) -> Path:
    """Where the enhanced signal of a scene-listener pair is saved."""
    return (
        Path(exp_folder) / ENHANCED_FOLDER / split_of_scene(scene_id)
        / f"{scene_id}_{listener_id}_remix.flac"
    )


def selected_pairs(config: DictConfig, metadata: RecipeMetadata) -> list[Pair]:
    """The pairs of this run's batch (`evaluate.batch` of `evaluate.batch_size`)."""
    pairs = scene_listener_pairs(metadata.scene_listeners, config.evaluate.small_test)
    return select_batch(pairs, config.evaluate.batch, config.evaluate.batch_size)


def load_run_inputs(config: DictConfig) -> tuple[RecipeMetadata, list[Pair]]:
    """Check the config, load and validate the metadata, and select this run's batch of pairs.

    Shared by enhance and evaluate so both refuse the same bad input before any work.

    Raises:
        ValueError: naming the config key, metadata file or key that is wrong.
    """
    check_config(config)
    metadata = load_recipe_metadata(config.path)
    check_compressor_bands(
        metadata, len(config.enhancer.crossover_frequencies) + 1, config.path.enhancer_params_file
    )
    return metadata, selected_pairs(config, metadata)


def make_compressor(config: DictConfig) -> MultibandCompressor:
    """The multiband compressor at `input_sample_rate` with the config's crossovers (Hz)."""
    return MultibandCompressor(
        crossover_frequencies=[float(f) for f in config.enhancer.crossover_frequencies],
        sample_rate=config.input_sample_rate,
    )


def scene_remix(
    scene_id: str,
    metadata: RecipeMetadata,
    separator: Separator,
    config: DictConfig,
    listener_id: str | None = None,
) -> np.ndarray:
    """The separated, rebalanced and levelled remix of a scene, before compression.

    The scene's gains do not depend on the listener, so neither does this remix unless the
    separator does (`separator.listener_aware`: it is then called with `listener_id`).

    Returns:
        `(samples, 2)` at `input_sample_rate`.
    """
    song = metadata.song_of(scene_id)
    gains = metadata.gains_of(scene_id)
    sample_rate = config.input_sample_rate
    mixture = read_segment(
        Path(config.path.music_dir) / song.mixture.track,
        sample_rate,
        song.mixture.start,
        song.mixture.duration,
    )
    if is_listener_aware(separator):
        estimates = separator(song, mixture, listener_id=listener_id)
    else:
        estimates = separator(song, mixture)
    rebalanced = apply_gains(
        estimates, sample_rate, average_repeated_instrument_gains(gains, song.source_instruments())
    )
    return adjust_level(remix_stems(rebalanced), gains)


def compress_for_listener(
    remix: np.ndarray,
    listener_id: str,
    metadata: RecipeMetadata,
    compressor: MultibandCompressor,
    config: DictConfig,
) -> np.ndarray:
    """A scene's remix compressed per ear with the listener's settings: `(samples, 2)`."""
    settings = ear_compressor_settings(
        metadata.compressor_params[listener_id],
        config.enhancer.attack,
        config.enhancer.release,
        config.enhancer.threshold,
    )
    return compress_ears(remix, compressor, settings)


def enhance_pair(
    pair: Pair,
    metadata: RecipeMetadata,
    separator: Separator,
    compressor: MultibandCompressor,
    config: DictConfig,
) -> np.ndarray:
    """Enhanced signal of one scene for one listener.

    Returns:
        `(samples, 2)` float64 at `input_sample_rate`, before clipping and resampling.
    """
    scene_id, listener_id = pair
    remix = scene_remix(scene_id, metadata, separator, config, listener_id)
    return compress_for_listener(remix, listener_id, metadata, compressor, config)


def grouped_by_scene(pairs: list[Pair]) -> list[Pair]:
    """The pairs with those of one scene next to each other, scenes in order of first
    appearance, listeners in their order."""
    listeners: dict[str, list[str]] = {}
    for scene_id, listener_id in pairs:
        listeners.setdefault(scene_id, []).append(listener_id)
    return [(scene_id, listener_id) for scene_id, ids in listeners.items() for listener_id in ids]


def enhanced_signal_problem(
    config: DictConfig, metadata: RecipeMetadata, pair: Pair
) -> str | None:
    """Why the enhanced FLAC of a pair is not a complete enhanced signal (missing, undecodable,
    or not `remix_sample_rate` Hz stereo of the mixture segment's length), or None."""
    path = enhanced_path(config.path.exp_folder, *pair)
    if not path.is_file():
        return "not found"
    mixture = metadata.song_of(pair[0]).mixture
    samples = resampled_length(
        segment_length(config.input_sample_rate, mixture.start, mixture.duration),
        config.input_sample_rate,
        config.remix_sample_rate,
    )
    return signal_file_problem(path, config.remix_sample_rate, 2, samples)


def is_enhanced(config: DictConfig, metadata: RecipeMetadata, pair: Pair) -> bool:
    """Whether a pair's enhanced FLAC exists and is complete; an existing file that is not is
    logged and will be made again."""
    problem = enhanced_signal_problem(config, metadata, pair)
    if problem is not None and problem != "not found":
        logger.warning(
            "%s: %s; enhancing it again", enhanced_path(config.path.exp_folder, *pair), problem
        )
    return problem is None


def run_enhance(config: DictConfig) -> RunSummary:
    """Enhance every pair of the batch; skip pairs already saved unless `overwrite`.

    The pairs of a scene are done one after the other and, unless the separator is listener
    aware, share one separation and remix: only the compression depends on the listener.

    Raises:
        ValueError: before any work, for a bad config, metadata or audio file.
        FailedScenesError: after the run, listing the pairs that failed.
    """
    metadata, pairs = load_run_inputs(config)
    song_names = dict.fromkeys(metadata.scenes[scene].music for scene, _ in pairs)
    songs = [metadata.songs[name] for name in song_names]
    music_dir = Path(config.path.music_dir)
    audio = [music_dir / song.mixture.track for song in songs]
    if config.separator.type == "oracle":
        audio += [music_dir / track.track for song in songs for track in song.sources.values()]
    check_audio_files(audio, config.input_sample_rate)
    instruments = sorted({i for song in songs for i in song.source_instruments().values()})
    if config.separator.type == "convtasnet":
        from clarity.separation.checkpoints import INSTRUMENTS, validate_checkpoint_dir

        check_instruments(songs, INSTRUMENTS)
        if config.separator.checkpoint_dir is not None:
            validate_checkpoint_dir(
                config.separator.checkpoint_dir, config.separator.causality, instruments
            )

    exp_folder = Path(config.path.exp_folder)
    claim_exp_folder(config)
    logger.info("Enhancing %d pair(s) into %s", len(pairs), exp_folder / ENHANCED_FOLDER)
    state: dict = {}

    def prepare() -> None:
        state["separator"] = build_separator(
            config.separator, music_dir, config.input_sample_rate, instruments
        )
        state["compressor"] = make_compressor(config)

    def enhance_and_save(pair: Pair) -> None:
        scene_id, listener_id = pair
        separator = state["separator"]
        if is_listener_aware(separator) or state.get("remix_scene") != scene_id:
            state["remix_scene"] = None
            state["remix"] = scene_remix(scene_id, metadata, separator, config, listener_id)
            state["remix_scene"] = scene_id
        signal = compress_for_listener(
            state["remix"], listener_id, metadata, state["compressor"], config
        )
        save_flac_signal(
            signal=signal,
            filename=enhanced_path(exp_folder, *pair),
            signal_sample_rate=config.input_sample_rate,
            output_sample_rate=config.remix_sample_rate,
            do_clip_signal=True,
            do_soft_clip=config.soft_clip,
        )

    summary = run_pairs(
        grouped_by_scene(pairs),
        enhance_and_save,
        stage="enhance",
        is_done=lambda pair: not config.overwrite and is_enhanced(config, metadata, pair),
        initializer=prepare,
    )
    raise_for_failures(summary)
    return summary
