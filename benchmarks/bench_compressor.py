"""Time the multiband compressor on 10 s of 44.1 kHz audio (mono and stereo).

Run from the repository root:  python benchmarks/bench_compressor.py
Prints the median of several runs after a warm-up call (which also compiles the loops): the
multiband compressor as called (two threads where two CPUs are free: see `sample_loop`), the
same on one thread, and the crossover alone, with `uptime`'s load (the 2 cores are shared), and
the largest difference of the crossover bands from the official lfilter cascade. The input is
pink-ish noise at about -20 dB FS with the 6-band settings of the reference case, so most band
samples reach the compressors.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
from scipy.signal import lfilter

from clarity.enhancer.multiband_compressor import MultibandCompressor
from clarity.enhancer.multiband_compressor.compressor_qmul import parameter_vectors
from clarity.enhancer.multiband_compressor.multiband_compressor import multiband_loop

SAMPLE_RATE = 44100
DURATION_S = 10.0
REPEATS = 15
CROSSOVER_HZ = [353.55, 707.11, 1414.21, 2828.43, 5656.85]
SETTINGS = {
    "attack": [11, 11, 14, 13, 11, 11],
    "release": [80, 80, 80, 80, 100, 100],
    "threshold": -30.0,
    "ratio": [1.0, 1.2, 1.5, 1.8, 2.0, 2.4],
    "makeup_gain": [0.0, 2.0, 4.0, 8.0, 12.0, 15.0],
}


def music_like_noise(n_channels: int, n_samples: int) -> np.ndarray:
    """(channels, samples) noise with a 1/f spectrum scaled to 0.1 RMS."""
    rng = np.random.default_rng(0)
    spectrum = np.fft.rfft(rng.standard_normal((n_channels, n_samples)), axis=-1)
    spectrum /= np.sqrt(np.maximum(np.arange(spectrum.shape[-1]), 1.0))
    noise = np.fft.irfft(spectrum, n=n_samples, axis=-1)
    return 0.1 * noise / np.sqrt(np.mean(noise**2))


def median_seconds(function, *args) -> float:
    function(*args)
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def one_thread(mbc: MultibandCompressor, signal: np.ndarray) -> np.ndarray:
    """What mbc(signal) computes, with the loop forced onto the calling thread."""
    loop = multiband_loop(mbc.crossover.wavefront, False)
    output = np.empty_like(signal)
    parameters = parameter_vectors(mbc.compressor)
    for channel in range(signal.shape[0]):
        loop(signal, parameters, output, None, channel, threads=1)
    return output


def max_error_vs_lfilter(mbc: MultibandCompressor, signal: np.ndarray) -> float:
    """Largest |band - official lfilter cascade| over the bands of `signal` (samples,)."""
    bands = mbc.crossover(signal)
    error = 0.0
    for band in range(mbc.num_compressors):
        expected = signal
        for b, a in mbc.crossover.band_filters(band):
            expected = lfilter(b, a, expected)
        error = max(error, float(np.max(np.abs(bands[band] - expected))))
    return error


def main() -> None:
    mbc = MultibandCompressor(CROSSOVER_HZ, SAMPLE_RATE)
    mbc.set_compressors(**SETTINGS)
    n_samples = int(DURATION_S * SAMPLE_RATE)
    for label, n_channels in (("mono", 1), ("stereo", 2)):
        signal = music_like_noise(n_channels, n_samples)
        total = median_seconds(mbc, signal[0] if n_channels == 1 else signal)
        single = median_seconds(one_thread, mbc, signal)
        crossover = median_seconds(mbc.crossover, signal)
        print(
            f"{label:>6}: {DURATION_S:.0f} s at {SAMPLE_RATE} Hz, {mbc.num_compressors} bands:"
            f" multiband compressor {total * 1e3:6.1f} ms, on one thread {single * 1e3:6.1f} ms"
            f" (crossover alone {crossover * 1e3:5.1f} ms), median of {REPEATS}"
        )
    error = max_error_vs_lfilter(mbc, music_like_noise(1, n_samples)[0])
    print(f"max |band - lfilter cascade| = {error:.2e}; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
