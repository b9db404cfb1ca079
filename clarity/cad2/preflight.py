"""Checks run before any scene is processed, so a bad setting fails at once and clearly."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import soundfile as sf
from omegaconf import DictConfig, OmegaConf

from clarity.cad2.audio_io import audio_sample_rate
from clarity.cad2.metadata import RecipeMetadata
from clarity.cad2.separators import CAUSALITIES, SEPARATOR_TYPES


def check_config(config: DictConfig) -> None:
    """Check the settings both pipelines share.

    Raises:
        ValueError: `path.root` unset or not a folder, unknown `separator.type` or
            `separator.causality`, compressor lists of the wrong length, no scoring worker.
    """
    if OmegaConf.is_missing(config.path, "root") or not config.path.root:
        raise ValueError("path.root is not set: pass path.root=/path/to/cadenza_data/cad2/task2")
    root = Path(config.path.root)
    if not root.is_dir():
        raise ValueError(f"path.root={root} does not exist or is not a folder")
    if config.separator.causality not in CAUSALITIES:
        raise ValueError(
            f"separator.causality must be one of {list(CAUSALITIES)}, "
            f"got {config.separator.causality!r}"
        )
    if config.separator.type not in SEPARATOR_TYPES:
        raise ValueError(
            f"separator.type must be one of {list(SEPARATOR_TYPES)}, got {config.separator.type!r}"
        )
    num_bands = len(config.enhancer.crossover_frequencies) + 1
    for key in ("attack", "release", "threshold"):
        if len(config.enhancer[key]) != num_bands:
            raise ValueError(
                f"enhancer.{key} needs {num_bands} values (one per band of "
                f"enhancer.crossover_frequencies), got {len(config.enhancer[key])}"
            )
    for key in ("num_workers", "batch_size", "batch"):
        value = config.evaluate[key]
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"evaluate.{key} must be an integer, got {value!r}")
    if config.evaluate.num_workers < 1:
        raise ValueError(f"evaluate.num_workers must be >= 1, got {config.evaluate.num_workers}")


def check_compressor_bands(metadata: RecipeMetadata, num_bands: int, params_file: str) -> None:
    """Every listener's compressor settings have `num_bands` values."""
    for listener_id, params in metadata.compressor_params.items():
        if params.num_bands != num_bands:
            raise ValueError(
                f"{params_file}: listener {listener_id!r} has {params.num_bands} bands, the "
                f"config's enhancer.crossover_frequencies make {num_bands}"
            )


def check_instruments(songs: Iterable, known: Iterable[str]) -> None:
    """Every source's instrument has a separation model."""
    known = set(known)
    for song in songs:
        for source, instrument in song.source_instruments().items():
            if instrument not in known:
                raise ValueError(
                    f"song {song.name!r} {source}: no separation model for instrument "
                    f"{instrument!r}; models exist for {sorted(known)}"
                )


def check_audio_files(paths: Iterable[Path], sample_rate: int) -> None:
    """Every file exists and its header says `sample_rate` Hz.

    Raises:
        ValueError: listing the missing files, or naming a file with another sample rate.
    """
    paths = list(dict.fromkeys(Path(path) for path in paths))
    missing = [path for path in paths if not path.is_file()]
    if missing:
        shown = "\n  ".join(str(path) for path in missing[:10])
        more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise ValueError(f"{len(missing)} audio file(s) not found:\n  {shown}{more}")
    for path in paths:
        try:
            file_sample_rate = audio_sample_rate(path)
        except sf.LibsndfileError as error:
            raise ValueError(f"{path}: cannot read the audio header ({error})") from error
        if file_sample_rate != sample_rate:
            raise ValueError(
                f"{path}: sample rate {file_sample_rate} Hz, expected input_sample_rate="
                f"{sample_rate} Hz"
            )
