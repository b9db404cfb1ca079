"""FLAC save/read: 16-bit round trip, resampling, clipping, scaling, atomic writes, bad files."""

import os
import stat

import numpy as np
import pytest

from clarity.utils.flac_encoder import (
    FlacEncoder,
    read_flac_signal,
    save_flac_signal,
    write_atomically,
)


def stereo(n_samples: int = 4410, peak: float = 0.9) -> np.ndarray:
    return np.random.default_rng(0).uniform(-peak, peak, (n_samples, 2))


def test_16bit_round_trip(tmp_path):
    signal = stereo()
    path = tmp_path / "out.flac"
    save_flac_signal(signal, path, 44100)
    decoded, sample_rate = read_flac_signal(path)
    assert sample_rate == 44100.0
    assert decoded.dtype == np.float32
    assert decoded.shape == signal.shape
    assert np.max(np.abs(decoded - signal)) <= 1 / 32768 + 1e-7  # truncation to 16 bits
    assert [p.name for p in tmp_path.iterdir()] == ["out.flac"]  # no temporary left behind


def test_int16_samples_survive_exactly(tmp_path):
    samples = np.random.default_rng(1).integers(-32768, 32767, (1000, 2)).astype(np.int16)
    FlacEncoder().encode(samples, 16000, tmp_path / "x.flac")
    decoded, rate = FlacEncoder.decode(tmp_path / "x.flac")
    np.testing.assert_array_equal(decoded, samples)
    assert rate == 16000.0
    mono = samples[:, 0].copy()
    FlacEncoder().encode(mono, 16000, tmp_path / "mono.flac")
    np.testing.assert_array_equal(FlacEncoder.decode(tmp_path / "mono.flac")[0], mono)


def test_encode_without_a_file_returns_the_flac_bytes(tmp_path):
    samples = np.random.default_rng(2).integers(-32768, 32767, (800, 2)).astype(np.int16)
    encoded = FlacEncoder(compression_level=8).encode(samples, 22050)
    assert encoded[:4] == b"fLaC"
    written = tmp_path / "x.flac"
    written.write_bytes(encoded)
    decoded, rate = FlacEncoder.decode(written)
    np.testing.assert_array_equal(decoded, samples)
    assert rate == 22050.0


def test_resampled_on_save(tmp_path):
    path = tmp_path / "resampled.flac"
    save_flac_signal(stereo(44100, 0.5), path, 44100, output_sample_rate=32000)
    decoded, sample_rate = read_flac_signal(path)
    assert sample_rate == 32000.0
    assert decoded.shape == (32000, 2)


def test_clip_and_scale(tmp_path):
    loud = stereo(1000, 3.0)
    save_flac_signal(loud, tmp_path / "clip.flac", 16000, do_clip_signal=True)
    clipped, _ = read_flac_signal(tmp_path / "clip.flac")
    assert np.max(np.abs(clipped)) <= 1.0
    assert np.count_nonzero(np.abs(clipped) >= 32767 / 32768) > 100

    save_flac_signal(loud, tmp_path / "scaled.flac", 16000, do_scale_signal=True)
    assert (tmp_path / "scaled.txt").exists()
    scaled, _ = read_flac_signal(tmp_path / "scaled.flac")
    np.testing.assert_allclose(scaled, loud, atol=3.0 / 32768 + 1e-6)


def test_empty_signal_is_refused(tmp_path):
    # libsndfile writes a FLAC file with no samples that it cannot read back
    with pytest.raises(ValueError, match="no samples"):
        save_flac_signal(np.zeros((0, 2)), tmp_path / "empty.flac", 16000)
    assert not (tmp_path / "empty.flac").exists()


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.flac"):
        read_flac_signal(tmp_path / "missing.flac")
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"not a flac file at all")
    with pytest.raises(ValueError, match=r"corrupt\.flac"):
        read_flac_signal(corrupt)
    with pytest.raises(ValueError, match="NaN or inf"):
        save_flac_signal(np.array([0.0, np.nan]), tmp_path / "nan.flac", 16000)
    with pytest.raises(ValueError, match="signal_sample_rate"):
        save_flac_signal(np.zeros(10), tmp_path / "rate.flac", 0)
    with pytest.raises(ValueError, match="int16"):
        FlacEncoder().encode(np.zeros(10), 16000, tmp_path / "float.flac")
    assert not (tmp_path / "nan.flac").exists()


def test_written_files_respect_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        save_flac_signal(np.zeros((100, 2)), tmp_path / "signal.flac", 16000)
        write_atomically(tmp_path / "notes.txt", lambda temporary: temporary.write_text("x"))
    finally:
        os.umask(previous)
    for name in ("signal.flac", "notes.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640
