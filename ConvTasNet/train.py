"""Train a CAD2 Task 2 Conv-TasNet for one instrument (argparse front end).

Example (published size, non-causal Violin model):

    python ConvTasNet/train.py --root /data/cad2/task2 --target Violin --exp_dir exp/violin

Rerunning the same command continues an interrupted run from ``<exp_dir>/checkpoints/last.pt``.
The best model is exported to ``<exp_dir>/ConvTasNet_<Instrument>_<Causal|NonCausal>/``.
The options are generated from ``TrainingConfig`` and, for the model, from the fields of
``ConvTasNetConfig`` (its defaults and help texts). See ConvTasNet/README.md.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import MISSING, fields

from clarity.separation.checkpoints import INSTRUMENTS
from clarity.separation.convtasnet import ConvTasNetConfig
from clarity.separation.training import TrainingConfig, train

HELP = {
    "exp_dir": "experiment folder (checkpoints, export, train_config.json)",
    "root": "CAD2 Task 2 folder holding metadata/music.{train,valid}.json and audio/",
    "target": "instrument to separate",
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
    "device": "cpu or cuda (default: cuda when available)",
    "seed": "random seed",
}
REQUIRED = ("exp_dir", "root", "target")
FLOAT_OPTIONS = ("lr", "segment", "max_minutes")
MODEL_DEFAULTS = ConvTasNetConfig()


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
            choices=INSTRUMENTS if name == "target" else None,
        )  # fmt: skip
    return parser


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = TrainingConfig.from_flat(vars(build_parser().parse_args()))
    result = train(config)
    logging.info(
        "Stopped (%s) after %d epochs; best validation L1 %.5f at epoch %d; model in %s",
        result.stopped_because, result.epochs_completed, result.best_loss, result.best_epoch,
        result.export_dir,
    )  # fmt: skip


if __name__ == "__main__":
    main()
