"""How far into the future a separation model looks, measured by perturbing the future.

The CAD2 rules allow a causal system at most 5 ms of look-ahead. This module measures it
instead of trusting a ``causal`` flag: for a random stereo input ``x`` and a time ``t``, the
input is replaced from sample ``t`` on by other random values, and the earliest output sample
``s`` that changes at all shows that output ``s`` already depended on input ``t`` (earlier
outputs of a causal computation come out bit for bit the same, so any change counts; a small
tolerance would hide weak dependences at the edge of a receptive field): a look-ahead of
``t - s`` samples. The largest value over ``L // 2`` consecutive ``t`` (every position within
an encoder hop) and random inputs is reported, in samples and ms, for

* the model alone (:func:`model_lookahead`, one call of :meth:`ConvTasNetStereo.infer`), and
* the chunked separation as the recipe runs it (:func:`chunked_lookahead`:
  :func:`clarity.separation.inference.separate_sources` with the recipe's ``segment`` and
  ``overlap``, ``config.yaml`` ``separator.separation``).

What to expect: a causal Conv-TasNet with cLN (left-padded convolutions) looks ahead by at most
``L - 1`` samples, the rest of its last encoder frame (19 samples, 0.43 ms, for ``L = 20`` at
44.1 kHz). Chunking keeps that: every chunk's output is a causal function of that chunk's input
and the cross-fade only adds such outputs, so the measured look-ahead of the chunked separation
is the model's. A non-causal model (gLN statistics over the whole input, centred kernels)
looks ahead over the whole input alone and over up to a whole chunk in the chunked
separation. A non-causal model with cLN looks ahead by half its receptive field, as far as
its weights let the input through (the shipped demo Cello model, X=8, R=2, L=40: 10238
samples = 232.2 ms alone, 10236 chunked, against 510 frames of 20 samples plus L - 1 = 10239
for half its receptive field; built causal, measured at X=6: 39 samples = 0.88 ms, L - 1,
which X does not change). The tests
(tests/test_causality.py) measure a tiny causal cLN model with ``L = 8``: 7 samples (0.16 ms
at 44.1 kHz) alone and chunked; the tiny non-causal gLN model: the whole 0.1 s input alone (at
least 50 ms from the probes in its middle) and 185 ms of its 0.21 s chunks chunked.

Command line (prints one line per instrument and exits 1 when a model breaks the rule)::

    python -m clarity.separation.causality --checkpoint_dir DIR --causality causal \\
        [--instruments Violin Cello] [--segment 10 --overlap 0.1] [--trials 1]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from clarity.separation.checkpoints import INSTRUMENTS, load_separation_models
from clarity.separation.convtasnet import ConvTasNetStereo
from clarity.separation.inference import chunk_schedule, separate_sources

RULE_MS = 5.0  # CAD2: a causal system may look at most 5 ms ahead
RECIPE_SEGMENT = 10.0  # s, config.yaml separator.separation.segment
RECIPE_OVERLAP = 0.1  # s, config.yaml separator.separation.overlap


@dataclass(frozen=True)
class LookAhead:
    """Largest measured look-ahead.

    Attributes:
        samples: input samples ahead of an output sample that it depends on (0: causal).
        sample_rate: Hz.
        whole_input: True when some output changed from the first sample on, so the
            look-ahead is limited only by the probe (at least ``samples``).
    """

    samples: int
    sample_rate: int
    whole_input: bool

    @property
    def ms(self) -> float:
        return 1000.0 * self.samples / self.sample_rate

    def meets_rule(self, limit_ms: float = RULE_MS) -> bool:
        """Whether the look-ahead is at most ``limit_ms`` (the CAD2 rule: 5 ms)."""
        return not self.whole_input and self.ms <= limit_ms

    def describe(self) -> str:
        bound = "at least " if self.whole_input else ""
        return f"{bound}{self.ms:.2f} ms ({bound}{self.samples} samples)"


def first_changed_sample(before: torch.Tensor, after: torch.Tensor, tolerance: float) -> int:
    """Index of the first sample (last axis) where ``after`` differs from ``before`` by more
    than ``tolerance * max|before|``; the length when none does."""
    scale = before.abs().max().clamp_min(1e-12)
    changed = ((after - before).abs() > tolerance * scale).reshape(-1, before.shape[-1])
    columns = changed.any(dim=0).nonzero()
    return int(columns[0]) if len(columns) else before.shape[-1]


def measure_lookahead(
    separate: Callable[[torch.Tensor], torch.Tensor],
    n_samples: int,
    sample_rate: int,
    probe_times: Sequence[int],
    channels: int = 2,
    trials: int = 2,
    seed: int = 0,
    tolerance: float = 0.0,
) -> LookAhead:
    """Look-ahead of ``separate`` ((1, channels, n) -> (1, sources, channels, n)).

    For each of ``trials`` random inputs of ``n_samples`` and each ``t`` in ``probe_times``,
    the input from ``t`` on is redrawn and ``t - first changed output sample`` recorded; a
    change counts when larger than ``tolerance * max|output|`` (default 0: any change).
    """
    generator = torch.Generator().manual_seed(seed)
    largest, whole = 0, False
    for _ in range(trials):
        mix = 0.1 * torch.randn(1, channels, n_samples, generator=generator)
        before = separate(mix)
        for t in probe_times:
            changed = mix.clone()
            changed[..., t:] = 0.1 * torch.randn(1, channels, n_samples - t, generator=generator)
            first = first_changed_sample(before, separate(changed), tolerance)
            largest = max(largest, t - first)
            whole = whole or (first == 0 and t > 0)
    return LookAhead(largest, sample_rate, whole)


def model_lookahead(model: ConvTasNetStereo, seconds: float = 1.0, trials: int = 2) -> LookAhead:
    """Look-ahead of ``model`` alone on ``seconds`` of input.

    Probes at ``L // 2`` consecutive times from the middle of the input: every position within
    an encoder hop, so the largest look-ahead of a causal model is met.
    """
    n = max(int(seconds * model.samplerate), 4 * model.L)
    times = range(n // 2, n // 2 + model.L // 2)
    return measure_lookahead(model.infer, n, model.samplerate, times, model.audio_channels, trials)


def chunked_lookahead(
    model: ConvTasNetStereo,
    segment: float = RECIPE_SEGMENT,
    overlap: float = RECIPE_OVERLAP,
    trials: int = 1,
) -> LookAhead:
    """Look-ahead of the recipe's chunked separation (``separate_sources``) with ``model``.

    The input spans the first two chunks; probes at ``L // 2`` consecutive times in the middle
    of the cross-fade between them (where both chunks contribute and a chunk-wide look-ahead
    is largest).
    """
    rate = model.samplerate
    n = int(rate * segment * (1 + overlap)) + int(rate * segment)
    first = chunk_schedule(n, rate, segment, overlap)[0]
    middle = first.stop - max(first.fade_out // 2, model.L // 2)
    times = range(middle, middle + model.L // 2)

    def separate(mix: torch.Tensor) -> torch.Tensor:
        return separate_sources(model, mix, rate, segment, overlap, number_sources=model.C)

    return measure_lookahead(separate, n, rate, times, model.audio_channels, trials)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Measure the look-ahead of CAD2 separation models (the rule: 5 ms).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--checkpoint_dir", required=True,
                        help="folder of ConvTasNet_<Instrument>_<Causal|NonCausal>/")  # fmt: skip
    parser.add_argument("--causality", required=True, choices=("causal", "noncausal"))
    parser.add_argument("--instruments", nargs="+", default=list(INSTRUMENTS),
                        choices=INSTRUMENTS)  # fmt: skip
    parser.add_argument("--segment", type=float, default=RECIPE_SEGMENT, help="chunk length, s")
    parser.add_argument("--overlap", type=float, default=RECIPE_OVERLAP, help="cross-fade, s")
    parser.add_argument("--seconds", type=float, default=1.0, help="input of the model alone")
    parser.add_argument("--trials", type=int, default=1, help="random inputs per measurement")
    args = parser.parse_args(argv)
    models = load_separation_models(args.causality, args.checkpoint_dir, args.instruments)
    all_meet = True
    for instrument, model in models.items():
        alone = model_lookahead(model, args.seconds, args.trials)
        chunked = chunked_lookahead(model, args.segment, args.overlap, args.trials)
        meets = alone.meets_rule() and chunked.meets_rule()
        all_meet &= meets
        verdict = "meets" if meets else "breaks"
        print(
            f"{instrument}: model alone {alone.describe()}, chunked separation "
            f"(segment {args.segment} s, overlap {args.overlap} s) {chunked.describe()}: "
            f"{verdict} the {RULE_MS:g} ms rule"
        )
    return 0 if all_meet else 1


if __name__ == "__main__":
    sys.exit(main())
