"""Train a per-instrument Conv-TasNet as in the official CAD2 Task 2 recipe, resumably.

Same optimisation as the official (Asteroid/Lightning) recipe: Adam, L1 loss over both outputs
(target and accompaniment), gradient clipping at norm 5, gradient accumulation over
``aggregate`` batches, ReduceLROnPlateau (factor 0.5, patience 5) on the validation loss when
``half_lr``, early stopping after 20 epochs without improvement when ``early_stop``, and the
best-by-validation weights kept. Differences: a plain loop instead of Lightning, a wall-clock
budget (``max_minutes``), and the state saved atomically after every epoch to
``<exp_dir>/checkpoints/last.pt`` so a rerun with the same ``exp_dir`` continues where it stopped.
The best model is exported in the published format to
``<exp_dir>/ConvTasNet_<Instrument>_<Causal|NonCausal>/`` (config.json + model.safetensors).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from clarity.separation.checkpoints import checkpoint_name
from clarity.separation.convtasnet import ConvTasNetConfig, ConvTasNetStereo
from clarity.separation.dataset import RebalanceMusicDataset
from clarity.separation.distributed import ProcessGroup, join_process_group
from clarity.separation.inference import autocast_dtype
from clarity.utils.flac_encoder import write_atomically
from clarity.utils.json_files import read_json_object

logger = logging.getLogger(__name__)

GRADIENT_CLIP_NORM = 5.0
LR_PATIENCE = 5
LR_FACTOR = 0.5
EARLY_STOP_PATIENCE = 20
STATE_FILE = "last.pt"
BEST_FILE = "best.pt"


MODEL_FIELDS = tuple(ConvTasNetConfig.__dataclass_fields__)


@dataclass
class TrainingConfig:
    """Options of ``ConvTasNet/train.py`` (defaults: the official recipe, published model size).

    Paths: ``exp_dir`` (outputs), ``root`` (CAD2 Task 2 folder with metadata/ and audio/).
    Data: ``target`` instrument, ``segment`` s, ``samples_per_track``, ``coherent_probability``
    (share of train items cut from one song instead of mixed at random, 0 as in the official
    recipe; see :mod:`clarity.separation.dataset`); the sample rate is the model's
    ``samplerate``. Model: ``model``, a :class:`ConvTasNetConfig` (sizes, norm,
    causality; 2 sources and 2 audio channels). Optimisation: ``epochs``, ``batch_size``,
    ``aggregate`` (batches per optimiser step), ``lr``, ``half_lr``, ``early_stop``,
    ``num_workers``, ``max_minutes`` (None: no budget), ``device`` (None: CUDA when available),
    ``precision`` ("float32", or autocast to "bfloat16" or "float16", the latter on CUDA with
    gradient scaling), ``compile`` (run the training steps through ``torch.compile``: the same
    forward, its elementwise work fused; about 1.8x faster steps on a CPU after a compilation
    of a minute or so, cached for later runs; validation runs the module as it is),
    ``init_from`` (a checkpoint folder, e.g. a published model, whose weights
    start a run with no saved state, as its best so far, "epoch 0": fine-tuning), ``seed``.
    Under ``torchrun``, ``batch_size`` is the global batch.

    ``<exp_dir>/train_config.json`` holds these options flat, the model's fields beside the
    others plus ``sample_rate`` (:meth:`to_json`); :meth:`from_flat` reads it back, also in the
    older layout (``n_src``, ``norm_type`` null for "cLN if causal else gLN").
    """

    exp_dir: Path
    root: Path
    target: str
    segment: float = 3.0
    samples_per_track: int = 64
    coherent_probability: float = 0.0
    model: ConvTasNetConfig = field(default_factory=ConvTasNetConfig)
    epochs: int = 200
    batch_size: int = 16
    aggregate: int = 1
    lr: float = 1e-4
    half_lr: bool = True
    early_stop: bool = True
    num_workers: int = 4
    max_minutes: float | None = None
    device: str | None = None
    precision: str = "float32"
    compile: bool = False
    init_from: Path | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        self.exp_dir, self.root = Path(self.exp_dir), Path(self.root)
        self.init_from = None if self.init_from in (None, "") else Path(self.init_from)
        if self.model.C != 2:
            raise ValueError(
                f"n_src must be 2 (model C=2: target and accompaniment), got {self.model.C}"
            )
        if self.model.audio_channels != 2:
            raise ValueError(f"the model must be stereo, got {self.model.audio_channels} channels")
        positive = ("epochs", "batch_size", "aggregate", "samples_per_track")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.segment <= 0 or self.num_workers < 0:
            raise ValueError("lr and segment must be > 0 and num_workers >= 0")
        if not 0.0 <= self.coherent_probability <= 1.0:
            raise ValueError(
                f"coherent_probability must be in [0, 1], got {self.coherent_probability}"
            )
        autocast_dtype(self.precision)  # raises ValueError for another option
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be > 0 or None, got {self.max_minutes}")

    @property
    def sample_rate(self) -> int:
        """Hz, of the audio and the model."""
        return self.model.samplerate

    @classmethod
    def from_flat(cls, values: dict, source: str = "training options") -> TrainingConfig:
        """Build from flat options: training fields, model fields, ``sample_rate``.

        ``sample_rate`` sets the model's ``samplerate``, ``n_src`` its ``C``, and a missing or
        None ``norm_type`` becomes "cLN" for a causal model and "gLN" otherwise. Unknown keys
        raise ``ValueError`` naming ``source``.
        """
        values = dict(values)
        renamed = {"sample_rate": "samplerate", "n_src": "C"}
        model = {renamed.get(k, k): values.pop(k) for k in list(values) if k in renamed}
        model |= {k: values.pop(k) for k in list(values) if k in MODEL_FIELDS}
        if model.get("norm_type") is None:
            model["norm_type"] = "cLN" if model.get("causal") else "gLN"
        unknown = sorted(set(values) - set(cls.__dataclass_fields__) - {"model"})
        if unknown:
            raise ValueError(f"{source}: unknown training options {unknown}")
        return cls(**values, model=ConvTasNetConfig(**model))

    def export_dir(self) -> Path:
        causality = "causal" if self.model.causal else "noncausal"
        return self.exp_dir / checkpoint_name(self.target, causality)

    def to_json(self) -> dict:
        values = {k: v for k, v in asdict(self).items() if k != "model"}
        values["exp_dir"], values["root"] = str(self.exp_dir), str(self.root)
        values["init_from"] = None if self.init_from is None else str(self.init_from)
        return {**values, "sample_rate": self.sample_rate, **asdict(self.model)}


@dataclass
class TrainingState:
    """Everything needed to continue training after an interruption."""

    epoch: int = 0  # epochs completed
    best_loss: float = math.inf
    best_epoch: int = 0
    epochs_without_improvement: int = 0
    history: list[dict] = field(default_factory=list)  # per epoch: train_loss, val_loss, lr


@dataclass
class TrainingResult:
    best_loss: float
    best_epoch: int
    epochs_completed: int
    stopped_because: str  # "epochs", "early_stop", "time_budget"
    export_dir: Path
    history: list[dict]


def separation_loss(estimates: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over both outputs; (batch, 2, channels, samples) each."""
    return torch.nn.functional.l1_loss(estimates, sources)


def _save_torch(obj: object, path: Path) -> None:
    write_atomically(path, lambda temporary: torch.save(obj, temporary))


def train(config: TrainingConfig, progress: bool = True) -> TrainingResult:
    """Train (or resume) and export the best model; returns the outcome and loss history.

    Under ``torchrun`` every process runs this with the same ``config``: the model is wrapped in
    ``DistributedDataParallel``, ``batch_size`` is the global batch (``batch_size / world_size``
    items per process and step, drawn by a ``DistributedSampler`` from the permutation a single
    process would use, so the loss curve is that of one process), the validation songs are
    shared out and their losses summed, and only rank 0 writes checkpoints and the export. The
    saved state does not depend on the number of processes: a run resumes with any number.
    """
    started = time.monotonic()
    group = join_process_group(config.device)
    device = group.device(config.device)
    if config.batch_size % group.world_size:
        raise ValueError(
            f"batch_size={config.batch_size} (the global batch) must be a multiple of the "
            f"{group.world_size} processes"
        )
    if config.precision == "float16" and device.type != "cuda":
        raise ValueError(f"precision float16 needs a CUDA device, got {device}")
    checkpoint_dir = config.exp_dir / "checkpoints"
    _check_or_write_config(config, write=group.is_main)
    group.barrier()

    torch.manual_seed(config.seed)  # the same initial weights in every process
    train_set = RebalanceMusicDataset(
        config.root, "train", config.target, config.sample_rate, config.segment,
        config.samples_per_track, seed=config.seed,
        coherent_probability=config.coherent_probability,
    )  # fmt: skip
    valid_set = RebalanceMusicDataset(config.root, "valid", config.target, config.sample_rate)
    if len(train_set) < config.batch_size:
        raise ValueError(
            f"batch_size={config.batch_size} exceeds the {len(train_set)} training items"
        )
    sampler = DistributedSampler(
        train_set, num_replicas=group.world_size, rank=group.rank, shuffle=True,
        seed=config.seed, drop_last=True,
    )  # fmt: skip
    train_loader = DataLoader(
        train_set, batch_size=config.batch_size // group.world_size, sampler=sampler,
        drop_last=True, num_workers=config.num_workers,
    )  # fmt: skip
    valid_share = Subset(valid_set, range(group.rank, len(valid_set), group.world_size))
    valid_loader = DataLoader(valid_share, batch_size=1, num_workers=config.num_workers)

    model = ConvTasNetStereo(config.model).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=LR_FACTOR, patience=LR_PATIENCE
        )
        if config.half_lr
        else None
    )
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "float16")
    state = TrainingState()
    state_path = checkpoint_dir / STATE_FILE
    if state_path.is_file():
        state = _restore(state_path, model, optimizer, scheduler, scaler, device)
        if group.is_main:
            logger.info("Resuming %s after epoch %d", config.exp_dir, state.epoch)
    elif config.init_from is not None:  # the starting weights are the best so far (epoch 0)
        _start_from(model, config.init_from)
        state.best_loss = evaluate_loss(model, valid_loader, device, group)
        if group.is_main:
            _save_torch(model.state_dict(), checkpoint_dir / BEST_FILE)
    network = model
    if group.distributed:
        network = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if config.compile:
        network = torch.compile(network)

    stopped_because = "epochs"
    first_epoch = state.epoch  # every call trains at least one (possibly partial) epoch
    while state.epoch < config.epochs:
        if config.early_stop and state.epochs_without_improvement >= EARLY_STOP_PATIENCE:
            stopped_because = "early_stop"
            break
        deadline = None
        if config.max_minutes is not None:
            deadline = started + 60.0 * config.max_minutes
            if group.any(time.monotonic() >= deadline) and state.epoch > first_epoch:
                stopped_because = "time_budget"
                break
        epoch_began = time.monotonic()
        sampler.set_epoch(state.epoch)
        train_set.set_epoch(state.epoch)
        train_loss, out_of_time = _train_epoch(
            network, train_loader, optimizer, scaler, config, device, deadline, group,
            desc=f"epoch {state.epoch + 1}/{config.epochs}", progress=progress and group.is_main,
        )  # fmt: skip
        val_loss = evaluate_loss(model, valid_loader, device, group)
        if scheduler is not None:
            scheduler.step(val_loss)
        state.epoch += 1
        state.history.append(
            {"epoch": state.epoch, "train_loss": train_loss, "val_loss": val_loss,
             "lr": optimizer.param_groups[0]["lr"],
             "seconds": round(time.monotonic() - epoch_began, 3),
             "processes": group.world_size, "device": device.type}
        )  # fmt: skip
        improved = val_loss < state.best_loss
        if improved:
            state.best_loss, state.best_epoch = val_loss, state.epoch
            state.epochs_without_improvement = 0
        else:
            state.epochs_without_improvement += 1
        if group.is_main:
            _save_checkpoints(model, optimizer, scheduler, scaler, state, checkpoint_dir, improved)
            logger.info(
                "epoch %d: train %.5f valid %.5f (best %.5f at %d)",
                state.epoch, train_loss, val_loss, state.best_loss, state.best_epoch,
            )  # fmt: skip
        group.barrier()
        if out_of_time:
            stopped_because = "time_budget"
            break
    export_dir = config.export_dir()
    if group.is_main:
        export_best(config, model, checkpoint_dir / BEST_FILE)
    group.barrier()
    return TrainingResult(
        state.best_loss, state.best_epoch, state.epoch, stopped_because, export_dir, state.history
    )


def _check_or_write_config(config: TrainingConfig, write: bool) -> None:
    """Check that a run resumed in ``exp_dir`` has the same target and model; if ``write``,
    create the checkpoint folder and (re)write ``<exp_dir>/train_config.json``."""
    path = config.exp_dir / "train_config.json"
    if path.is_file() and (config.exp_dir / "checkpoints" / STATE_FILE).is_file():
        previous = TrainingConfig.from_flat(
            read_json_object(path, "training config"), source=str(path)
        )
        changed = [k for k, v in asdict(config.model).items() if getattr(previous.model, k) != v]
        changed += ["target"] if previous.target != config.target else []
        if changed:
            raise ValueError(
                f"{path}: cannot resume with changed model options {changed}; use a new exp_dir"
            )
    if write:
        (config.exp_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        text = json.dumps(config.to_json(), indent=2) + "\n"
        write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def _save_checkpoints(model, optimizer, scheduler, scaler, state, checkpoint_dir, improved):
    """``best.pt`` (the weights, when ``improved``) then ``last.pt`` (all the training state)."""
    if improved:
        _save_torch(model.state_dict(), checkpoint_dir / BEST_FILE)
    _save_torch(
        {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
         "scheduler": None if scheduler is None else scheduler.state_dict(),
         "scaler": scaler.state_dict(), "state": asdict(state)},
        checkpoint_dir / STATE_FILE,
    )  # fmt: skip


def _start_from(model: ConvTasNetStereo, folder: Path) -> None:
    """Load the weights of the checkpoint ``folder`` into ``model``; the configs must agree."""
    start = ConvTasNetStereo.from_pretrained(folder)
    if start.config != model.config:
        changed = [k for k, v in asdict(model.config).items() if getattr(start.config, k) != v]
        raise ValueError(f"init_from {folder}: its model differs in {changed} from this run's")
    model.load_state_dict(start.state_dict())


def _restore(path, model, optimizer, scheduler, scaler, device) -> TrainingState:
    saved = torch.load(path, map_location=device, weights_only=False)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if scheduler is not None and saved["scheduler"] is not None:
        scheduler.load_state_dict(saved["scheduler"])
    if saved.get("scaler"):
        scaler.load_state_dict(saved["scaler"])
    return TrainingState(**saved["state"])


def _train_epoch(network, loader, optimizer, scaler, config, device, deadline, group, desc,
                 progress):  # fmt: skip
    """One pass over this process's share of the epoch; the mean loss over all processes.

    Stops early (returning True with the loss) once ``deadline`` has passed on any process.
    Under DDP the gradients are averaged over the processes on the step that ends an
    accumulation of ``config.aggregate`` batches (``no_sync`` on the others).
    """
    network.train()
    optimizer.zero_grad(set_to_none=True)
    dtype = autocast_dtype(config.precision)
    total, count, pending, out_of_time = 0.0, 0, 0, False
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress)
    for mixture, sources in bar:
        mixture, sources = mixture.to(device), sources.to(device)
        syncing = not group.distributed or pending + 1 == config.aggregate
        with (
            contextlib.nullcontext() if syncing else network.no_sync(),
            torch.autocast(device.type, dtype=dtype, enabled=dtype is not None),
        ):
            loss = separation_loss(network(mixture).float(), sources)
        scaler.scale(loss / config.aggregate).backward()
        pending += 1
        if pending == config.aggregate:
            _optimiser_step(network, optimizer, scaler)
            pending = 0
        total, count = total + loss.item(), count + 1
        bar.set_postfix(loss=f"{total / count:.4f}")
        if deadline is not None and group.any(time.monotonic() >= deadline):
            out_of_time = True
            break
    if pending:
        _optimiser_step(network, optimizer, scaler)
    bar.close()
    total, count = group.sum([total, count])
    return total / max(count, 1), out_of_time


def _optimiser_step(network, optimizer, scaler) -> None:
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(network.parameters(), GRADIENT_CLIP_NORM)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)


def evaluate_loss(
    model: ConvTasNetStereo,
    loader: DataLoader,
    device: torch.device,
    group: ProcessGroup | None = None,
) -> float:
    """Mean L1 loss over whole validation songs, without gradients, in float32.

    ``loader`` holds this process's share of the songs; the mean is over the songs of all
    processes of ``group`` (default: this process alone).
    """
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for mixture, sources in loader:
            estimates = model.infer(mixture.to(device))
            total += separation_loss(estimates, sources.to(device)).item()
            count += 1
    total, count = (group or ProcessGroup()).sum([total, count])
    return total / max(count, 1)


def export_best(config: TrainingConfig, model: ConvTasNetStereo, best_file: Path) -> Path:
    """Save the best weights (or the current ones if none) in the published checkpoint format."""
    if best_file.is_file():
        model.load_state_dict(torch.load(best_file, map_location="cpu", weights_only=True))
    return model.cpu().save_pretrained(config.export_dir())
