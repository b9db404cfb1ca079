"""Where a recipe run keeps its outputs, and which separator they belong to.

The official recipe writes the baseline's enhanced signals to `exp/enhanced_signals/...` and its
scores to `exp/`; this recipe keeps that default for the ConvTasNet separator and gives the
bounds their own folders inside it (`exp/oracle_<causality>`, `exp/passthrough_<causality>`),
through the `cad2_exp_folder` config resolver registered here.

Runs resume: an enhanced FLAC that exists is not made again. So that a folder never mixes the
outputs of two separators, enhance records the separator of a folder in `separator.json` and
refuses to add to a folder recorded for another one (unless `overwrite=true`, which redoes every
pair).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from clarity.demo import SHIPPED_MODELS
from clarity.utils.flac_encoder import write_atomically
from clarity.utils.json_files import read_json_object

BASELINE_SEPARATOR = "convtasnet"
SEPARATOR_FILE = "separator.json"  # the separator whose outputs an experiment folder holds


def default_exp_folder(separator_type: str, causality: str) -> str:
    """Experiment folder relative to the working directory: "exp" for the ConvTasNet baseline
    (the official layout), "exp/<type>_<causality>" for the oracle and passthrough bounds."""
    if separator_type == BASELINE_SEPARATOR:
        return "exp"
    return f"exp/{separator_type}_{causality}"


def separator_identity(config: DictConfig) -> dict[str, Any]:
    """The settings that decide what a separator outputs: its type and, for ConvTasNet, the
    causality, the checkpoint folder (as an absolute path, however it was spelt) and, when they
    are not the baseline's, the precision of separation and the Wiener filter."""
    identity: dict[str, Any] = {"type": str(config.separator.type)}
    if identity["type"] == BASELINE_SEPARATOR:
        checkpoint_dir = config.separator.checkpoint_dir
        identity["causality"] = str(config.separator.causality)
        identity["checkpoint_dir"] = (
            None if checkpoint_dir is None else str(Path(checkpoint_dir).expanduser().resolve())
        )
        precision = str(OmegaConf.select(config, "separator.separation.precision") or "float32")
        if precision != "float32":
            identity["precision"] = precision
        if OmegaConf.select(config, "separator.wiener_filter"):
            identity["wiener_filter"] = True
    return identity


def claim_exp_folder(config: DictConfig) -> None:
    """Record this run's separator in `<path.exp_folder>/separator.json`.

    Raises:
        ValueError: the folder is recorded for another separator and `overwrite` is false;
            the message names both and the ways out.
    """
    exp_folder = Path(config.path.exp_folder)
    record = exp_folder / SEPARATOR_FILE
    identity = separator_identity(config)
    if record.is_file() and not config.overwrite:
        recorded = read_json_object(record, "experiment separator record")
        if recorded != identity:
            raise ValueError(
                f"path.exp_folder {exp_folder} holds the outputs of separator {recorded} "
                f"({record}), not {identity}: choose another path.exp_folder, or set "
                "overwrite=true to redo every pair there"
            )
        return
    text = json.dumps(identity, indent=2, sort_keys=True) + "\n"
    write_atomically(record, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def process_id() -> str:
    """This process's id, so that two runs started in the same second log to two folders."""
    return str(os.getpid())


OmegaConf.register_new_resolver("cad2_exp_folder", default_exp_folder, replace=True)
OmegaConf.register_new_resolver("cad2_process_id", process_id, replace=True)
OmegaConf.register_new_resolver(
    "cad2_shipped_demo_models", lambda: str(SHIPPED_MODELS), replace=True
)
