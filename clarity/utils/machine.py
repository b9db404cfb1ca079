"""The machine a benchmark or a training run ran on, in words: CPU model and widest SIMD level."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path


def _cpu_fields() -> dict[str, str]:
    """``field: value`` of the first processor in ``/proc/cpuinfo`` (Linux), else ``{}``."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def _simd_level(flags: set[str], machine: str) -> str:
    """Widest vector instructions: AVX-512, AVX2, AVX, SSE4.2, NEON/ASIMD or SVE."""
    if machine.lower() in ("aarch64", "arm64"):
        return "SVE" if "sve" in flags else "NEON"
    for flag, name in (
        ("avx512f", "AVX-512"),
        ("avx2", "AVX2"),
        ("avx", "AVX"),
        ("sse4_2", "SSE4.2"),
    ):
        if flag in flags:
            return name
    return "no AVX/SSE4.2"


def compiler_cpu_name() -> str:
    """The CPU that numba's kernels are compiled for, as LLVM names it (e.g. ``"znver4"``,
    ``"rocketlake"``): ``NUMBA_CPU_NAME`` if set, else the host. It tells CPUs apart that
    /proc/cpuinfo names alike ("AMD EPYC" of any generation) and sets the vector width."""
    from llvmlite import binding
    from numba.core import config

    return config.CPU_NAME or binding.get_host_cpu_name()


def cpu_description() -> str:
    """E.g. ``"Intel(R) Xeon(R) Processor (rocketlake), AVX-512"``: the model from
    /proc/cpuinfo (Linux) or sysctl, LLVM's name for it and the widest SIMD level."""
    fields = _cpu_fields()
    model = fields.get("model name") or fields.get("Model") or fields.get("CPU part")
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    if model is None and platform.system() == "Darwin":
        done = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True
        )
        model = done.stdout.strip() or None
    model = model or platform.processor() or "unknown CPU"
    return f"{model} ({compiler_cpu_name()}), {_simd_level(flags, platform.machine())}"
