"""clarity.utils.memory: a process that keeps freed memory reuses it instead of returning it."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# prints the resident memory (MB) before, with and after a 400 MB array, in a fresh process
RESIDENT_AFTER_FREE = """
import sys
import numpy as np
from clarity.utils.memory import allocator_policy

def resident_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20

keep = sys.argv[1] == "keep"
policy = allocator_policy(default_allocator=not keep)
assert policy.startswith("freed memory kept") == keep, policy
before = resident_mb()
array = np.ones(50_000_000)
held = resident_mb()
del array
print(before, held, resident_mb())
"""


def resident_memory(policy: str) -> tuple[float, float, float]:
    done = subprocess.run(
        [sys.executable, "-c", RESIDENT_AFTER_FREE, policy],
        capture_output=True,
        text=True,
        check=True,
    )
    before, held, after = (float(value) for value in done.stdout.split())
    return before, held, after


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="mallopt is glibc's",
)
def test_freed_memory_is_kept_only_when_asked() -> None:
    before, held, after = resident_memory("default")
    assert held - before > 350 and after - before < 50  # returned to the kernel
    before, held, after = resident_memory("keep")
    assert held - before > 350 and after - before > 350  # kept for the next arrays

