"""Monaural audiograms and binaural listeners, as in the Clarity/Cadenza metadata.

An :class:`Audiogram` holds hearing thresholds (dB HL) measured at increasing
frequencies (Hz). A :class:`Listener` pairs a left and a right audiogram and can be
read from the Clarity listener JSON files, whose entries look like::

    {"L0001": {"name": "L0001", "audiogram_cfs": [250, 500, ...],
               "audiogram_levels_l": [10, 15, ...], "audiogram_levels_r": [...]}}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from clarity.utils.json_files import read_json_object

DEFAULT_CLARITY_AUDIOGRAM_FREQUENCIES: Final = np.array(
    [250, 500, 1000, 2000, 3000, 4000, 6000, 8000]
)
FULL_STANDARD_AUDIOGRAM_FREQUENCIES: Final = np.array(
    [125, 250, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 10000, 12000, 14000, 16000]
)



class AudiogramShapeError(ValueError, TypeError):
    """Audiogram levels or frequencies that are not 1-D sequences (e.g. None or a scalar).

    Both a ``ValueError`` (this package's validation errors) and a ``TypeError`` (what
    pyClarity raises for an unsized argument), so callers of either catch it.
    """


# Severity is the mean loss over 2-8 kHz compared with these lower bounds (dB HL).
_SEVERITY_BOUNDS: Final = (("SEVERE", 56.0), ("MODERATE", 35.0), ("MILD", 15.0))


@dataclass
class Audiogram:
    """Hearing thresholds of one ear.

    Attributes:
        levels: thresholds in dB HL, shape ``(n_frequencies,)``.
        frequencies: strictly increasing measurement frequencies in Hz, same shape.

    Raises:
        AudiogramShapeError: (a ``ValueError`` and a ``TypeError``) when levels or frequencies
            are not 1-D, e.g. ``Audiogram(None)``.
        ValueError: when the lengths differ, a level is NaN, or the frequencies are not
            strictly increasing and positive.
    """

    levels: np.ndarray
    frequencies: np.ndarray = field(
        default_factory=lambda: np.array(DEFAULT_CLARITY_AUDIOGRAM_FREQUENCIES)
    )

    def __post_init__(self) -> None:
        self.levels = np.asarray(self.levels, dtype=float)
        self.frequencies = np.asarray(self.frequencies, dtype=float)
        if self.levels.ndim != 1 or self.frequencies.ndim != 1:
            raise AudiogramShapeError(
                "Audiogram levels and frequencies must be 1-D arrays, got shapes "
                f"{self.levels.shape} and {self.frequencies.shape}"
            )
        if len(self.levels) != len(self.frequencies):
            raise ValueError(
                f"Audiogram levels ({len(self.levels)}) and frequencies "
                f"({len(self.frequencies)}) must have the same length"
            )
        if len(self.levels) == 0:
            raise ValueError("Audiogram needs at least one (frequency, level) pair")
        if np.any(np.isnan(self.levels)):
            raise ValueError(f"Audiogram levels must not be NaN, got {self.levels.tolist()}")
        if not np.all(np.isfinite(self.frequencies)) or np.any(self.frequencies <= 0):
            raise ValueError(
                f"Audiogram frequencies must be finite and > 0 Hz, got {self.frequencies.tolist()}"
            )
        if np.any(np.diff(self.frequencies) <= 0):
            raise ValueError(
                "Audiogram frequencies must be strictly increasing, got "
                f"{self.frequencies.tolist()}"
            )

    @property
    def severity(self) -> str:
        """Degree of loss from the mean threshold at 2-8 kHz (inclusive).

        Returns ``"SEVERE"`` (> 56 dB HL), ``"MODERATE"`` (> 35), ``"MILD"`` (> 15) or
        ``"NOTHING"``; an audiogram without any 2-8 kHz frequency counts as 0 dB HL.
        """
        critical = (self.frequencies >= 2000) & (self.frequencies <= 8000)
        mean_loss = float(np.mean(self.levels[critical])) if np.any(critical) else 0.0
        for label, bound in _SEVERITY_BOUNDS:
            if mean_loss > bound:
                return label
        return "NOTHING"

    def has_frequencies(self, frequencies: np.ndarray) -> bool:
        """True when every frequency (Hz) in ``frequencies`` is measured in this audiogram."""
        return bool(np.all(np.isin(np.asarray(frequencies, dtype=float), self.frequencies)))

    def resample(self, new_frequencies: np.ndarray, linear_frequency: bool = False) -> Audiogram:
        """Thresholds at ``new_frequencies`` (Hz) by piecewise-linear interpolation.

        Interpolation runs on a log-frequency axis (or a linear one when
        ``linear_frequency``); outside the measured range the end levels are held.
        """
        new_frequencies = np.asarray(new_frequencies, dtype=float)
        if linear_frequency:
            x_new, x_old = new_frequencies, self.frequencies
        else:
            x_new, x_old = np.log(new_frequencies), np.log(self.frequencies)
        levels = np.interp(x_new, x_old, self.levels, left=self.levels[0], right=self.levels[-1])
        return Audiogram(levels=levels, frequencies=new_frequencies)


# Reference audiograms of the Cambridge MSBG hearing-loss model.
AUDIOGRAM_REF: Final = Audiogram(
    levels=np.zeros(len(FULL_STANDARD_AUDIOGRAM_FREQUENCIES)),
    frequencies=FULL_STANDARD_AUDIOGRAM_FREQUENCIES,
)
AUDIOGRAM_REF_CLARITY: Final = Audiogram(
    levels=np.zeros(len(DEFAULT_CLARITY_AUDIOGRAM_FREQUENCIES)),
    frequencies=DEFAULT_CLARITY_AUDIOGRAM_FREQUENCIES,
)
AUDIOGRAM_MILD: Final = Audiogram(
    levels=np.array([5, 10, 15, 18, 19, 22, 25, 28, 31, 35, 38, 40, 40, 45, 50]),
    frequencies=FULL_STANDARD_AUDIOGRAM_FREQUENCIES,
)
AUDIOGRAM_MODERATE: Final = Audiogram(
    levels=np.array([15, 20, 20, 22.5, 25, 30, 35, 40, 45, 50, 55, 55, 60, 65, 65]),
    frequencies=FULL_STANDARD_AUDIOGRAM_FREQUENCIES,
)
AUDIOGRAM_MODERATE_SEVERE: Final = Audiogram(
    levels=np.array([19, 19, 28, 35, 40, 47, 52, 56, 58, 58, 63, 70, 75, 80, 80]),
    frequencies=FULL_STANDARD_AUDIOGRAM_FREQUENCIES,
)



class ListenerKeyError(KeyError, ValueError):
    """A listener entry lacks a key: a ``KeyError`` as in pyClarity, and a ``ValueError``."""

    def __str__(self) -> str:
        """The message as given (``KeyError`` would quote it), so it can be nested."""
        return str(self.args[0])


class ListenerFileNotFoundError(FileNotFoundError, ValueError):
    """No listener file: a ``FileNotFoundError`` as in pyClarity, and a ``ValueError``."""


_LISTENER_KEYS: Final = ("name", "audiogram_cfs", "audiogram_levels_l", "audiogram_levels_r")


@dataclass
class Listener:
    """A listener: one audiogram per ear and an identifier."""

    audiogram_left: Audiogram
    audiogram_right: Audiogram
    id: str = ""

    @staticmethod
    def from_dict(listener_dict: dict) -> Listener:
        """Build a listener from one entry of a Clarity listener file.

        Raises:
            ListenerKeyError: (a ``KeyError`` and a ``ValueError``) naming the listener and
                the missing keys.
            ValueError: naming the listener and the field of a bad audiogram (an
                :class:`AudiogramShapeError`, also a ``TypeError``, for a non-list field).
        """
        name = listener_dict.get("name", "<unnamed>")
        missing = [key for key in _LISTENER_KEYS if key not in listener_dict]
        if missing:
            raise ListenerKeyError(f"Listener '{name}': missing key(s) {missing}")
        ears = {}
        for ear, key in (("left", "audiogram_levels_l"), ("right", "audiogram_levels_r")):
            try:
                ears[ear] = Audiogram(
                    levels=listener_dict[key], frequencies=listener_dict["audiogram_cfs"]
                )
            except ValueError as error:
                raise type(error)(f"Listener '{name}', field '{key}': {error}") from error
        return Listener(audiogram_left=ears["left"], audiogram_right=ears["right"], id=name)

    @staticmethod
    def load_listener_dict(filename: str | Path) -> dict[str, Listener]:
        """Read a Clarity listener JSON file into ``{listener_id: Listener}``.

        Raises:
            ListenerFileNotFoundError: (a ``FileNotFoundError`` and a ``ValueError``) when
                there is no such file.
            ValueError: when the file is not a JSON object of listener entries; the errors
                of :meth:`from_dict` keep their types and gain the file name.
        """
        path = Path(filename)
        if not path.is_file():
            raise ListenerFileNotFoundError(f"listeners file not found: {path}")
        raw = read_json_object(path, "listeners")
        listeners = {}
        for listener_id, entry in raw.items():
            if not isinstance(entry, dict):
                raise ValueError(f"{path}: listener '{listener_id}' is not a JSON object")
            try:
                listeners[listener_id] = Listener.from_dict(entry)
            except ValueError as error:
                raise type(error)(f"{path}: {error}") from error
        return listeners
