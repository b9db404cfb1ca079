"""Look-ahead measured by perturbing the future: causal and non-causal tiny models."""

from __future__ import annotations

import pytest
import torch

from clarity.separation.causality import (
    LookAhead,
    chunked_lookahead,
    first_changed_sample,
    main,
    measure_lookahead,
    model_lookahead,
)
from clarity.separation.convtasnet import ConvTasNetStereo

torch.set_num_threads(1)

SAMPLE_RATE = 44100
TINY = {"N": 12, "L": 8, "B": 10, "H": 14, "P": 3, "X": 3, "R": 2, "samplerate": SAMPLE_RATE}


def tiny_model(causal: bool, seed: int = 0) -> ConvTasNetStereo:
    torch.manual_seed(seed)
    model = ConvTasNetStereo(**TINY, causal=causal, norm_type="cLN" if causal else "gLN")
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() <= 1 or name.endswith(("gamma", "beta")):
                parameter.add_(0.2 * torch.randn_like(parameter))
    return model.eval()


def test_first_changed_sample_and_shift_detection():
    before = torch.zeros(1, 2, 2, 50)
    after = before.clone()
    after[0, 1, 0, 30:] = 1.0
    assert first_changed_sample(before + 1, after + 1, 1e-5) == 30
    assert first_changed_sample(before + 1, before + 1, 1e-5) == 50

    def look_ahead_by_3(mix: torch.Tensor) -> torch.Tensor:  # output[s] = input[s + 3]
        shifted = torch.nn.functional.pad(mix[..., 3:], (0, 3))
        return torch.stack([shifted, -shifted], dim=1)

    measured = measure_lookahead(look_ahead_by_3, 200, 1000, range(100, 104))
    assert (measured.samples, measured.ms, measured.whole_input) == (3, 3.0, False)
    assert measured.meets_rule() and not measured.meets_rule(limit_ms=2.0)


def test_causal_model_looks_ahead_by_the_rest_of_one_encoder_frame():
    model = tiny_model(causal=True)
    alone = model_lookahead(model, seconds=0.1)
    chunked = chunked_lookahead(model, segment=0.2, overlap=0.05)
    # an encoder frame of L samples ends L - 1 samples after its first output sample
    assert alone == LookAhead(TINY["L"] - 1, SAMPLE_RATE, whole_input=False)
    assert chunked == alone  # a cross-fade of causal chunk outputs stays causal
    assert alone.ms == pytest.approx(1000 * 7 / SAMPLE_RATE) and alone.meets_rule()


def test_non_causal_model_looks_over_the_whole_input_and_chunk():
    model = tiny_model(causal=False)
    alone = model_lookahead(model, seconds=0.1)
    chunked = chunked_lookahead(model, segment=0.2, overlap=0.05)
    n = int(0.1 * SAMPLE_RATE)
    assert alone.whole_input and alone.samples >= n // 2 and not alone.meets_rule()
    chunk = int(SAMPLE_RATE * 0.2 * 1.05)
    # probes sit in the cross-fade at the end of the first chunk: up to a chunk ahead
    assert chunked.whole_input and chunk - 2205 <= chunked.samples < chunk
    assert not chunked.meets_rule()


def test_command_line_reports_both_and_exit_status(tmp_path, capsys):
    for causal in (True, False):
        name = "Causal" if causal else "NonCausal"
        tiny_model(causal).save_pretrained(tmp_path / f"ConvTasNet_Violin_{name}")
    common = ["--checkpoint_dir", str(tmp_path), "--instruments", "Violin", "--segment", "0.2",
              "--overlap", "0.05", "--seconds", "0.1"]  # fmt: skip
    assert main([*common, "--causality", "causal"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("Violin: model alone 0.16 ms (7 samples)")
    assert "meets the 5 ms rule" in line
    assert main([*common, "--causality", "noncausal"]) == 1
    out = capsys.readouterr().out
    assert "at least" in out and "breaks the 5 ms rule" in out
