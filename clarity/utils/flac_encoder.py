"""Read and write 16-bit FLAC signals (pyClarity 0.9.0 `flac_encoder` functions, via soundfile).

A signal saved with `do_scale_signal=True` is divided by its peak before encoding and the peak is
written beside it in `<name>.txt`; `read_flac_signal` multiplies it back. Files are written to a
temporary file in the destination folder and then renamed, so a reader never sees half a file.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from clarity.utils.signal_processing import (
    INT16_SCALE,
    check_finite_signal,
    check_sample_rate,
    clip_signal,
    resample,
    to_16bit,
)

logger = logging.getLogger(__name__)


def _umask() -> int:
    """The process's file creation mask, read from /proc where Linux shows it; elsewhere by
    setting and restoring it (which other threads could briefly see)."""
    status = Path("/proc/self/status")
    lines = status.read_text().splitlines() if status.is_file() else []
    for line in lines:
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomically(path: Path, write) -> None:
    """Call write(temporary_path) for a temporary file beside `path`, then rename it to `path`.

    The file gets the permissions of any newly created file (0666 less the umask), not the
    0600 of a private temporary file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class FlacEncoder:
    """Encode int16 signals to FLAC files and decode them back."""

    def __init__(self, compression_level: int = 5) -> None:
        """
        Args:
            compression_level: FLAC compression level, 0 (fastest) to 8 (smallest).
        """
        if not 0 <= int(compression_level) <= 8:
            raise ValueError(f"compression_level must be in 0..8, got {compression_level}")
        self.compression_level = int(compression_level)

    def encode(
        self, signal: np.ndarray, sample_rate: int, output_file: str | Path | None = None
    ) -> bytes:
        """Encode `signal` as 16-bit FLAC, write it to `output_file`, return the bytes.

        Args:
            signal: int16, (samples,) or (samples, channels).
            sample_rate: Hz, a whole number.
            output_file: destination path; None only returns the encoded bytes.
        """
        if signal.dtype != np.int16:
            raise ValueError(f"FLAC encoder needs an int16 signal, got {signal.dtype}")
        rate = check_sample_rate(sample_rate)
        if rate != int(rate):
            raise ValueError(f"FLAC sample_rate must be a whole number of Hz, got {sample_rate}")

        def write(destination: Path | io.BytesIO) -> None:
            sf.write(
                destination,
                signal,
                int(rate),
                format="FLAC",
                subtype="PCM_16",
                compression_level=self.compression_level / 8,
            )

        if output_file is None:
            buffer = io.BytesIO()
            write(buffer)
            return buffer.getvalue()
        path = Path(output_file)
        write_atomically(path, write)
        return path.read_bytes()

    @staticmethod
    def decode(input_filename: str | Path) -> tuple[np.ndarray, float]:
        """Read a FLAC file as int16 samples.

        Returns:
            (signal int16 (samples,) for mono or (samples, channels), sample rate in Hz).
        """
        path = Path(input_filename)
        if not path.is_file():
            raise FileNotFoundError(f"FLAC file {path} not found")
        try:
            signal, sample_rate = sf.read(path, dtype="int16", always_2d=False)
        except (sf.LibsndfileError, RuntimeError) as error:
            raise ValueError(f"{path} is not a readable FLAC file: {error}") from error
        return signal, float(sample_rate)


def read_flac_signal(filename: str | Path) -> tuple[np.ndarray, float]:
    """Read a FLAC file saved by `save_flac_signal`.

    Args:
        filename: path of the .flac file; a `<name>.txt` beside it holds a scale factor to undo.

    Returns:
        (signal float32 in [-1, 1) times the scale factor, (samples, channels) or (samples,) for
        mono; sample rate in Hz as float).
    """
    path = Path(filename)
    samples, sample_rate = FlacEncoder.decode(path)
    signal = (samples / INT16_SCALE).astype(np.float32)
    scale_file = path.with_suffix(".txt")
    if scale_file.exists():
        text = scale_file.read_text(encoding="utf-8").strip()
        try:
            scale = float(text)
        except ValueError as error:
            raise ValueError(
                f"{scale_file} must hold one number (the scale), got {text!r}"
            ) from error
        signal *= scale
    return signal, sample_rate


def save_flac_signal(
    signal: np.ndarray,
    filename: str | Path,
    signal_sample_rate: float,
    output_sample_rate: float | None = None,
    do_clip_signal: bool = False,
    do_soft_clip: bool = False,
    do_scale_signal: bool = False,
) -> None:
    """Save a float signal as 16-bit FLAC.

    Steps, in the official order: resample to `output_sample_rate` (soxr HQ); then either scale by
    1 / peak and write the peak to `<name>.txt` (do_scale_signal, which takes precedence), or clip
    to [-1, 1], with tanh first if do_soft_clip (do_clip_signal); finally convert to int16.

    Args:
        signal: (samples,) or (samples, channels), nominally in [-1, 1].
        filename: destination .flac path.
        signal_sample_rate: rate of `signal`, Hz.
        output_sample_rate: rate of the file, Hz; None keeps `signal_sample_rate`.
        do_clip_signal: clip to [-1, 1] (logs how many samples were clipped).
        do_soft_clip: with do_clip_signal, apply tanh before clipping.
        do_scale_signal: normalise by the peak and store the peak in `<name>.txt`.

    Raises:
        ValueError: non-finite or empty signal, sample rate <= 0, silent signal to scale.
    """
    path = Path(filename)
    signal = np.asarray(signal)
    check_finite_signal(signal, f"signal for {path}")
    if signal.shape[0] == 0:
        raise ValueError(f"signal for {path} has no samples; FLAC cannot store an empty signal")
    signal_sample_rate = check_sample_rate(signal_sample_rate, "signal_sample_rate")
    if output_sample_rate is None:
        output_sample_rate = signal_sample_rate
    output_sample_rate = check_sample_rate(output_sample_rate, "output_sample_rate")

    signal = resample(signal, signal_sample_rate, output_sample_rate)
    if do_scale_signal:
        peak = float(np.max(np.abs(signal)))
        if peak == 0.0:
            raise ValueError(f"cannot scale the silent signal for {path} by its peak")
        signal = signal / peak
        write_atomically(
            path.with_suffix(".txt"), lambda temporary: temporary.write_text(f"{peak}")
        )
    elif do_clip_signal:
        signal, n_clipped = clip_signal(signal, do_soft_clip)
        if n_clipped > 0:
            logger.warning("Writing %s: %d samples clipped", path, n_clipped)

    FlacEncoder().encode(to_16bit(signal), output_sample_rate, path)
