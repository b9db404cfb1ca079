"""Locate, validate and load the eight per-instrument CAD2 Task 2 separation checkpoints.

Each instrument has a causal and a non-causal Conv-TasNet, published on the Hugging Face hub as
``cadenzachallenge/ConvTasNet_<Instrument>_<Causal|NonCausal>`` (``config.json`` +
``model.safetensors``). A local ``checkpoint_dir`` holds the same folders side by side.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from clarity.separation.convtasnet import CONFIG_FILE, WEIGHTS_FILE, ConvTasNetStereo
from clarity.separation.inference import resolve_device

logger = logging.getLogger(__name__)

INSTRUMENTS = ("Bassoon", "Cello", "Clarinet", "Flute", "Oboe", "Sax", "Viola", "Violin")
CAUSALITY_SUFFIX = {"causal": "Causal", "noncausal": "NonCausal"}
HUB_ORGANISATION = "cadenzachallenge"


def _causality_suffix(causality: str) -> str:
    if causality not in CAUSALITY_SUFFIX:
        raise ValueError(f"causality must be one of {sorted(CAUSALITY_SUFFIX)}, got {causality!r}")
    return CAUSALITY_SUFFIX[causality]


def _check_instruments(instruments: Sequence[str]) -> list[str]:
    if isinstance(instruments, str):
        raise ValueError(f"instruments must be a sequence of names, got the string {instruments!r}")
    unknown = [name for name in instruments if name not in INSTRUMENTS]
    if unknown:
        raise ValueError(f"unknown instruments {unknown}; expected names from {INSTRUMENTS}")
    return list(dict.fromkeys(instruments))


def checkpoint_name(instrument: str, causality: str) -> str:
    """Folder / hub repo name, e.g. "ConvTasNet_Violin_Causal" for ("Violin", "causal")."""
    _check_instruments([instrument])
    return f"ConvTasNet_{instrument}_{_causality_suffix(causality)}"


def validate_checkpoint_dir(
    checkpoint_dir: str | Path,
    causality: str,
    instruments: Sequence[str] = INSTRUMENTS,
) -> dict[str, Path]:
    """Check that ``checkpoint_dir`` holds a complete checkpoint folder per instrument.

    Returns instrument -> checkpoint folder. Raises one ``ValueError`` listing every missing
    folder and file (and a config whose ``causal`` flag contradicts ``causality``), so a recipe
    can fail before any model is loaded.
    """
    suffix = _causality_suffix(causality)
    names = _check_instruments(instruments)
    root = Path(checkpoint_dir)
    if not root.is_dir():
        raise ValueError(f"checkpoint_dir {root} is not a directory")
    folders, problems = {}, []
    for instrument in names:
        folder = root / checkpoint_name(instrument, causality)
        folders[instrument] = folder
        if not folder.is_dir():
            problems.append(f"missing folder {folder}")
            continue
        absent = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / name).is_file()]
        problems.extend(f"missing file {folder / name}" for name in absent)
        if CONFIG_FILE not in absent:
            problems.extend(_config_problems(folder / CONFIG_FILE, causal=suffix == "Causal"))
        if WEIGHTS_FILE not in absent:
            problems.extend(_weights_problems(folder / WEIGHTS_FILE))
    if problems:
        raise ValueError(
            f"incomplete {causality} separation checkpoints in {root}:\n  " + "\n  ".join(problems)
        )
    return folders


def _weights_problems(weights_path: Path) -> list[str]:
    """A weights file whose safetensors header cannot be read (cut short, or not safetensors);
    reads the header only."""
    try:
        with safe_open(str(weights_path), framework="pt") as weights:
            weights.keys()
    except (SafetensorError, OSError) as error:
        return [f"unreadable {weights_path}: not a complete safetensors file ({error})"]
    return []


def _config_problems(config_path: Path, causal: bool) -> list[str]:
    try:
        values = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return [f"unreadable {config_path} ({error})"]
    if not isinstance(values, dict):
        return [f"{config_path} is not a JSON object"]
    if values.get("causal", False) != causal:
        return [f"{config_path} has causal={values.get('causal')!r}, expected {causal}"]
    return []


def load_separation_models(
    causality: str,
    checkpoint_dir: str | Path | None = None,
    instruments: Sequence[str] = INSTRUMENTS,
    device: torch.device | str = "cpu",
    force_download: bool = False,
) -> dict[str, ConvTasNetStereo]:
    """Load one Conv-TasNet per instrument, in eval mode on ``device``.

    Args:
        causality: "causal" or "noncausal".
        checkpoint_dir: local folder with ``ConvTasNet_<Instrument>_<Causal|NonCausal>/``
            subfolders (validated before anything loads); None downloads the hub repos
            ``cadenzachallenge/ConvTasNet_<Instrument>_<Causal|NonCausal>``.
        instruments: which instruments to load (repeats are loaded once).
        device: torch device for the models.
        force_download: download the hub repos again even when cached (the recipe's
            ``separator.force_redownload``); local folders are always read as they are.
    """
    names = _check_instruments(instruments)
    _causality_suffix(causality)
    device = resolve_device(device)
    if checkpoint_dir is not None:
        sources = {
            k: str(v) for k, v in validate_checkpoint_dir(checkpoint_dir, causality, names).items()
        }
    else:
        sources = {name: f"{HUB_ORGANISATION}/{checkpoint_name(name, causality)}" for name in names}
    models = {}
    for instrument, source in sources.items():
        logger.info("Loading %s separation model from %s", instrument, source)
        models[instrument] = ConvTasNetStereo.from_pretrained(
            source, device=device, force_download=force_download
        )
    return models
