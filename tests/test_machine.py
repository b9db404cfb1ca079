"""The machine description printed by the benchmarks and recorded by the demo training."""

import re

import pytest
from numba.core import config

from clarity.utils.machine import compiler_cpu_name, cpu_description


def test_cpu_description_names_the_model_the_compiler_target_and_the_simd_level():
    description = cpu_description()
    match = re.fullmatch(r"(.+) \((\S+)\), (AVX-512|AVX2|AVX|SSE4\.2|no AVX/SSE4\.2|NEON|SVE)",
                         description)  # fmt: skip
    assert match is not None, description
    assert match.group(2) == compiler_cpu_name()


def test_compiler_cpu_name_follows_numba_cpu_name(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(config, "CPU_NAME", "generic")
    assert compiler_cpu_name() == "generic"
    assert "(generic)" in cpu_description()
