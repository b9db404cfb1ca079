"""Train the demo's small separation models on the demo training split.

One non-causal Conv-TasNet per instrument of the demo validation split (the only ones the recipe
needs there), trained with the project's training loop (``clarity.separation.training``: L1 loss
on target and accompaniment, Adam, random accompaniments drawn from other songs) for a fixed
wall-clock budget each, and exported in the published checkpoint layout to
``<models_dir>/ConvTasNet_<Instrument>_NonCausal/`` (config.json + model.safetensors), where
``separator.checkpoint_dir`` points by default.

The demo model is small so that it learns something in a minute or two on two CPU cores:
``N=64`` encoder filters of ``L=20`` samples, ``B=64`` bottleneck and ``H=128`` hidden channels,
``P=3`` kernels, ``X=6`` blocks per repeat (dilations 1 to 32) and ``R=2`` repeats: a receptive
field of 253 frames (57 ms at 44.1 kHz) and about 0.2 M parameters, against 6.6 M for the
published models (N=256, B=256, H=512, X=8, R=3). Its normalisation is channel-wise (cLN, each
frame on its own) rather than global (gLN): the models train on 0.5 s segments but separate
10 s chunks, and gLN statistics over so different lengths would not agree.

``<models_dir>/demo_models.json`` records how each model was trained; a model with an entry for
the same dataset size, seed, rendering version and budget is reused rather than trained again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from clarity.cad2.metadata import load_music
from clarity.demo.render import RENDERING_VERSION
from clarity.separation.checkpoints import checkpoint_name
from clarity.separation.convtasnet import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    ConvTasNetConfig,
    ConvTasNetStereo,
)
from clarity.separation.training import TrainingConfig, train
from clarity.utils.flac_encoder import write_atomically
from clarity.utils.json_files import read_json_object

CAUSALITY = "noncausal"
DEMO_MODEL = ConvTasNetConfig(N=64, L=20, B=64, H=128, P=3, X=6, R=2, norm_type="cLN")
MANIFEST_FILE = "demo_models.json"
TRAINING_FOLDER = "training"  # <models_dir>/training/<Instrument>/: resumable training state


@dataclass(frozen=True)
class DemoTraining:
    """How a demo model is trained: ``minutes`` of wall clock, training options, the model."""

    minutes: float
    segment: float = 0.5
    batch_size: int = 4
    samples_per_track: int = 16
    lr: float = 2e-3
    model: ConvTasNetConfig = DEMO_MODEL


DEMO_TRAINING = {
    "small": DemoTraining(minutes=2.5),
    "tiny": DemoTraining(minutes=0.15, samples_per_track=4),
}


def validation_instruments(root: str | Path) -> list[str]:
    """Model instruments of the sources in ``<root>/metadata/music.valid.json``, sorted."""
    songs = load_music(Path(root) / "metadata" / "music.valid.json")
    return sorted({name for song in songs.values() for name in song.source_instruments().values()})


def _read_manifest(path: Path) -> dict:
    if not path.is_file():
        return {}
    return read_json_object(path, "demo training manifest (delete it to retrain)")


@dataclass(frozen=True)
class DemoModels:
    """Outcome of ``train_demo_models``.

    Attributes:
        manifest: instrument -> training record (options, seconds, epochs, best validation L1).
        trained: instruments trained by this call (the others were reused).
    """

    manifest: dict[str, dict]
    trained: list[str]


def train_demo_models(
    root: str | Path,
    models_dir: str | Path,
    size: str = "small",
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> DemoModels:
    """Train (or reuse) one demo model per validation instrument.

    Args:
        root: demo dataset root (``metadata/`` and ``audio/``).
        models_dir: where the checkpoint folders and ``demo_models.json`` go.
        size: demo size, "small" or "tiny" (sets the time budget, see ``DEMO_TRAINING``).
        seed: training seed.
        log: receives one line per model.

    Returns:
        The manifest of every model and the instruments trained now.

    Raises:
        ValueError: for an unknown size or a malformed manifest.
    """
    if size not in DEMO_TRAINING:
        raise ValueError(f"demo size {size!r}: expected one of {sorted(DEMO_TRAINING)}")
    options = DEMO_TRAINING[size]
    models_dir = Path(models_dir)
    manifest_path = models_dir / MANIFEST_FILE
    manifest = _read_manifest(manifest_path)
    wanted = {"size": size, "seed": seed, "rendering": RENDERING_VERSION, **asdict(options)}
    trained = []
    for instrument in validation_instruments(root):
        folder = models_dir / checkpoint_name(instrument, CAUSALITY)
        record = manifest.get(instrument, {})
        complete = (folder / CONFIG_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()
        if complete and all(record.get(key) == value for key, value in wanted.items()):
            log(f"reusing {folder}")
            continue
        began = time.perf_counter()
        exp_dir = models_dir / TRAINING_FOLDER / instrument
        config = TrainingConfig(
            exp_dir=exp_dir, root=Path(root), target=instrument, segment=options.segment,
            samples_per_track=options.samples_per_track, model=options.model, epochs=10_000,
            batch_size=options.batch_size, lr=options.lr, early_stop=False, num_workers=0,
            max_minutes=options.minutes, seed=seed,
        )  # fmt: skip
        if (exp_dir / "checkpoints").is_dir():  # a stale run of other options: start afresh
            for stale in (exp_dir / "checkpoints").iterdir():
                stale.unlink()
        result = train(config, progress=False)
        ConvTasNetStereo.from_pretrained(result.export_dir).save_pretrained(folder)
        seconds = time.perf_counter() - began
        manifest[instrument] = {
            **wanted, "seconds": round(seconds, 1), "epochs": result.epochs_completed,
            "best_epoch": result.best_epoch, "best_valid_loss": result.best_loss,
        }  # fmt: skip
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        write_atomically(manifest_path, lambda temporary, text=text: temporary.write_text(text))
        trained.append(instrument)
        log(
            f"trained {folder.name}: {result.epochs_completed} epochs in {seconds:.0f} s, "
            f"best validation L1 {result.best_loss:.5f} (epoch {result.best_epoch})"
        )
    return DemoModels(manifest=manifest, trained=trained)
