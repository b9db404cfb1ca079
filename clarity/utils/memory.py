"""The allocator policy of a process that scores or enhances many pairs.

HAAQI's ear model allocates and frees arrays of tens of MB per stage (a `(16, 240000)` float64
band group is 31 MB). With glibc's default policy such blocks are mapped for each allocation
and returned to the kernel when freed, so every stage faults its pages in anew, and the kernel
zeroes each page (2 MB ones where NumPy asks for transparent huge pages): measured on a 2-core
AMD EPYC VM, 0.2-0.4 s of system time in each 2 s HAAQI call of 10 s, against 0.04 s when
the freed memory is kept for reuse, about 10 % of the wall time. `keep_freed_memory` makes
that choice for the whole process: its heap then stays at its peak size until it exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

logger = logging.getLogger(__name__)

# mallopt parameters (glibc malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# blocks below this are taken from (and freed back to) the heap instead of being mapped
MMAP_THRESHOLD_BYTES = 1 << 30
# free memory at the top of the heap is returned to the kernel only beyond this
TRIM_THRESHOLD_BYTES = (1 << 31) - 1


@functools.cache
def keep_freed_memory() -> bool:
    """Keep freed memory in this process for reuse (glibc's `mallopt`); once per process.

    Returns:
        True if the C library took the settings; False where it is not glibc (macOS, musl),
        which keeps its own policy.
    """
    library_name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(library_name).mallopt
    except (OSError, AttributeError, TypeError):
        logger.debug("no mallopt in the C library %s: allocator policy left as it is", library_name)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    taken = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    logger.debug("freed memory kept for reuse: %s", taken)
    return taken


def allocator_policy(default_allocator: bool = False) -> str:
    """Set this process's allocator policy as the recipe's scripts run (freed memory kept, see
    `keep_freed_memory`) unless `default_allocator`, and say which one holds, for the
    benchmarks to print beside their timings."""
    if not default_allocator and keep_freed_memory():
        return "freed memory kept for reuse, as enhance.py and evaluate.py run"
    return "freed memory returned to the system (the C library's default policy)"
