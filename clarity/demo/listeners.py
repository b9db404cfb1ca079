"""Demo listeners: audiograms from standard shapes, and compressor settings fitted to them.

Audiograms. Each listener starts from one of the standard audiograms of N. Bisgaard, M. S. M. G.
Vlaming and M. Dahlquist, "Standard audiograms for the IEC 60118-15 measurement procedure", Trends
in Amplification 14(2), 2010: flat/moderately sloping N1 (very mild) to N5 (severe), and steeply
sloping S1 to S3. The shape is read at the Clarity audiogram frequencies (250 ... 8000 Hz; 8 kHz
holds the 6 kHz value, which Bisgaard et al. do not tabulate), moved by a seeded whole-audiogram
offset and per-frequency deviations (s.d. 3 dB each, independently per ear), rounded to the 5 dB
steps of clinical audiometry and clipped to [0, 110] dB HL.

Compressor fitting rule (one per ear and band of the 6-band compressor whose crossovers are
353.55, 707.11, 1414.21, 2828.43 and 5656.85 Hz, i.e. bands centred on 250, 500, ..., 8000 Hz):

* hearing loss ``HL`` at the band centre, interpolated linearly on a log-frequency axis of the
  audiogram;
* prescribed gain ``G = min(HL / 2, 40)`` dB: the half-gain rule (O. Lybarger, 1944; the basis of
  the NAL family of prescriptions), at most 40 dB;
* compression ratio ``CR = D / (D - G)`` with ``D = 60`` dB: soft sounds at the compressor threshold
  get the full gain ``G``, and the gain falls to 0 dB for sounds ``D`` dB above threshold (about 100
  dB SPL), where loudness recruitment makes the impaired ear hear loud sounds normally. ``CR``
  ranges from 1 (no loss) to 3 (``G`` = 40 dB);
* make-up gain ``min(G, 24)`` dB: 24 dB is the largest make-up gain the challenge's compressor
  accepts without a warning, and it leaves headroom for music at the dataset's -40 LUFS level.

So a worse hearing loss in a band never gets less gain or compression, and gets more of both until
the caps (make-up gain for losses above 48 dB HL, ratio above 80 dB HL).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CLARITY_FREQUENCIES = (250, 500, 1000, 2000, 3000, 4000, 6000, 8000)  # Hz, audiogram_cfs

BISGAARD_FREQUENCIES = (250, 375, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000)  # Hz
BISGAARD_AUDIOGRAMS = {  # dB HL at BISGAARD_FREQUENCIES
    "N1": (10, 10, 10, 10, 10, 10, 15, 20, 30, 40),
    "N2": (20, 20, 20, 22.5, 25, 30, 35, 40, 45, 50),
    "N3": (35, 35, 35, 35, 40, 45, 50, 55, 60, 65),
    "N4": (55, 55, 55, 55, 55, 60, 65, 70, 75, 80),
    "N5": (65, 67.5, 70, 72.5, 75, 80, 80, 80, 80, 80),
    "S1": (10, 10, 10, 10, 10, 10, 15, 30, 55, 70),
    "S2": (20, 20, 20, 22.5, 25, 35, 55, 75, 95, 95),
    "S3": (30, 30, 35, 47.5, 60, 70, 75, 80, 80, 85),
}

CROSSOVER_FREQUENCIES = (
    353.55,
    707.11,
    1414.21,
    2828.43,
    5656.85,
)  # Hz, of the recipe's compressor
HALF_GAIN_CAP_DB = 40.0
MAKEUP_GAIN_CAP_DB = 24.0
COMPRESSION_RANGE_DB = 60.0
AUDIOGRAM_STEP_DB = 5.0
MAX_LEVEL_DB = 110.0

# WHO grades (World report on hearing, 2021) of the better ear's mean loss at 0.5, 1, 2 and 4 kHz
SEVERITY_GRADES = (
    (20.0, "no loss"),
    (35.0, "mild"),
    (50.0, "moderate"),
    (65.0, "moderately severe"),
    (80.0, "severe"),
    (np.inf, "profound"),
)


def band_centres(crossovers: Sequence[float] = CROSSOVER_FREQUENCIES) -> np.ndarray:
    """Centre frequencies in Hz of the compressor bands, shape ``(len(crossovers) + 1,)``.

    Inner bands are centred on the geometric mean of their two crossovers; the outer bands half an
    octave (a factor sqrt 2) below the first and above the last crossover.
    """
    edges = np.asarray(crossovers, dtype=float)
    inner = np.sqrt(edges[:-1] * edges[1:])
    return np.concatenate([[edges[0] / np.sqrt(2.0)], inner, [edges[-1] * np.sqrt(2.0)]])


def standard_audiogram(shape: str) -> np.ndarray:
    """Hearing levels (dB HL) of a Bisgaard audiogram at ``CLARITY_FREQUENCIES``, shape ``(8,)``.

    Raises:
        ValueError: for an unknown shape name.
    """
    if shape not in BISGAARD_AUDIOGRAMS:
        raise ValueError(
            f"audiogram shape {shape!r}: expected one of {sorted(BISGAARD_AUDIOGRAMS)}"
        )
    return np.interp(
        np.log(CLARITY_FREQUENCIES), np.log(BISGAARD_FREQUENCIES), BISGAARD_AUDIOGRAMS[shape]
    )


def perturbed_audiogram(shape: str, rng: np.random.Generator, spread_db: float = 3.0) -> np.ndarray:
    """One ear: the standard shape moved by seeded deviations, in 5 dB steps, shape ``(8,)``."""
    levels = standard_audiogram(shape)
    levels = levels + rng.normal(0.0, spread_db) + rng.normal(0.0, spread_db, levels.shape)
    stepped = AUDIOGRAM_STEP_DB * np.round(levels / AUDIOGRAM_STEP_DB)
    return np.clip(stepped, 0.0, MAX_LEVEL_DB)


def make_listeners(
    listener_ids: Sequence[str], shapes: Sequence[str], rng: np.random.Generator
) -> dict[str, dict]:
    """Listeners in the Clarity listener JSON format.

    Args:
        listener_ids: e.g. ``["L5001", "L5002"]``.
        shapes: Bisgaard shape of each listener (same length as ``listener_ids``).
        rng: seeded generator for the per-ear deviations.

    Returns:
        ``{listener_id: {"name", "audiogram_cfs", "audiogram_levels_l", "audiogram_levels_r"}}``,
        levels in dB HL.
    """
    if len(listener_ids) != len(shapes):
        raise ValueError(
            f"shapes: expected one per listener ({len(listener_ids)}), got {len(shapes)}"
        )
    listeners = {}
    for listener_id, shape in zip(listener_ids, shapes, strict=True):
        left = perturbed_audiogram(shape, rng)
        right = perturbed_audiogram(shape, rng)
        listeners[listener_id] = {
            "name": listener_id,
            "audiogram_cfs": list(CLARITY_FREQUENCIES),
            "audiogram_levels_l": [float(x) for x in left],
            "audiogram_levels_r": [float(x) for x in right],
        }
    return listeners


def fit_compressor(
    levels: Sequence[float],
    frequencies: Sequence[float] = CLARITY_FREQUENCIES,
    crossovers: Sequence[float] = CROSSOVER_FREQUENCIES,
) -> tuple[np.ndarray, np.ndarray]:
    """Compression ratios and make-up gains (dB) of one ear by the rule in the module docstring.

    Args:
        levels: hearing levels in dB HL at ``frequencies`` (Hz).
        frequencies: audiogram frequencies in Hz, increasing.
        crossovers: compressor crossover frequencies in Hz.

    Returns:
        ``(ratios, gains)``, each of shape ``(len(crossovers) + 1,)``.
    """
    levels = np.asarray(levels, dtype=float)
    frequencies = np.asarray(frequencies, dtype=float)
    if levels.shape != frequencies.shape:
        raise ValueError(
            f"audiogram levels: expected one per frequency ({frequencies.shape[0]}), "
            f"got {levels.shape}"
        )
    loss = np.interp(np.log(band_centres(crossovers)), np.log(frequencies), levels)
    prescribed = np.minimum(np.maximum(loss, 0.0) / 2.0, HALF_GAIN_CAP_DB)
    ratios = COMPRESSION_RANGE_DB / (COMPRESSION_RANGE_DB - prescribed)
    return np.round(ratios, 2), np.round(np.minimum(prescribed, MAKEUP_GAIN_CAP_DB), 1)


def compressor_params(listeners: dict[str, dict]) -> dict[str, dict]:
    """Per-listener compressor settings in the CAD2 ``compressor_params.<split>.json`` format.

    Returns:
        ``{listener_id: {"frequencies", "cr_l", "cr_r", "gain_l", "gain_r"}}``: the band centres
        (Hz) and six values each (gains in dB), as in the challenge's files.
    """
    centres = [float(round(f)) for f in band_centres()]
    params = {}
    for listener_id, listener in listeners.items():
        cfs = listener["audiogram_cfs"]
        ratio_l, gain_l = fit_compressor(listener["audiogram_levels_l"], cfs)
        ratio_r, gain_r = fit_compressor(listener["audiogram_levels_r"], cfs)
        params[listener_id] = {
            "frequencies": centres,
            "cr_l": ratio_l.tolist(),
            "cr_r": ratio_r.tolist(),
            "gain_l": gain_l.tolist(),
            "gain_r": gain_r.tolist(),
        }
    return params


def severity(listener: dict) -> str:
    """WHO grade of hearing loss of the better ear (4-frequency average at 0.5, 1, 2 and 4 kHz)."""
    cfs = np.log(listener["audiogram_cfs"])
    probe = np.log([500.0, 1000.0, 2000.0, 4000.0])
    better = min(
        float(np.mean(np.interp(probe, cfs, listener[key])))
        for key in ("audiogram_levels_l", "audiogram_levels_r")
    )
    return next(grade for limit, grade in SEVERITY_GRADES if better < limit)
