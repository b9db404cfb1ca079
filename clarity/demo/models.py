"""Train the demo's separation models on the demo training split, and record how.

One non-causal Conv-TasNet per instrument, trained with the project's training loop
(``clarity.separation.training``: L1 loss on target and accompaniment, Adam, accompaniments
drawn from other songs or, for a share of the items, the target's own song at the same offset)
and exported in the published checkpoint layout to
``<models_dir>/ConvTasNet_<Instrument>_NonCausal/`` (config.json + model.safetensors), the
folder ``separator.checkpoint_dir`` takes. Three recipes (``DEMO_TRAINING``):

* "shipped": the models committed with the project (``SHIPPED_MODELS``, used by ``make demo``),
  all eight instruments, a fixed number of epochs each, trained in rounds (a few epochs of every
  instrument in turn) so that a run stopped at any point leaves eight usable models; retrained
  from scratch by ``make demo-models`` (``python -m clarity.demo.models``);
* "small": ``make demo DEMO_ARGS="--train"``, a few minutes per instrument of the validation
  split, to see training at work (the models separate much worse than the shipped ones);
* "tiny": seconds per model, for the tests and CI.

The demo model is small so that it trains on a CPU: ``N=64`` encoder filters of ``L=40``
samples (hop 20), ``B=64`` bottleneck and ``H=128`` hidden channels, ``P=3`` kernels, ``X=8``
blocks per repeat (dilations 1 to 128) and ``R=2`` repeats: a receptive field of 1021 frames
(463 ms at 44.1 kHz, about the 0.5 s training segment) and about 0.30 M parameters (1.2 MB),
against 6.6 M for the published models (N=256, L=20, B=256, H=512, X=8, R=3). The receptive
field is what mattered most in trials on the Flute (docs/demo.md): ``X=6`` (115 ms) did
worse, and more encoder filters or wider blocks at ``X=6`` did not help. Its normalisation
is channel-wise (cLN, each frame on its own) rather than global (gLN): the models train on
0.5 s segments but separate 10 s chunks, and gLN statistics over so different lengths would
not agree.

``<models_dir>/demo_models.json`` (the manifest) records for each model the command that
trained it, the dataset's size, seed and rendering version, the training options, the epochs,
wall-clock seconds, device and processes, and the median target SI-SDR on the validation songs
holding the instrument. A model whose record has the same recipe, seed and rendering version
and all its epochs is reused; one with fewer epochs continues (from its training state, or
else from the exported weights, as a new run would on another machine, at the learning rate the
record's ``last_lr`` says the schedule had reached).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from clarity.cad2.metadata import load_music
from clarity.demo import SHIPPED_MODELS
from clarity.demo.dataset import MARKER_FILE, make_dataset
from clarity.demo.render import RENDERING_VERSION
from clarity.separation.checkpoints import INSTRUMENTS, checkpoint_name
from clarity.separation.convtasnet import (
    WEIGHTS_FILE,
    ConvTasNetConfig,
    ConvTasNetStereo,
)
from clarity.separation.dataset import RebalanceMusicDataset
from clarity.separation.evaluation import evaluate_model
from clarity.separation.training import STATE_FILE, TrainingConfig, train
from clarity.utils.file_lock import exclusive_lock
from clarity.utils.flac_encoder import write_atomically
from clarity.utils.json_files import read_json_object
from clarity.utils.machine import cpu_description

CAUSALITY = "noncausal"
DEMO_MODEL = ConvTasNetConfig(N=64, L=40, B=64, H=128, P=3, X=8, R=2, norm_type="cLN")
MANIFEST_FILE = "demo_models.json"
TRAINING_FOLDER = "training"  # <models_dir>/training/<Instrument>/: resumable training state


@dataclass(frozen=True)
class DemoTraining:
    """How demo models are trained.

    Attributes:
        epochs: epochs per model (a model with fewer in its record goes on training).
        minutes: wall-clock budget per model and call (None: none).
        round_epochs: epochs of each instrument per round (the instruments take turns).
        all_instruments: train all eight instruments, not only those of the validation split.
        segment, batch_size, samples_per_track, lr: training options (s, items, items, Adam).
        coherent_probability: share of training items cut from one song (see
            :mod:`clarity.separation.dataset`).
        compile: training steps through ``torch.compile``.
        model: the model's sizes.
    """

    epochs: int
    minutes: float | None = None
    round_epochs: int | None = None
    all_instruments: bool = False
    segment: float = 0.5
    batch_size: int = 4
    samples_per_track: int = 16
    lr: float = 2e-3
    coherent_probability: float = 0.0
    compile: bool = False
    model: ConvTasNetConfig = DEMO_MODEL

    def training_options(self) -> dict:
        """The options a model's record must share to be reused or trained further: all but
        the epochs (a longer recipe continues a shorter one) and the scheduling."""
        options = asdict(self)
        for name in ("epochs", "minutes", "round_epochs", "all_instruments"):
            del options[name]
        return {**options, "model": asdict(self.model)}

    def complete(self, record: dict) -> bool:
        """Whether a model of ``record`` (of this recipe) needs no more training."""
        return self.minutes is not None or record["epochs"] >= self.epochs


DEMO_TRAINING = {
    "shipped": DemoTraining(
        epochs=50,
        round_epochs=10,
        all_instruments=True,
        samples_per_track=8,
        coherent_probability=0.5,
        compile=True,
    ),
    "small": DemoTraining(epochs=10_000, minutes=2.5),
    "tiny": DemoTraining(epochs=10_000, minutes=0.15, samples_per_track=4),
}
DATASET_SIZE = {"shipped": "small", "small": "small", "tiny": "tiny"}


def validation_instruments(root: str | Path) -> list[str]:
    """Model instruments of the sources in ``<root>/metadata/music.valid.json``, sorted."""
    songs = load_music(Path(root) / "metadata" / "music.valid.json")
    return sorted({name for song in songs.values() for name in song.source_instruments().values()})


def read_manifest(models_dir: str | Path) -> dict[str, dict]:
    """``<models_dir>/demo_models.json``: instrument -> training record ({} if absent)."""
    path = Path(models_dir) / MANIFEST_FILE
    if not path.is_file():
        return {}
    return read_json_object(path, "demo models manifest (delete it to retrain)")


def _record_model(models_dir: Path, lock_dir: Path, instrument: str, record: dict) -> dict:
    """Set ``instrument``'s record in the manifest and return the whole manifest.

    The manifest is read again and written under a lock (in ``lock_dir``), so runs training
    other instruments into the same folder at the same time keep each other's records.
    """
    with exclusive_lock(lock_dir / MANIFEST_FILE, wait=True):
        manifest = {**read_manifest(models_dir), instrument: record}
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        write_atomically(models_dir / MANIFEST_FILE, lambda temporary: temporary.write_text(text))
    return manifest


def validation_si_sdr(model: ConvTasNetStereo, root: Path, instrument: str) -> dict[str, float]:
    """Target SI-SDR (dB) of ``model`` on each validation song holding ``instrument``, with the
    chunked separation of ``ConvTasNet/eval.py``; the song names are the keys."""
    dataset = RebalanceMusicDataset(root, "valid", instrument, model.samplerate)
    with tempfile.TemporaryDirectory() as scratch:  # for the results.csv it writes
        rows = evaluate_model(model, dataset, scratch, n_save_examples=0, progress=False)
    return {row["song"]: round(row["target_si_sdr"], 2) for row in rows}


def _dataset_marker(root: str | Path) -> dict:
    """``<root>/demo_dataset.json``: the size, seed and rendering version of the demo audio."""
    return read_json_object(Path(root) / MARKER_FILE, "demo dataset marker")


def check_shipped_models(root: str | Path, models_dir: str | Path = SHIPPED_MODELS) -> Path:
    """The shipped models' folder, once checked against the demo dataset under ``root``.

    Raises:
        ValueError: the manifest is missing, the models were trained on audio of another
            rendering version than ``<root>/demo_dataset.json`` says (or than this renderer,
            ``RENDERING_VERSION``), or an instrument of the validation split has no model.
    """
    models_dir = Path(models_dir)
    manifest = read_manifest(models_dir)
    if not manifest:
        raise ValueError(
            f"{models_dir / MANIFEST_FILE} is missing: no shipped demo models; run "
            "`make demo-models` or `make demo DEMO_ARGS=--train`"
        )
    dataset = _dataset_marker(root)
    versions = {record["rendering"] for record in manifest.values()}
    if versions != {dataset["rendering"]} or dataset["rendering"] != RENDERING_VERSION:
        raise ValueError(
            f"the shipped demo models ({models_dir}) were trained on audio of rendering version "
            f"{sorted(versions)}, but {root} holds version {dataset['rendering']} and this "
            f"renderer writes {RENDERING_VERSION}: retrain them with `make demo-models`"
        )
    missing = [
        instrument
        for instrument in validation_instruments(root)
        if not (models_dir / checkpoint_name(instrument, CAUSALITY) / WEIGHTS_FILE).is_file()
    ]
    if missing:
        raise ValueError(f"{models_dir} has no demo model for {missing}: run `make demo-models`")
    return models_dir


@dataclass(frozen=True)
class DemoModels:
    """Outcome of :func:`train_demo_models`.

    Attributes:
        manifest: instrument -> training record.
        trained: instruments trained (further) by this call; the others were reused.
        complete: every model has all its epochs (False when a time budget stopped the call).
    """

    manifest: dict[str, dict]
    trained: list[str]
    complete: bool


def train_demo_models(
    root: str | Path,
    models_dir: str | Path,
    recipe: str = "small",
    seed: int = 0,
    training_dir: str | Path | None = None,
    minutes: float | None = None,
    command: str | None = None,
    instruments: list[str] | None = None,
    log: Callable[[str], None] = print,
    resume_lr: float | None = None,
) -> DemoModels:
    """Train (or reuse, or continue) the demo models of ``recipe``.

    Args:
        root: demo dataset root (``metadata/`` and ``audio/``), rendered at the recipe's size.
        models_dir: where the checkpoint folders and ``demo_models.json`` go.
        recipe: "shipped", "small" or "tiny" (see ``DEMO_TRAINING``).
        seed: training seed (the dataset's seed is recorded from its marker file as well).
        training_dir: resumable training state, one folder per instrument; default
            ``<models_dir>/training``.
        minutes: wall-clock budget of this call (None: none); a stopped call resumes.
        command: the command line to record (default: this process's).
        instruments: train these only (e.g. half of them in each of two parallel runs into the
            same ``models_dir``); default: all eight for "shipped", else those of the
            validation split.
        log: receives one line per model and round.
        resume_lr: learning rate of a model continued from its exported weights (no training
            state here); default: the ``last_lr`` of its record, else the recipe's.

    Returns:
        The manifest, the instruments trained now, and whether all models are complete.

    Raises:
        ValueError: for an unknown recipe, a malformed manifest or a dataset of another size.
    """
    if recipe not in DEMO_TRAINING:
        raise ValueError(f"demo recipe {recipe!r}: expected one of {sorted(DEMO_TRAINING)}")
    options = DEMO_TRAINING[recipe]
    root, models_dir = Path(root), Path(models_dir)
    training_dir = models_dir / TRAINING_FOLDER if training_dir is None else Path(training_dir)
    dataset = _dataset_marker(root)
    if dataset.get("size") != DATASET_SIZE[recipe]:
        raise ValueError(
            f"{root / MARKER_FILE}: recipe {recipe!r} trains on the "
            f"{DATASET_SIZE[recipe]!r} dataset, found size {dataset.get('size')!r}"
        )
    manifest = read_manifest(models_dir)
    wanted = {
        "recipe": recipe, "dataset_size": dataset["size"], "dataset_seed": dataset["seed"],
        "seed": seed, "rendering": dataset["rendering"], "training": options.training_options(),
    }  # fmt: skip
    if instruments is None:
        everything = options.all_instruments
        instruments = list(INSTRUMENTS) if everything else validation_instruments(root)
    unknown = sorted(set(instruments) - set(INSTRUMENTS))
    if unknown:
        raise ValueError(f"unknown instruments {unknown}: expected some of {list(INSTRUMENTS)}")
    began = time.monotonic()
    trained: list[str] = []
    round_epochs = options.round_epochs or options.epochs
    while True:
        pending = [i for i in instruments if not _complete(manifest.get(i), wanted, options)]
        if not pending:
            return DemoModels(manifest, trained, complete=True)
        for instrument in pending:
            left = None if minutes is None else minutes - (time.monotonic() - began) / 60
            if left is not None and left <= 0:
                return DemoModels(manifest, trained, complete=False)
            record = manifest.get(instrument)
            done = record["epochs"] if _same_recipe(record, wanted) else 0
            budget = [b for b in (left, options.minutes) if b is not None]
            record = _train_one(
                root, models_dir, training_dir / instrument, instrument, options, wanted,
                record, epochs=min(options.epochs, done + round_epochs),
                minutes=min(budget) if budget else None, command=command, log=log,
                resume_lr=resume_lr,
            )  # fmt: skip
            manifest = _record_model(models_dir, training_dir, instrument, record)
            if instrument not in trained:
                trained.append(instrument)
        if options.minutes is not None:  # a budget per model: one round
            complete = all(_complete(manifest.get(i), wanted, options) for i in instruments)
            return DemoModels(manifest, trained, complete)


def _same_recipe(record: dict | None, wanted: dict) -> bool:
    return record is not None and all(record.get(key) == value for key, value in wanted.items())


def _complete(record: dict | None, wanted: dict, options: DemoTraining) -> bool:
    return _same_recipe(record, wanted) and options.complete(record)


def _train_one(root, models_dir, exp_dir, instrument, options, wanted, record, epochs, minutes,
               command, log, resume_lr) -> dict:  # fmt: skip
    """Train ``instrument`` up to ``epochs``, export it and return its manifest record."""
    folder = models_dir / checkpoint_name(instrument, CAUSALITY)
    matches = _same_recipe(record, wanted)
    state_file = exp_dir / "checkpoints" / STATE_FILE
    if not matches and exp_dir.is_dir():  # training state of another recipe: start afresh
        for stale in (exp_dir / "checkpoints").glob("*.pt"):
            stale.unlink()
    # epochs, seconds and device of earlier runs whose training state is not here (another machine)
    carried = {"epochs": 0, "seconds": 0.0}
    init_from = None
    lr = options.lr
    if matches and not state_file.is_file() and (folder / WEIGHTS_FILE).is_file():
        carried = {"epochs": record["epochs"], "seconds": record["wall_seconds"],
                   "device": record["device"]}  # fmt: skip
        init_from = folder
        # where the halvings of the schedule had led, unless told otherwise
        lr = record.get("last_lr", options.lr) if resume_lr is None else resume_lr
    elif matches and state_file.is_file():
        carried = record.get("carried", carried)
    config = TrainingConfig(
        exp_dir=exp_dir, root=root, target=instrument, segment=options.segment,
        samples_per_track=options.samples_per_track, model=options.model,
        coherent_probability=options.coherent_probability, compile=options.compile,
        epochs=epochs - carried["epochs"], batch_size=options.batch_size, lr=lr,
        early_stop=False, num_workers=0, max_minutes=minutes, seed=wanted["seed"],
        init_from=init_from,
    )  # fmt: skip
    result = train(config, progress=False)
    model = ConvTasNetStereo.from_pretrained(result.export_dir)
    model.save_pretrained(folder)
    scores = validation_si_sdr(model, root, instrument)
    median = round(float(np.median(list(scores.values()))), 2)
    seconds = carried["seconds"] + sum(entry["seconds"] for entry in result.history)
    epochs_total = carried["epochs"] + result.epochs_completed
    # epoch 0 of a continuation is the weights it started from: their epoch is in the record
    best_epoch = carried["epochs"] + result.best_epoch
    if carried["epochs"] and result.best_epoch == 0:
        best_epoch = record["best_epoch"]
    log(
        f"{folder.name}: {epochs_total} epochs, {seconds / 60:.1f} min, best validation L1 "
        f"{result.best_loss:.5f}, median target SI-SDR {median:.2f} dB"
    )
    devices = sorted({entry["device"] for entry in result.history})
    device = ", ".join(cpu_description() if d == "cpu" else d for d in devices)
    earlier = carried.get("device", device)  # "A; then B" when the epochs before ran elsewhere
    same_machine = earlier.split("; then ")[-1] == device
    device = earlier if same_machine else f"{earlier}; then {device}"
    return {
        **wanted, "epochs": epochs_total, "target_epochs": options.epochs,
        "wall_seconds": round(seconds, 1), "carried": carried,
        "best_epoch": best_epoch, "best_valid_loss": result.best_loss,
        "last_lr": result.history[-1]["lr"],
        "device": device,
        "processes": max(entry["processes"] for entry in result.history),
        "torch_threads": torch.get_num_threads(),
        "valid_target_si_sdr": scores,
        "valid_target_si_sdr_median": median,
        "command": command or shlex.join([Path(sys.executable).name, *sys.argv]),
    }  # fmt: skip


def evaluate_demo_models(root: str | Path, models_dir: str | Path) -> dict[str, dict[str, float]]:
    """Target SI-SDR (dB) of each model of ``models_dir`` on the validation songs of ``root``
    (e.g. the demo rendered with another soundfont): instrument -> song -> dB."""
    models_dir = Path(models_dir)
    scores = {}
    for instrument in validation_instruments(root):
        folder = models_dir / checkpoint_name(instrument, CAUSALITY)
        scores[instrument] = validation_si_sdr(
            ConvTasNetStereo.from_pretrained(folder), Path(root), instrument
        )
    return scores


def main(argv: list[str] | None = None) -> None:
    """``make demo-models``: render the demo data if needed and train the shipped models;
    with ``--evaluate``, print the models' validation SI-SDR on ``--root`` instead."""
    parser = argparse.ArgumentParser(description="Train the demo's separation models.")
    parser.add_argument("--root", type=Path, default=Path("demo_data/cad2"),
                        help="demo dataset root, rendered if needed (%(default)s)")  # fmt: skip
    parser.add_argument("--models_dir", type=Path, default=SHIPPED_MODELS,
                        help="checkpoint folder written (default: the shipped models)")  # fmt: skip
    parser.add_argument("--training_dir", type=Path, default=Path("demo_data/model_training"),
                        help="resumable training state (%(default)s)")  # fmt: skip
    parser.add_argument("--recipe", choices=sorted(DEMO_TRAINING), default="shipped")
    parser.add_argument("--seed", type=int, default=0, help="data and training seed")
    parser.add_argument("--minutes", type=float, default=None,
                        help="stop after this many minutes; rerun to continue")  # fmt: skip
    parser.add_argument("--instruments", nargs="+", choices=INSTRUMENTS, default=None,
                        help="train only these (default: all of the recipe)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--resume_lr", type=float, default=None,
                        help="learning rate of models continued from their exported weights "
                        "(default: the rate their record says they reached)")  # fmt: skip
    parser.add_argument("--evaluate", action="store_true",
                        help="train nothing: print the models' median target SI-SDR on "
                        "the validation songs of --root (any soundfont)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.evaluate:
        for instrument, songs in evaluate_demo_models(args.root, args.models_dir).items():
            print(f"{instrument:9s} median target SI-SDR {np.median(list(songs.values())):6.2f} dB"
                  f" over {len(songs)} songs: {songs}")  # fmt: skip
        return
    make_dataset(args.root, DATASET_SIZE[args.recipe], args.seed)
    outcome = train_demo_models(
        args.root, args.models_dir, args.recipe, args.seed, args.training_dir, args.minutes,
        command=shlex.join(["python", "-m", "clarity.demo.models", *(argv or sys.argv[1:])]),
        instruments=args.instruments, resume_lr=args.resume_lr,
    )
    state = "complete" if outcome.complete else "stopped by --minutes; rerun to continue"
    print(f"demo models in {args.models_dir}: {state}")


if __name__ == "__main__":
    main()
