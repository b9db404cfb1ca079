"""Files that a script generates beside released ones: it replaces only what it wrote itself.

A script that writes, say, `scenes.train2.json` into the dataset's metadata folder records the
SHA-256 of each file it writes in that folder's `.generated_files.json`. A later run may
replace a file whose content still has the recorded hash; any other existing file (a released
metadata file, or one edited by hand since) is replaced only when asked to (`overwrite`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from clarity.utils.flac_encoder import write_atomically

MANIFEST_NAME = ".generated_files.json"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest_path(path: Path) -> Path:
    return path.parent / MANIFEST_NAME


def _read_manifest(path: Path) -> dict[str, str]:
    manifest = _manifest_path(path)
    if not manifest.is_file():
        return {}
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{manifest} is not valid JSON ({error}); delete it") from error
    if not isinstance(recorded, dict):
        raise ValueError(f"{manifest}: expected a JSON object of file name -> SHA-256")
    return recorded


def was_generated(path: str | Path) -> bool:
    """Whether `path` holds exactly what `write_generated_text` last wrote there."""
    path = Path(path)
    recorded = _read_manifest(path).get(path.name)
    return recorded is not None and _digest(path.read_bytes()) == recorded


def check_replaceable(paths: Iterable[str | Path], overwrite: bool) -> None:
    """Refuse, before anything is written, to replace a file that was not generated here.

    Raises:
        FileExistsError: naming the first existing file of `paths` that this package did not
            write (e.g. a released metadata file), unless `overwrite`.
    """
    if overwrite:
        return
    for path in map(Path, paths):
        if path.exists() and not was_generated(path):
            raise FileExistsError(
                f"refusing to replace {path}: it was not written by this script (a released "
                "metadata file, or edited since); choose another output file or pass "
                "overwrite=true"
            )


def write_generated_text(path: str | Path, text: str) -> None:
    """Write UTF-8 `text` to `path` atomically and record its hash in the folder's manifest."""
    path = Path(path)
    data = text.encode("utf-8")
    write_atomically(path, lambda temporary: temporary.write_bytes(data))
    recorded = _read_manifest(path)
    recorded[path.name] = _digest(data)
    manifest = json.dumps(recorded, indent=2, sort_keys=True)
    write_atomically(
        _manifest_path(path), lambda temporary: temporary.write_text(manifest, encoding="utf-8")
    )
