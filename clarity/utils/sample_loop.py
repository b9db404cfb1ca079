"""Compiled loops over the samples of a signal whose body is emitted as LLVM vector IR.

Recursive filters (the crossover, the compressors, the ear model's gammatone filters) advance
sample by sample; what runs in parallel at each step (other filters, other bands, the real and
imaginary parts) is laid across the lanes of `<8 x double>` vectors (`vector_ir`). A
`SampleLoop` is the numba-compiled loop around such a step:

* the body is a list of stages, each a list of phases: functions that emit the IR of one step
  given a `StepContext` (the step index, the arrays, the state);
* within a stage, steps run in sub-blocks of `BLOCK`: each phase runs over the sub-block before
  the next, passing per-step vectors through scratch memory. Work that does not depend on the
  previous step (a logarithm) then overlaps from step to step instead of waiting behind a
  recursion;
* two stages can run in two threads as a pipeline: the first stage of a block of
  `PIPELINE_BLOCK` steps runs while the second stage works on the previous block;
* a loop may run `delay` steps past the end of the signal (its outputs lag the input); steps
  before `delay` or past the last sample run a bounds-checked copy of the body, the others an
  unchecked one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from clarity.utils.vector_ir import DOUBLE, INT64, LANES, VECTOR

# placeholders for the arrays a loop's phases do not touch (one compiled type per argument)
UNUSED_PARAMS = np.zeros(LANES)
UNUSED_OUT = np.zeros((1, 1))
UNUSED_BANDS = np.zeros((1, 1, 1))
BLOCK = 128  # steps per sub-block of a stage (its scratch vectors stay in the L1 cache)
PIPELINE_BLOCK = 16384  # steps handed from the first stage's thread to the second's


@dataclass
class StepContext:
    """What an emitted phase sees (LLVM values, valid inside the loop).

    The loop works on one row of `signal` (rows, samples); `out` is (rows, samples) and
    `bands` (bands, rows, samples), all C-contiguous float64.

    Attributes:
        builder: the IR builder positioned in the loop body.
        t: the step index (int64).
        row: the row being processed (int64).
        n_rows, n_samples: shape of `signal` (int64).
        guarded: whether the step may lie outside [delay, n_samples), so accesses must be
            checked.
        signal, out, bands: data pointers (double*) of the loop's arrays.
        params: the parameter vectors, copied before the loop (allocas: the compiler then
            knows that stores to `out` do not change them).
        slots: state vectors (allocas), kept from step to step and from call to call.
        ring: pointer (<8 x double>*) to the loop's ring of vectors in memory.
        scratch_step: pointer (<8 x double>*) to this step's scratch vectors.
    """

    builder: ir.IRBuilder
    t: ir.Value
    row: ir.Value
    n_rows: ir.Value
    n_samples: ir.Value
    guarded: bool
    signal: ir.Value
    params: list
    out: ir.Value
    bands: ir.Value
    slots: list
    ring: ir.Value
    scratch_step: ir.Value

    def signal_sample(self, row: ir.Value | None = None) -> ir.Value:
        """signal[row, t] (default: the loop's row), or 0.0 where t >= n_samples."""
        builder = self.builder
        start = builder.mul(self.row if row is None else row, self.n_samples)
        if not self.guarded:
            return builder.load(builder.gep(self.signal, [builder.add(start, self.t)]))
        inside = builder.icmp_signed("<", self.t, self.n_samples)
        index = builder.add(start, builder.select(inside, self.t, INT64(0)))
        value = builder.load(builder.gep(self.signal, [index]))
        return builder.select(inside, value, ir.Constant(DOUBLE, 0.0))

    def store(self, pointer: ir.Value, row: ir.Value, lag: int, value: ir.Value) -> None:
        """pointer[row * n_samples + t - lag] = value, skipped outside [0, n_samples) when
        guarded."""
        builder = self.builder
        sample = builder.sub(self.t, INT64(lag))
        index = builder.add(builder.mul(row, self.n_samples), sample)
        if not self.guarded:
            builder.store(value, builder.gep(pointer, [index]))
            return
        inside = builder.and_(
            builder.icmp_signed(">=", sample, INT64(0)),
            builder.icmp_signed("<", sample, self.n_samples),
        )
        with builder.if_then(inside):
            builder.store(value, builder.gep(pointer, [index]))

    def store_band(self, band: int, lag: int, value: ir.Value) -> None:
        """bands[band, row, t - lag] = value (see `store`)."""
        row = self.builder.add(self.builder.mul(INT64(band), self.n_rows), self.row)
        self.store(self.bands, row, lag, value)

    def save(self, index: int, value: ir.Value) -> None:
        """Store `value` as this step's scratch vector `index`, for later phases and stages."""
        pointer = self.builder.gep(self.scratch_step, [INT64(index)])
        self.builder.store(value, pointer, align=8)

    def saved(self, index: int) -> ir.Value:
        """This step's scratch vector `index` (see `save`)."""
        pointer = self.builder.gep(self.scratch_step, [INT64(index)])
        return self.builder.load(pointer, align=8)

    def parameter_vector(self, index: int) -> ir.Value:
        """Vector `index` of the params array (params[8 index : 8 index + 8])."""
        return self.builder.load(self.params[index])


Phase = Callable[[StepContext], None]


def _copy_in(builder: ir.IRBuilder, pointer: ir.Value, count: int) -> list:
    """Allocas holding the first `count` vectors at `pointer` (double*)."""
    vectors = builder.bitcast(pointer, VECTOR.as_pointer())
    slots = []
    for index in range(count):
        slot = cgutils.alloca_once(builder, VECTOR)
        builder.store(builder.load(builder.gep(vectors, [INT64(index)]), align=8), slot)
        slots.append(slot)
    return slots


def _stage_intrinsic(
    phases: Sequence[Phase], n_slots: int, n_params: int, n_scratch: int, guarded: bool
):
    """Intrinsic running `phases` over steps [start, stop); the scratch of step t is at
    scratch[(t - base) * n_scratch * 8]."""

    @intrinsic
    def run_steps(typingctx, signal, params, out, bands, state, scratch, row, base, start, stop):
        signature = types.void(signal, params, out, bands, state, scratch, row, base, start, stop)

        def codegen(context, builder, signature, args):
            arrays = [
                context.make_array(kind)(context, builder, value)
                for kind, value in zip(signature.args[:6], args[:6], strict=True)
            ]
            signal, params, out, bands, state, scratch = (array.data for array in arrays)
            row, base, start, stop = args[6:]
            n_rows, n_samples = cgutils.unpack_tuple(builder, arrays[0].shape, 2)
            slots = _copy_in(builder, state, n_slots)
            parameters = _copy_in(builder, params, n_params)
            state_vectors = builder.bitcast(state, VECTOR.as_pointer())
            ring = builder.gep(state_vectors, [INT64(n_slots)])
            scratch = builder.bitcast(scratch, VECTOR.as_pointer())
            with cgutils.for_range_slice(builder, start, stop, INT64(BLOCK)) as (first, _):
                remaining = builder.sub(stop, first)
                short = builder.icmp_signed("<", remaining, INT64(BLOCK))
                last = builder.add(first, builder.select(short, remaining, INT64(BLOCK)))
                for phase in phases:
                    with cgutils.for_range_slice(builder, first, last, INT64(1)) as (t, _):
                        index = builder.mul(builder.sub(t, base), INT64(n_scratch))
                        phase(
                            StepContext(
                                builder, t, row, n_rows, n_samples, guarded, signal,
                                parameters, out, bands, slots, ring,
                                builder.gep(scratch, [index]),
                            )
                        )  # fmt: skip
            for index, slot in enumerate(slots):
                target = builder.gep(state_vectors, [INT64(index)])
                builder.store(builder.load(slot), target, align=8)
            return context.get_dummy_value()

        return signature, codegen

    return run_steps


def _stage_function(
    phases: Sequence[Phase], delay: int, n_slots: int, n_params: int, n_scratch: int
):
    """njit stage(signal, params, out, bands, row, state, scratch, start, stop) running the
    phases over steps [start, stop), bounds-checked only where needed; releases the GIL.
    Without delay every step lies in the signal: only the unchecked body is compiled."""
    unchecked = _stage_intrinsic(phases, n_slots, n_params, n_scratch, guarded=False)
    if delay == 0:

        @njit(nogil=True)
        def stage_in_signal(signal, params, out, bands, row, state, scratch, start, stop):
            unchecked(signal, params, out, bands, state, scratch, row, start, start, stop)

        return stage_in_signal
    checked = _stage_intrinsic(phases, n_slots, n_params, n_scratch, guarded=True)

    @njit(nogil=True)
    def stage(signal, params, out, bands, row, state, scratch, start, stop):
        low = max(start, delay)
        high = min(stop, signal.shape[1])
        if low < high:
            if start < low:
                checked(signal, params, out, bands, state, scratch, row, start, start, low)
            unchecked(signal, params, out, bands, state, scratch, row, start, low, high)
            if high < stop:
                checked(signal, params, out, bands, state, scratch, row, start, high, stop)
        else:
            checked(signal, params, out, bands, state, scratch, row, start, start, stop)

    return stage


_executors: dict[int, ThreadPoolExecutor] = {}


def _second_thread() -> ThreadPoolExecutor:
    """This process's worker thread for the pipeline's second stage (a child process forked
    from one that had it gets its own: the thread does not survive a fork)."""
    pid = os.getpid()
    if pid not in _executors:
        _executors[pid] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sample-loop")
    return _executors[pid]


def available_threads() -> int:
    """CPUs this process may use, capped by numba's thread count (NUMBA_NUM_THREADS)."""
    affinity = getattr(os, "sched_getaffinity", None)  # not on macOS
    cpus = len(affinity(0)) if affinity is not None else os.cpu_count() or 1
    return min(cpus, numba.config.NUMBA_NUM_THREADS)


class SampleLoop:
    """A compiled loop over the steps t = 0 .. n_samples + delay - 1 of one row of a signal.

    Call it as loop(signal, params, out, bands, row), arrays as described in `StepContext`
    (None for those the phases do not touch); params holds 8 n_params values.
    Each stage has its own `n_slots` state vectors and ring of `n_ring` vectors, all starting
    at zero; `n_scratch` vectors per step carry values between phases and stages.
    """

    def __init__(
        self,
        stages: Sequence[Sequence[Phase]],
        delay: int,
        n_slots: int,
        n_ring: int = 0,
        n_params: int = 0,
        n_scratch: int = 0,
    ) -> None:
        if len(stages) not in (1, 2):
            raise ValueError(f"a sample loop has one or two stages, got {len(stages)}")
        self.delay = delay
        self.n_state = (n_slots + n_ring) * LANES
        self.scratch_per_step = max(n_scratch, 1) * LANES
        self.stages = tuple(
            _stage_function(phases, delay, n_slots, n_params, n_scratch) for phases in stages
        )
        self._sequential = self._compile_sequential()

    def _compile_sequential(self):
        first_stage = self.stages[0]
        second_stage = self.stages[-1]
        two_stages = len(self.stages) == 2
        delay, n_state, scratch_size = self.delay, self.n_state, BLOCK * self.scratch_per_step

        @njit(nogil=True)
        def run(signal, params, out, bands, row):
            n_steps = signal.shape[1] + delay
            first_state = np.zeros(n_state)
            second_state = np.zeros(n_state)
            scratch = np.empty(scratch_size)
            for start in range(0, n_steps, BLOCK):
                stop = min(start + BLOCK, n_steps)
                first_stage(signal, params, out, bands, row, first_state, scratch, start, stop)
                if two_stages:
                    second_stage(
                        signal, params, out, bands, row, second_state, scratch, start, stop
                    )

        return run

    def __call__(
        self,
        signal: np.ndarray,
        params: np.ndarray | None,
        out: np.ndarray | None,
        bands: np.ndarray | None,
        row: int,
        threads: int | None = None,
    ) -> None:
        """Run the loop on `row`; with two stages and `threads` (default: `available_threads()`)
        >= 2, as a two-thread pipeline for signals longer than PIPELINE_BLOCK steps. An array
        given as None is one the phases do not touch (a small placeholder is passed)."""
        params = UNUSED_PARAMS if params is None else params
        out = UNUSED_OUT if out is None else out
        bands = UNUSED_BANDS if bands is None else bands
        n_steps = signal.shape[1] + self.delay
        threads = available_threads() if threads is None else threads
        if len(self.stages) == 1 or n_steps <= PIPELINE_BLOCK or threads < 2:
            self._sequential(signal, params, out, bands, row)
            return
        states = [np.zeros(self.n_state) for _ in self.stages]
        buffers = [np.empty(PIPELINE_BLOCK * self.scratch_per_step) for _ in range(2)]
        pending = None
        for block, start in enumerate(range(0, n_steps, PIPELINE_BLOCK)):
            stop = min(start + PIPELINE_BLOCK, n_steps)
            scratch = buffers[block % 2]
            self.stages[0](signal, params, out, bands, row, states[0], scratch, start, stop)
            if pending is not None:
                pending.result()
            pending = _second_thread().submit(
                self.stages[1], signal, params, out, bands, row, states[1], scratch, start, stop
            )
        pending.result()
