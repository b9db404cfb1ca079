"""Merging the batch score files of an experiment (`baseline/merge_batches_results.py`)."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from clarity.cad2.batching import select_batch
from clarity.cad2.metadata import load_recipe_metadata, scene_listener_pairs
from clarity.cad2.scores import Pair, merge_batch_scores

logger = logging.getLogger(__name__)


def batch_pairs(config: DictConfig) -> list[list[Pair]]:
    """For each of the `evaluate.batch_size` batches, the pairs it scores (from the metadata)."""
    metadata = load_recipe_metadata(config.path)
    pairs = scene_listener_pairs(metadata.scene_listeners, config.evaluate.small_test)
    return [
        select_batch(pairs, batch, config.evaluate.batch_size)
        for batch in range(config.evaluate.batch_size)
    ]


def run_merge(config: DictConfig) -> tuple[Path, list[Pair]]:
    """Verify and join the batch files of `path.exp_folder` into `scores.csv`.

    `evaluate.allow_partial_merge` merges what is there and logs what is missing.

    Returns:
        The merged file and the pairs missing from it.

    Raises:
        clarity.cad2.scores.MergeError: a batch file or pair is missing, repeated, in the wrong
            batch, or scored with other settings (see `merge_batch_scores`).
    """
    merged, missing = merge_batch_scores(
        config.path.exp_folder, batch_pairs(config), config.evaluate.allow_partial_merge
    )
    if missing:
        logger.warning("%s lacks %d pair(s)", merged, len(missing))
    return merged, missing
