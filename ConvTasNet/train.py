"""Train a CAD2 Task 2 Conv-TasNet for one instrument (argparse front end).

Example (published size, non-causal Violin model):

    python ConvTasNet/train.py --root /data/cad2/task2 --target Violin --exp_dir exp/violin

Rerunning the same command continues an interrupted run from ``<exp_dir>/checkpoints/last.pt``.
The best model is exported to ``<exp_dir>/ConvTasNet_<Instrument>_<Causal|NonCausal>/``.
See ConvTasNet/README.md for every option.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import fields

from clarity.separation.checkpoints import INSTRUMENTS
from clarity.separation.training import TrainingConfig, train

HELP = {
    "exp_dir": "experiment folder (checkpoints, export, train_config.json)",
    "root": "CAD2 Task 2 folder holding metadata/music.{train,valid}.json and audio/",
    "target": "instrument to separate",
    "sample_rate": "sample rate of the audio, Hz",
    "segment": "training excerpt length, s",
    "samples_per_track": "training excerpts per target stem per epoch",
    "causal": "causal model (left padding, cLN unless --norm_type is given)",
    "n_src": "model outputs (target, accompaniment)",
    "norm_type": "gLN or cLN (default: cLN if causal else gLN)",
    "epochs": "maximum number of epochs",
    "batch_size": "training batch size",
    "aggregate": "batches accumulated per optimiser step",
    "lr": "Adam learning rate",
    "half_lr": "halve the learning rate after 5 epochs without validation improvement",
    "early_stop": "stop after 20 epochs without validation improvement",
    "num_workers": "data loading worker processes",
    "max_minutes": "wall-clock budget in minutes for this call (the run stays resumable)",
    "device": "cpu or cuda (default: cuda when available)",
    "seed": "random seed",
    "N": "encoder filters",
    "L": "encoder filter length, samples (hop L/2)",
    "B": "bottleneck channels",
    "H": "channels inside a temporal block",
    "P": "depthwise kernel size",
    "X": "blocks per repeat (dilations 1..2**(X-1))",
    "R": "repeats",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = TrainingConfig.__dataclass_fields__
    for option in fields(TrainingConfig):
        default = defaults[option.name].default
        required = option.name in ("exp_dir", "root", "target")
        help_text = HELP[option.name]
        if isinstance(default, bool):
            parser.add_argument(
                f"--{option.name}", action=argparse.BooleanOptionalAction, default=default,
                help=help_text,
            )  # fmt: skip
            continue
        kind = {"lr": float, "segment": float, "max_minutes": float}.get(option.name)
        kind = kind or (int if isinstance(default, int) else str)
        parser.add_argument(
            f"--{option.name}", type=kind, required=required,
            default=None if required else default, help=help_text,
            choices=INSTRUMENTS if option.name == "target" else None,
        )  # fmt: skip
    return parser


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = TrainingConfig(**vars(build_parser().parse_args()))
    result = train(config)
    logging.info(
        "Stopped (%s) after %d epochs; best validation L1 %.5f at epoch %d; model in %s",
        result.stopped_because, result.epochs_completed, result.best_loss, result.best_epoch,
        result.export_dir,
    )  # fmt: skip


if __name__ == "__main__":
    main()
