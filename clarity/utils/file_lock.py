"""An exclusive, OS-level lock on a file, held by one process at a time.

The lock is `flock(2)` on a lock file beside the protected one: the kernel releases it when the
holding process ends, however it ends (kill -9 included), so a crashed run never leaves a stale
lock behind. The holder writes its process id, host and start time into the lock file, so a
second process can say who holds it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class FileLockedError(RuntimeError):
    """Another process holds the lock; the message names the file and that process."""


def _holder(lock_path: Path) -> str:
    try:
        holder = json.loads(lock_path.read_text(encoding="utf-8"))
        return f"process {holder['pid']} on {holder['host']} (since {holder['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def exclusive_lock(path: str | Path, *, wait: bool = False) -> Iterator[Path]:
    """Hold the lock of `path` (the file `<path>.lock`) for the `with` block.

    Args:
        path: the file the lock protects (it need not exist).
        wait: block until the lock is free, instead of failing at once.

    Yields:
        The lock file's path.

    Raises:
        FileLockedError: `wait` is false and another process holds the lock.
    """
    path = Path(path)
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise FileLockedError(
                f"{path} is being written by {_holder(lock_path)} (lock {lock_path}); wait for "
                "that run to finish, or ask this one to wait for it"
            ) from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(holder).encode("utf-8"), 0)
        yield lock_path
    finally:
        os.close(descriptor)
