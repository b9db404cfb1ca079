"""Seeds derived from text, as the challenge recipes derive them."""

from __future__ import annotations

import hashlib


def seed_from_text(text: str) -> int:
    """The last 8 decimal digits of the MD5 of `text` (UTF-8) read as a hexadecimal integer."""
    return int(hashlib.md5(text.encode("utf-8")).hexdigest(), 16) % (10**8)
