"""CSV file of evaluation results written one row at a time (pyClarity 0.9.0 `ResultsFile`).

Every `add_result` appends and flushes one row, so an interrupted evaluation keeps every score
already computed and can be resumed with `append_results=True`.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

from clarity.utils.flac_encoder import write_atomically


def csv_line(values: list) -> str:
    """One CSV line (comma separated, minimal quoting, trailing newline)."""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=",", quotechar='"', quoting=csv.QUOTE_MINIMAL).writerow(values)
    return buffer.getvalue()


class MissingColumnsError(KeyError, ValueError):
    """A result lacks some header columns.

    Both a ``KeyError`` (what pyClarity raises for a missing column) and a ``ValueError``
    (this package's check of a row's columns).
    """


@dataclass
class ResultsFile:
    """Results CSV with a fixed header.

    Attributes:
        file_name: path of the CSV file.
        header_columns: column names, in order.
        append_results: False starts a new file holding only the header (replacing any old
            one); True appends to an existing file, which must exist. An existing but empty file
            gets the header; a non-empty one must start with the same header.
    """

    file_name: str | Path
    header_columns: list[str]
    append_results: bool = False

    def __post_init__(self) -> None:
        self.file_name = Path(self.file_name)
        self.header_columns = list(self.header_columns)
        if not self.header_columns or len(set(self.header_columns)) != len(self.header_columns):
            raise ValueError(
                f"header_columns must be non-empty and unique, got {self.header_columns}"
            )
        header = csv_line(self.header_columns)
        if not self.append_results:
            write_atomically(
                self.file_name, lambda temporary: temporary.write_text(header, encoding="utf-8")
            )
            return
        if not self.file_name.exists():
            raise FileNotFoundError(
                f"Cannot append results to non-existent file {self.file_name.as_posix()}"
                " - please set append_results=False"
            )
        if self.file_name.stat().st_size == 0:
            self._append(header)
            return
        with open(self.file_name, encoding="utf-8", newline="") as csv_file:
            existing = next(csv.reader(csv_file), [])
        if existing != self.header_columns:
            raise ValueError(
                f"{self.file_name} has header {existing}, expected {self.header_columns}"
            )

    def _append(self, text: str) -> None:
        with open(self.file_name, "a", encoding="utf-8", newline="") as csv_file:
            csv_file.write(text)
            csv_file.flush()
            os.fsync(csv_file.fileno())

    def add_result(self, row_values: dict[str, str | float]) -> None:
        """Append one row; `row_values` must have exactly the header columns as keys.

        Raises:
            MissingColumnsError: (a ``KeyError`` and a ``ValueError``) when a column is missing.
            ValueError: when `row_values` has keys that are not columns.
        """
        missing = [c for c in self.header_columns if c not in row_values]
        extra = sorted(str(k) for k in row_values if k not in self.header_columns)
        if missing or extra:
            error = MissingColumnsError if missing else ValueError
            raise error(
                f"result for {self.file_name} must have the columns {self.header_columns};"
                f" missing {missing}, unexpected {extra}"
            )
        self._append(csv_line([row_values[column] for column in self.header_columns]))
