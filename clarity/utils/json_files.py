"""Reading the JSON files of the recipe (metadata, listeners, checkpoint configs) with errors
that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(path: str | Path, what: str) -> Any:
    """Parse a UTF-8 JSON file.

    Args:
        path: the file.
        what: what the file holds, for the error message (e.g. "listeners").

    Raises:
        ValueError: naming `what` and the file when it is missing or not valid JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} file not found: {path}")
    try:
        with path.open("r", encoding="utf-8") as file:
            return json.load(file)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{what} file {path} is not valid JSON: {error}") from error


def read_json_object(path: str | Path, what: str) -> dict[str, Any]:
    """Parse a JSON file whose top level must be an object; `ValueError` otherwise (see
    `read_json`)."""
    value = read_json(path, what)
    if not isinstance(value, dict):
        raise ValueError(
            f"{what} file {path}: expected a JSON object, got {type(value).__name__}"
        )
    return value
