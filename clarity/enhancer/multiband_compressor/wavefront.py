"""Run a network of direct-form filters as a wavefront, eight filters per vector instruction.

A crossover is a network of recursive filters: each filter's input is the signal or the output
of another filter. Sample by sample, every filter depends on its source at the same sample,
so a plain loop computes them one after the other. Here filter f runs lag(f) steps behind the
signal, lag(f) being the number of filters between it and the signal: at step t it processes
sample t - lag(f), whose input its source produced at step t - 1. All filters of a step are
then independent and are packed into the lanes of `<8 x double>` vectors ("chunks": the
filters sorted by order, eight per chunk), so one vector instruction updates a state variable
of eight filters.

Each lane performs exactly the operations of `scipy.signal.lfilter`'s direct form II
transposed, in the same order, so every filter output is bit-identical to the scalar
recursion; filters of lower order than their chunk have zero coefficients in the extra state
rows, which stay exactly zero. Before a filter's first sample its source delivers exact zeros,
which leave a zero state unchanged, and after the last input sample the signal reads as zero.

A band is one filter output or the difference of two (telescoped bands, see `crossover.py`);
band k is formed `band_lag[k]` samples behind the signal, from the current filter outputs or
from those of up to `history` steps before, into lane k % 8 of band vector k // 8.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from llvmlite import ir

from clarity.utils import vector_ir
from clarity.utils.sample_loop import StepContext
from clarity.utils.vector_ir import LANES


@dataclass(frozen=True)
class Stage:
    """One direct-form II transposed filter of a network.

    Attributes:
        b, a: coefficients, a[0] == 1.
        source: index of the stage whose output it filters, or -1 for the input signal.
    """

    b: tuple[float, ...]
    a: tuple[float, ...]
    source: int


@dataclass(frozen=True)
class Chunk:
    """Up to eight filters of at most `order`, one per lane.

    Attributes:
        order: number of state variables per lane.
        b, a: (order + 1) rows of LANES coefficients (zero in unused lanes and rows).
        sources: per lane, (chunk, lane) whose output of the previous step is the input, or
            None for the signal.
    """

    order: int
    b: tuple[tuple[float, ...], ...]
    a: tuple[tuple[float, ...], ...]
    sources: tuple[tuple[int, int] | None, ...]


@dataclass(frozen=True)
class Tap:
    """A filter output read `delay` steps after it was computed: (chunk, lane, delay)."""

    chunk: int
    lane: int
    delay: int


@dataclass(frozen=True)
class Wavefront:
    """A filter network laid out in vector lanes.

    Attributes:
        chunks: the filters.
        plus, minus: per band, the filter output forming it and the one subtracted (or None).
        band_lag: per band, how many samples behind the signal it is formed.
        history: how many previous steps of filter outputs the bands need.
    """

    chunks: tuple[Chunk, ...]
    plus: tuple[Tap, ...]
    minus: tuple[Tap | None, ...]
    band_lag: tuple[int, ...]
    history: int

    @classmethod
    def from_network(
        cls, stages: tuple[Stage, ...], outputs: tuple[tuple[int, int], ...]
    ) -> Wavefront:
        """Lay out `stages` (each source before the stage) whose band k is
        stage outputs[k][0] minus stage outputs[k][1] (or alone if that is -1)."""
        lag: list[int] = []
        for stage in stages:
            lag.append(0 if stage.source < 0 else lag[stage.source] + 1)
        position: dict[int, tuple[int, int]] = {}
        groups: list[list[int]] = []
        by_order = sorted(range(len(stages)), key=lambda i: -len(stages[i].b))
        for start in range(0, len(by_order), LANES):
            groups.append(by_order[start : start + LANES])
            for lane, index in enumerate(groups[-1]):
                position[index] = (len(groups) - 1, lane)
        chunks = []
        for members in groups:
            order = max(len(stages[i].b) - 1 for i in members)
            b = np.zeros((order + 1, LANES))
            a = np.zeros((order + 1, LANES))
            sources: list[tuple[int, int] | None] = [None] * LANES
            for lane, index in enumerate(members):
                stage = stages[index]
                b[: len(stage.b), lane] = stage.b
                a[: len(stage.a), lane] = stage.a
                sources[lane] = None if stage.source < 0 else position[stage.source]
            chunks.append(Chunk(order, tuple(map(tuple, b)), tuple(map(tuple, a)), tuple(sources)))
        band_lag = tuple(max(lag[p], lag[m] if m >= 0 else 0) for p, m in outputs)

        def tap(index: int, band: int) -> Tap:
            return Tap(*position[index], band_lag[band] - lag[index])

        plus = tuple(tap(p, band) for band, (p, _) in enumerate(outputs))
        minus = tuple(tap(m, band) if m >= 0 else None for band, (_, m) in enumerate(outputs))
        delays = [t.delay for t in plus + minus if t is not None]
        return cls(tuple(chunks), plus, minus, band_lag, max(delays))

    @property
    def state_vectors(self) -> int:
        """Vectors of state: the filter states and the filter outputs of the last max(history, 1)
        steps."""
        return sum(chunk.order for chunk in self.chunks) + max(self.history, 1) * len(self.chunks)


def emit_filter_step(context: StepContext, wavefront: Wavefront, first_slot: int) -> list[ir.Value]:
    """Advance every filter by one step and return the band vectors (lane i of vector g =
    band 8 g + i, at sample t - band_lag[8 g + i]). Uses wavefront.state_vectors slots from
    `first_slot`."""
    builder = context.builder
    slots = context.slots[first_slot : first_slot + wavefront.state_vectors]
    n_chunks = len(wavefront.chunks)
    states, position = [], 0
    for chunk in wavefront.chunks:
        states.append(slots[position : position + chunk.order])
        position += chunk.order
    depth = max(wavefront.history, 1)
    history = [slots[position + d * n_chunks : position + (d + 1) * n_chunks] for d in range(depth)]
    older = [[builder.load(slot) for slot in step] for step in history]

    signal = vector_ir.splat(builder, context.signal_sample())
    outputs = []
    for chunk, state in zip(wavefront.chunks, states, strict=True):
        source = signal
        for from_chunk in sorted({s[0] for s in chunk.sources if s is not None}):
            lanes = {
                i: s[1] for i, s in enumerate(chunk.sources) if s is not None and s[0] == from_chunk
            }
            source = vector_ir.merge_lanes(builder, source, older[0][from_chunk], lanes)
        z = [builder.load(slot) for slot in state]
        b = [vector_ir.constant(row) for row in chunk.b]
        a = [vector_ir.constant(row) for row in chunk.a]
        output = builder.fadd(z[0], builder.fmul(b[0], source))
        for i in range(chunk.order - 1):
            updated = builder.fadd(z[i + 1], builder.fmul(source, b[i + 1]))
            builder.store(builder.fsub(updated, builder.fmul(output, a[i + 1])), state[i])
        last = builder.fsub(
            builder.fmul(source, b[chunk.order]), builder.fmul(output, a[chunk.order])
        )
        builder.store(last, state[chunk.order - 1])
        outputs.append(output)

    past = [outputs, *older]  # past[d]: filter outputs d steps ago
    for step, values in zip(history, past, strict=False):
        for slot, value in zip(step, values, strict=True):
            builder.store(value, slot)

    def gather(taps: tuple[Tap | None, ...]) -> ir.Value:
        result = vector_ir.constant(0.0)
        for chunk, delay in sorted({(t.chunk, t.delay) for t in taps if t is not None}):
            lanes = {
                lane: t.lane
                for lane, t in enumerate(taps)
                if t is not None and (t.chunk, t.delay) == (chunk, delay)
            }
            result = vector_ir.merge_lanes(builder, result, past[delay][chunk], lanes)
        return result

    groups = range(0, len(wavefront.plus), LANES)
    return [
        builder.fsub(
            gather(wavefront.plus[first : first + LANES]),
            gather(wavefront.minus[first : first + LANES]),
        )
        for first in groups
    ]
