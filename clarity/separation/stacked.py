"""Several separation models of one architecture run as one model call (for GPUs).

The eight instruments' models of the recipe share one architecture and differ only in their
weights. On a GPU, one call that runs all the models of a scene keeps the device busier than
one small call per instrument. :class:`StackedModels` stacks the models' weights along a new
leading axis (``torch.func.stack_module_state``) and maps the model's own ``forward`` over that
axis (``torch.func.vmap`` of ``torch.func.functional_call``): the same definition of the
network, no second forward. The stack runs the models' plain modules, not the copies that
:func:`clarity.separation.fast_inference.prepare_for_inference` makes for a CPU (their folded
activation slopes are per-model constants that a stack cannot hold), so on a CPU it is slower:
``benchmarks/bench_separation.py --instruments 2 --seconds 3 --threads 1`` measured 0.48x
(2-core Xeon, AVX-512). The recipe's default is one model per call.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


def stackable(first: nn.Module, other: nn.Module) -> bool:
    """Whether ``other`` has the class, and parameters and buffers of the same names and
    shapes, as ``first`` (and the same ``config`` where the models have one), so that the two
    can run as one :class:`StackedModels`."""
    if type(first) is not type(other):
        return False
    if getattr(first, "config", None) != getattr(other, "config", None):
        return False
    shapes = [
        {name: tuple(t.shape) for name, t in [*m.named_parameters(), *m.named_buffers()]}
        for m in (first, other)
    ]
    return shapes[0] == shapes[1]


class StackedModels(nn.Module):
    """Models of one architecture as one module: ``(batch, channels, n)`` to
    ``(batch, models x sources, channels, n)``, model ``k``'s sources at ``k * sources ...``.

    The weights are copied when the stack is built (later changes to the models do not reach
    it); the stack lives on the models' device. Meant for inference (``torch.inference_mode``).

    Args:
        models: at least one model; all :func:`stackable` with the first, on one device.

    Raises:
        ValueError: no model, or a model that cannot be stacked with the first.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if not models:
            raise ValueError("StackedModels needs at least one model")
        for index, model in enumerate(models[1:], start=1):
            if not stackable(models[0], model):
                raise ValueError(
                    f"model {index} ({type(model).__name__}) cannot be stacked with model 0 "
                    f"({type(models[0]).__name__}): other class, config or weight shapes"
                )
        self.number_models = len(models)
        self.weights, self.buffer_values = stack_module_state(list(models))
        # the architecture without storage (functional_call supplies the stacked tensors), in
        # a list so that it is not a sub-module whose meta tensors parameters() would list
        self.skeleton = [copy.deepcopy(models[0]).to("meta")]

    def _forward_one(
        self,
        weights: dict[str, torch.Tensor],
        buffers: dict[str, torch.Tensor],
        mixture: torch.Tensor,
    ) -> torch.Tensor:
        return functional_call(self.skeleton[0], (weights, buffers), (mixture,))

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, n)`` -> ``(batch, models x sources, channels, n)``."""
        outputs = vmap(self._forward_one, in_dims=(0, 0, None))(
            self.weights, self.buffer_values, mixture
        )  # (models, batch, sources, channels, n)
        return outputs.transpose(0, 1).flatten(1, 2)
