"""Multi-way Linkwitz-Riley crossover (4th order) with all-pass phase compensation.

Each crossover frequency f_m gets a 4th-order Linkwitz-Riley low-pass LP_m and high-pass HP_m,
a 2nd-order Butterworth filter applied twice [1]. Their sum LP_m + HP_m is an all-pass AP_m
(`make_all_pass`). For crossover frequencies f_0 < ... < f_{N-1}, band k (k = 0..N) is the chain

    band k = AP_{N-1} ... AP_{k+1} · HP_{k-1} ... HP_0 · LP_k · x      (no LP_N in band N)

applied right to left, so that every band carries the same all-pass phase and the bands sum to
a flat magnitude [2]. The filters are the 5-coefficient LR4 polynomials and the 9-coefficient
all-pass polynomials of `compute_coefficients`.

How it runs. The all-pass polynomials have four-fold poles near z = 1; at low crossover
frequencies the rounding of the direct form reaches 1e-8 of the signal on band 0, so only the
same arithmetic reproduces the official bands. `filter_lanes` runs exactly that arithmetic:
the direct form II transposed of `scipy.signal.lfilter`, operation for operation,

    y[n]   = z_0 + b_0 x[n]
    z_i    = z_{i+1} + b_{i+1} x[n] - a_{i+1} y[n]        (i = 0 .. order - 2)
    z_last = b_order x[n] - a_order y[n]

without fused multiply-adds, so every band is bit-identical to the official cascade. The
chains of all bands and channels run side by side ("lanes", lane = band x channels + channel):
for each sample, for each stage of the chains, for each lane, one update as above. The inner
loop over independent lanes is what the compiler turns into vector instructions; to that end
the lanes are padded to a multiple of 4 with identity filters, chains shorter than the longest
with identity stages and the LR4 filters with zero coefficients up to order 8, none of which
changes a bit of the outputs. The lanes are shared out in blocks among numba's threads (one
block per thread, `NUMBA_NUM_THREADS=1` for one). `split_rows` continues from a carried state,
so a long signal can be split one block at a time (as the multiband compressor does).

Cost: 8 lanes x 5 stages x 8 state updates per sample for 6 bands (twice the 160 updates of
the official filters, the price of the uniform lanes). Realising the all-passes as biquads
would cut this but move band 0 by ~1e-12; keeping the official numbers exactly was chosen.

References:
    [1] Linkwitz, S. H. (1976). Active crossover networks for noncoincident drivers.
        J. Audio Eng. Soc., 24(1), 2-8.
    [2] D'Appolito, J. A. (1984). Active realization of multiway all-pass crossover systems.
        AES Convention 76.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.signal import butter, tf2zpk, zpk2tf

from clarity.utils.signal_processing import check_finite_signal, check_sample_rate

MAX_ORDER = 8  # the all-pass filters; LR4 filters are zero-padded to this order
LANE_BLOCK = 16  # most lanes in one thread's working arrays
LANE_MULTIPLE = 4  # lanes are padded to a multiple of this (one AVX2 vector of doubles)


def linkwitz_riley(xover_freqs: float, btype: str, order: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Linkwitz-Riley filter: a Butterworth filter of order `order / 2` squared.

    Args:
        xover_freqs: -6 dB frequency as a fraction of the Nyquist frequency (0 < f < 1).
        btype: "low" or "high".
        order: order of the result (even).

    Returns:
        (b, a), each of length order + 1, a[0] == 1.
    """
    zeros, poles, gain = tf2zpk(*butter(order // 2, xover_freqs, btype=btype))
    return zpk2tf(np.concatenate((zeros, zeros)), np.concatenate((poles, poles)), gain**2)


def make_all_pass(
    b1: np.ndarray, a1: np.ndarray, b2: np.ndarray, a2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Transfer function of filters (b1, a1) and (b2, a2) in parallel, H1 + H2.

    On a Linkwitz-Riley low-/high-pass pair this is the all-pass compensating the phase of the
    bands that do not pass through that crossover.

    Returns:
        (b, a) over the product of the denominators, length len(a1) + len(a2) - 1.
    """
    zeros1, poles1, gain1 = tf2zpk(b1, a1)
    zeros2, poles2, gain2 = tf2zpk(b2, a2)
    numerator = (
        np.poly(np.concatenate((zeros1, poles2))) * gain1
        + np.poly(np.concatenate((zeros2, poles1))) * gain2
    )
    return numerator, np.poly(np.concatenate((poles1, poles2)))


def compute_coefficients(
    xover_freqs: np.ndarray, sample_rate: float = 44100, order: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Coefficients of the low-, high- and all-pass filters of every crossover frequency.

    Args:
        xover_freqs: (N,) crossover frequencies, Hz.
        sample_rate: Hz.
        order: Linkwitz-Riley order.

    Returns:
        bstore, astore: (order + 1, N, 2) numerators / denominators, [..., 0] low-pass,
            [..., 1] high-pass;
        bstore_phi, astore_phi: (2 order + 1, N) all-pass numerators / denominators.
    """
    xover_freqs = np.asarray(xover_freqs)
    n_xover = xover_freqs.shape[0]
    bstore = np.zeros((order + 1, n_xover, 2))
    astore = np.zeros((order + 1, n_xover, 2))
    bstore_phi = np.zeros((2 * order + 1, n_xover))
    astore_phi = np.zeros((2 * order + 1, n_xover))
    for i, frequency in enumerate(xover_freqs):
        for column, btype in enumerate(("low", "high")):
            bstore[:, i, column], astore[:, i, column] = linkwitz_riley(
                frequency / (sample_rate / 2), btype, order
            )
        bstore_phi[:, i], astore_phi[:, i] = make_all_pass(
            bstore[:, i, 0], astore[:, i, 0], bstore[:, i, 1], astore[:, i, 1]
        )
    return bstore, astore, bstore_phi, astore_phi


def check_crossover_frequencies(frequencies: np.ndarray, sample_rate: float) -> None:
    """Raise ValueError unless the frequencies are finite, > 0, increasing and below Nyquist."""
    if frequencies.ndim != 1 or frequencies.size == 0:
        raise ValueError(
            "crossover frequencies must be a non-empty 1-D list of Hz,"
            f" got shape {frequencies.shape}"
        )
    if not np.all(np.isfinite(frequencies)) or np.any(frequencies <= 0):
        raise ValueError(f"crossover frequencies must be finite and > 0 Hz, got {frequencies}")
    if np.any(np.diff(frequencies) <= 0):
        raise ValueError(f"crossover frequencies must be strictly increasing, got {frequencies}")
    if frequencies[-1] >= sample_rate / 2:
        raise ValueError(
            f"crossover frequencies must be below the Nyquist frequency {sample_rate / 2} Hz,"
            f" got {frequencies[-1]} Hz"
        )


@numba.njit(cache=True, parallel=True)
def filter_lanes(
    signal: np.ndarray,
    lane_row: np.ndarray,
    b: np.ndarray,
    a: np.ndarray,
    state: np.ndarray,
    out: np.ndarray,
    lanes_per_block: int,
) -> None:
    """Run a chain of direct form II transposed filters on each lane, as `lfilter` computes it.

    The lanes are split into blocks of `lanes_per_block` (at most LANE_BLOCK), run by numba's
    threads in parallel.

    Args:
        signal: (rows, samples) input.
        lane_row: (lanes,) the row of `signal` each lane filters.
        b, a: (stages, MAX_ORDER + 1, lanes) coefficients of each lane's chain, a[:, 0] == 1.
        state: (stages, MAX_ORDER, lanes) filter states z, updated in place (zeros to start).
        out: (samples, lanes kept) output of the last stage of each lane; lanes beyond its
            width (the padding) are not kept.
    """
    n_stages, _, n_lanes = b.shape
    for block in numba.prange(-(-n_lanes // lanes_per_block)):  # blocks of lanes in parallel
        first = block * lanes_per_block
        lanes = min(lanes_per_block, n_lanes - first)
        # working copies of fixed width: the lane loops below then compile to vector code
        bw = np.zeros((n_stages, MAX_ORDER + 1, LANE_BLOCK))
        aw = np.zeros((n_stages, MAX_ORDER + 1, LANE_BLOCK))
        z = np.zeros((n_stages, MAX_ORDER, LANE_BLOCK))
        value = np.zeros(LANE_BLOCK)  # the sample passed from stage to stage
        for s in range(n_stages):
            for lane in range(lanes):
                for i in range(MAX_ORDER + 1):
                    bw[s, i, lane] = b[s, i, first + lane]
                    aw[s, i, lane] = a[s, i, first + lane]
                for i in range(MAX_ORDER):
                    z[s, i, lane] = state[s, i, first + lane]
        for n in range(signal.shape[1]):
            for lane in range(lanes):
                value[lane] = signal[lane_row[first + lane], n]
            for s in range(n_stages):
                for lane in range(lanes):
                    x = value[lane]
                    y = z[s, 0, lane] + bw[s, 0, lane] * x
                    for i in range(MAX_ORDER - 1):
                        z[s, i, lane] = (
                            z[s, i + 1, lane] + bw[s, i + 1, lane] * x - aw[s, i + 1, lane] * y
                        )
                    z[s, MAX_ORDER - 1, lane] = (
                        bw[s, MAX_ORDER, lane] * x - aw[s, MAX_ORDER, lane] * y
                    )
                    value[lane] = y
            for lane in range(min(lanes, out.shape[1] - first)):
                out[n, first + lane] = value[lane]
        for s in range(n_stages):
            for lane in range(lanes):
                for i in range(MAX_ORDER):
                    state[s, i, first + lane] = z[s, i, lane]


def padded_lanes(n_lanes: int) -> int:
    """`n_lanes` rounded up to a multiple of LANE_MULTIPLE."""
    return -(-n_lanes // LANE_MULTIPLE) * LANE_MULTIPLE


class Crossover:
    """Split a signal into len(freq_crossover) + 1 phase-aligned bands (pyClarity 0.9.0 API).

    Example:
        >>> xover = Crossover([500.0, 2000.0], sample_rate=44100)
        >>> xover(np.random.randn(2, 44100)).shape
        (3, 2, 44100)
    """

    FILTER_ORDER = 4  # Linkwitz-Riley order; the all-passes have twice this order

    def __init__(
        self, freq_crossover: list | np.ndarray | float, sample_rate: float = 44100
    ) -> None:
        """
        Args:
            freq_crossover: crossover frequencies, Hz, strictly increasing, below Nyquist.
            sample_rate: Hz.
        """
        self.sample_rate = check_sample_rate(sample_rate)
        self.xover_freqs = np.atleast_1d(np.asarray(freq_crossover, dtype=float))
        check_crossover_frequencies(self.xover_freqs, self.sample_rate)
        self.bstore, self.astore, self.bstore_phi, self.astore_phi = compute_coefficients(
            self.xover_freqs, self.sample_rate, self.FILTER_ORDER
        )
        self._chain_b, self._chain_a = self._chain_coefficients()

    @property
    def num_bands(self) -> int:
        """Number of output bands, len(xover_freqs) + 1."""
        return self.xover_freqs.size + 1

    def band_filters(self, band: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """The (b, a) filters of `band` in the order they are applied: its low-pass, the
        high-passes of the lower crossovers, the all-passes of the higher crossovers."""
        n_xover = self.xover_freqs.size
        chain = [(self.bstore[:, band, 0], self.astore[:, band, 0])] if band < n_xover else []
        chain += [(self.bstore[:, m, 1], self.astore[:, m, 1]) for m in range(band)]
        chain += [(self.bstore_phi[:, m], self.astore_phi[:, m]) for m in range(band + 1, n_xover)]
        return chain

    def _chain_coefficients(self) -> tuple[np.ndarray, np.ndarray]:
        """(stages, MAX_ORDER + 1, bands) b and a of every band's chain, padded with identity
        filters to the longest chain and with zeros to MAX_ORDER."""
        chains = [self.band_filters(band) for band in range(self.num_bands)]
        n_stages = max(len(chain) for chain in chains)
        b = np.zeros((n_stages, MAX_ORDER + 1, self.num_bands))
        a = np.zeros((n_stages, MAX_ORDER + 1, self.num_bands))
        b[:, 0, :] = a[:, 0, :] = 1.0  # identity filter
        for band, chain in enumerate(chains):
            for stage, (b_stage, a_stage) in enumerate(chain):
                b[stage, :, band] = 0.0
                a[stage, :, band] = 0.0
                b[stage, : b_stage.size, band] = b_stage / a_stage[0]
                a[stage, : a_stage.size, band] = a_stage / a_stage[0]
        return b, a

    def new_state(self, n_channels: int) -> np.ndarray:
        """Zero filter state for `split_rows` of `n_channels` rows."""
        return np.zeros(
            (self._chain_b.shape[0], MAX_ORDER, padded_lanes(self.num_bands * n_channels))
        )

    def split_rows(self, rows: np.ndarray, state: np.ndarray) -> np.ndarray:
        """Bands of a block of (channels, samples) rows, continuing from `state` (updated).

        Returns:
            (samples, bands, channels) float64, time first (the layout of the compressors).
        """
        n_channels, n_samples = rows.shape
        n_lanes = self.num_bands * n_channels  # lane = band * n_channels + channel
        n_padded = padded_lanes(n_lanes)
        lane_row = np.zeros(n_padded, dtype=np.int64)
        lane_row[:n_lanes] = np.tile(np.arange(n_channels), self.num_bands)
        b = np.zeros((self._chain_b.shape[0], MAX_ORDER + 1, n_padded))
        a = np.zeros_like(b)
        b[:, 0] = a[:, 0] = 1.0  # padding lanes: identity filters
        b[..., :n_lanes] = np.repeat(self._chain_b, n_channels, axis=2)
        a[..., :n_lanes] = np.repeat(self._chain_a, n_channels, axis=2)
        bands = np.empty((n_samples, n_lanes))
        # one block of lanes per numba thread, each a whole number of vectors
        lanes_per_block = min(padded_lanes(-(-n_padded // numba.get_num_threads())), LANE_BLOCK)
        filter_lanes(np.ascontiguousarray(rows), lane_row, b, a, state, bands, lanes_per_block)
        return bands.reshape(n_samples, self.num_bands, n_channels)

    def __call__(self, signal: np.ndarray, axis: int = -1) -> np.ndarray:
        """Split `signal` along `axis` (time).

        Args:
            signal: any shape, e.g. (samples,) or (channels, samples).
            axis: time axis.

        Returns:
            (bands, *signal.shape) array of float64.
        """
        signal = np.asarray(signal, dtype=float)
        check_finite_signal(signal)
        time_last = np.moveaxis(signal, axis, -1)
        n_rows = int(np.prod(time_last.shape[:-1]))
        rows = np.ascontiguousarray(time_last.reshape(n_rows, time_last.shape[-1]))
        bands = self.split_rows(rows, self.new_state(rows.shape[0])).transpose(1, 2, 0)
        bands = np.ascontiguousarray(bands).reshape((self.num_bands, *time_last.shape))
        return np.moveaxis(bands, -1, axis if axis < 0 else axis + 1)

    def xover_component(
        self, signal: np.ndarray, filter_idx: int, len_xover_freqs: int, axis: int = -1
    ) -> np.ndarray:
        """Band `filter_idx` of `signal` alone (pyClarity 0.9.0 API).

        Args:
            signal: any shape.
            filter_idx: band index, 0 .. len(xover_freqs).
            len_xover_freqs: number of crossover frequencies (must be len(xover_freqs)).
            axis: time axis.
        """
        if len_xover_freqs != self.xover_freqs.size:
            raise ValueError(
                f"len_xover_freqs must be {self.xover_freqs.size}, got {len_xover_freqs}"
            )
        if not 0 <= filter_idx < self.num_bands:
            raise ValueError(f"filter_idx must be in 0..{self.num_bands - 1}, got {filter_idx}")
        return self(signal, axis=axis)[filter_idx]

    def plot_filter(self) -> None:
        """Plot the magnitude response of each band and of their sum (impulse of 65501
        samples), to check the crossover by eye."""
        import matplotlib.pyplot as plt

        impulse = np.zeros(65501)
        impulse[0] = 1.0
        bands = self(impulse)
        frequencies = np.linspace(0, self.sample_rate, impulse.size)
        plt.figure()
        for response in (*bands, bands.sum(axis=0)):
            magnitude = np.abs(np.fft.fft(response))
            plt.plot(frequencies, 20 * np.log10(np.maximum(magnitude, 1e-300)))
        plt.xlim([-10, int(self.sample_rate / 2)])
        plt.ylim([-250, 10])
        plt.show()

    def __str__(self) -> str:
        return f"Crossover frequencies: {[round(float(f), 4) for f in self.xover_freqs]} Hz"
