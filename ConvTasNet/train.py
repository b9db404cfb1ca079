"""Train CAD2 Task 2 Conv-TasNets, one instrument or all eight (argparse front end).

Example (published size, non-causal Violin model):

    python ConvTasNet/train.py --root /data/cad2/task2 --target Violin --exp_dir exp/violin

On several GPUs (or CPU processes, with gloo), the same options under torchrun; ``--batch_size``
is then the global batch, shared out among the processes:

    torchrun --nproc_per_node=4 ConvTasNet/train.py --root /data/cad2/task2 --target Violin \
        --exp_dir exp/violin --precision bfloat16

All instruments of the training data (the eight of CAD2), one after the other, each in
``<exp_dir>/<Instrument>``, their best
models gathered into the folder that the recipe's ``separator.checkpoint_dir`` takes (for
parallel jobs instead, one ``--target`` per job with the same ``--checkpoint_dir``; see
ConvTasNet/slurm/):

    python ConvTasNet/train.py --root /data/cad2/task2 --target all --exp_dir exp/all \
        --checkpoint_dir checkpoints

Rerunning the same command (with any number of processes) continues an interrupted run from
``<exp_dir>/checkpoints/last.pt``.
The best model is exported to ``<exp_dir>/ConvTasNet_<Instrument>_<Causal|NonCausal>/``.
The options are generated from ``TrainingConfig`` and, for the model, from the fields of
``ConvTasNetConfig`` (its defaults and help texts). See ConvTasNet/README.md.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import MISSING, fields
from pathlib import Path

from clarity.separation.checkpoints import INSTRUMENTS
from clarity.separation.convtasnet import ConvTasNetConfig, ConvTasNetStereo
from clarity.separation.dataset import load_music_metadata
from clarity.separation.distributed import leave_process_group
from clarity.separation.inference import AUTOCAST_DTYPES
from clarity.separation.training import TrainingConfig, train

HELP = {
    "exp_dir": "experiment folder (checkpoints, export, train_config.json)",
    "root": "CAD2 Task 2 folder holding metadata/music.{train,valid}.json and audio/",
    "target": "instrument to separate, or all: each of the training data's instruments in turn, "
    "in <exp_dir>/<Instrument>",
    "sample_rate": "sample rate of the audio and the model, Hz",
    "segment": "training excerpt length, s",
    "samples_per_track": "training excerpts per target stem per epoch",
    "epochs": "maximum number of epochs",
    "batch_size": "training batch size",
    "aggregate": "batches accumulated per optimiser step",
    "lr": "Adam learning rate",
    "half_lr": "halve the learning rate after 5 epochs without validation improvement",
    "early_stop": "stop after 20 epochs without validation improvement",
    "num_workers": "data loading worker processes",
    "max_minutes": "wall-clock budget in minutes for this call (the run stays resumable)",
    "device": "cpu or cuda (default: cuda when available; under torchrun each process's GPU)",
    "precision": "float32, or autocast to bfloat16 or float16 (CUDA only, gradient scaling)",
    "coherent_probability": "share of train items cut from one song (its own accompaniment at "
    "the same offset) instead of mixed at random from several songs (official: 0)",
    "compile": "run training steps through torch.compile (faster after a compilation)",
    "init_from": "checkpoint folder whose weights start a new run (fine-tuning), e.g. published",
    "seed": "random seed",
}
REQUIRED = ("exp_dir", "root", "target")
FLOAT_OPTIONS = ("lr", "segment", "coherent_probability", "max_minutes")
MODEL_DEFAULTS = ConvTasNetConfig()
ALL_TARGETS = "all"
CHOICES = {"target": (*INSTRUMENTS, ALL_TARGETS), "precision": tuple(AUTOCAST_DTYPES)}


def _options() -> list[tuple[str, object, str]]:
    """(name, default, help) of every option: training fields, then the model's fields."""
    options = []
    for option in fields(TrainingConfig):
        if option.name == "model":
            options.append(("sample_rate", MODEL_DEFAULTS.samplerate, HELP["sample_rate"]))
            continue
        default = None if option.default is MISSING else option.default
        options.append((option.name, default, HELP[option.name]))
    for option in fields(ConvTasNetConfig):
        if option.name == "samplerate":
            continue
        default = getattr(MODEL_DEFAULTS, option.name)
        help_text = option.metadata["help"]
        if option.name == "norm_type":
            default, help_text = None, f"{help_text} (default: cLN if causal else gLN)"
        options.append((option.name, default, help_text))
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for name, default, help_text in _options():
        if isinstance(default, bool):
            parser.add_argument(
                f"--{name}", action=argparse.BooleanOptionalAction, default=default,
                help=help_text,
            )  # fmt: skip
            continue
        kind = float if name in FLOAT_OPTIONS else int if isinstance(default, int) else str
        parser.add_argument(
            f"--{name}", type=kind, required=name in REQUIRED, default=default, help=help_text,
            choices=CHOICES.get(name),
        )  # fmt: skip
    parser.add_argument(
        "--checkpoint_dir", type=Path, default=None,
        help="also save each best model here as ConvTasNet_<Instrument>_<Causal|NonCausal>/, "
        "the layout of separator.checkpoint_dir",
    )  # fmt: skip
    return parser


def training_instruments(root: str) -> list[str]:
    """The instruments with stems in ``<root>/metadata/music.train.json`` (all eight in CAD2)."""
    songs = load_music_metadata(Path(root) / "metadata" / "music.train.json")
    present = {stem.instrument for stems in songs.values() for stem in stems}
    return [instrument for instrument in INSTRUMENTS if instrument in present]


def main() -> None:
    main_process = os.environ.get("RANK", "0") == "0"  # torchrun's other ranks only warn
    logging.basicConfig(
        level=logging.INFO if main_process else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    options = vars(build_parser().parse_args())
    checkpoint_dir = options.pop("checkpoint_dir")
    everything = options["target"] == ALL_TARGETS
    for target in training_instruments(options["root"]) if everything else [options["target"]]:
        exp_dir = Path(options["exp_dir"]) / target if everything else options["exp_dir"]
        config = TrainingConfig.from_flat({**options, "target": target, "exp_dir": exp_dir})
        result = train(config)
        if checkpoint_dir is not None and main_process:
            gathered = checkpoint_dir / result.export_dir.name
            ConvTasNetStereo.from_pretrained(result.export_dir).save_pretrained(gathered)
            logging.info("Saved %s", gathered)
        logging.info(
            "%s: stopped (%s) after %d epochs; best validation L1 %.5f at epoch %d; model in %s",
            target, result.stopped_because, result.epochs_completed, result.best_loss,
            result.best_epoch, result.export_dir,
        )  # fmt: skip
    leave_process_group()


if __name__ == "__main__":
    main()
