"""The process group of a training run started by ``torchrun`` (or a single plain process).

``torchrun --nproc_per_node=N ConvTasNet/train.py ...`` starts N processes and gives each the
environment variables ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`join_process_group`
reads them and joins the group with NCCL when the process trains on a GPU and gloo otherwise.
Without them (``python ConvTasNet/train.py``) the run is a group of one and every collective
below is the identity, so the training loop has a single code path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from clarity.separation.inference import resolve_device


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place in the run: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """True for rank 0, the process that writes checkpoints, exports and logs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def device(self, requested: str | None) -> torch.device:
        """The device of this process: ``requested`` ("cpu", "cuda"; None: CUDA when available);
        "cuda" becomes this process's GPU, ``cuda:<local_rank>``."""
        default = "cuda" if torch.cuda.is_available() else "cpu"
        if requested in (None, "cuda") and default == "cuda" and self.distributed:
            requested = f"cuda:{self.local_rank}"
        device = resolve_device(requested, default)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return device

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over all processes (float64)."""
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device())
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor.tolist()

    def any(self, flag: bool) -> bool:
        """True on every process when ``flag`` is True on at least one."""
        return self.sum([float(flag)])[0] > 0

    def barrier(self) -> None:
        """Wait until every process gets here (after rank 0 writes what the others read)."""
        if self.distributed:
            dist.barrier()


def _collective_device() -> torch.device:
    """NCCL reduces CUDA tensors only; gloo, CPU tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def join_process_group(device: str | None = None) -> ProcessGroup:
    """Join the group ``torchrun`` set up (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``), if any.

    Args:
        device: the training device asked for ("cpu", "cuda" or None for CUDA when available);
            NCCL is the backend on CUDA, gloo on CPU.

    Returns:
        The group; a group of one without ``torchrun`` (nothing is initialised then).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return ProcessGroup()
    group = ProcessGroup(
        rank=int(os.environ["RANK"]),
        world_size=world_size,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )
    if not dist.is_initialized():
        backend = "nccl" if group.device(device).type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return group


def leave_process_group() -> None:
    """Tear down the group :func:`join_process_group` made (no-op without one)."""
    if dist.is_initialized():
        dist.destroy_process_group()
