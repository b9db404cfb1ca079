"""Scenes of the demo dataset: a song, the gains a listener asks for, and who listens.

Gains follow the CAD2 Task 2 rule (challenge data page, "Gains"): for a song of N sources, 1 to N-1
of them (chosen at random) get a gain drawn from {-10, -6, -3, 3, 6, 10} dB and the others 0 dB.
Scene ids count from S10001 in the training split and S50001 in the validation split, as in the
challenge; every scene has its own gain entry ``gain_0001``, ``gain_0002``, ...
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

GAIN_CHOICES_DB = (-10.0, -6.0, -3.0, 3.0, 6.0, 10.0)
FIRST_SCENE_NUMBER = {"train": 10001, "valid": 50001}


def draw_gains(num_sources: int, rng: np.random.Generator) -> dict[str, float]:
    """Gains ``{"source_1": dB, ...}`` for one scene of a song with ``num_sources`` sources.

    Raises:
        ValueError: if there are fewer than 2 sources.
    """
    if num_sources < 2:
        raise ValueError(
            f"num_sources: expected at least 2 sources to rebalance, got {num_sources}"
        )
    gains = np.zeros(num_sources)
    altered = rng.choice(num_sources, size=int(rng.integers(1, num_sources)), replace=False)
    gains[altered] = rng.choice(GAIN_CHOICES_DB, size=altered.size)
    return {f"source_{index}": float(gain) for index, gain in enumerate(gains, 1)}


def make_scenes(
    split: str,
    songs: Sequence[tuple[str, int]],
    scenes_per_song: int,
    listener_ids: Sequence[str],
    listeners_per_scene: int,
    first_gain: int,
    rng: np.random.Generator,
) -> tuple[dict, dict, dict]:
    """Scenes, their gains and their listeners for one split.

    Args:
        split: "train" or "valid" (sets the first scene id).
        songs: ``(song name, number of sources)`` in file order.
        scenes_per_song: scenes (gain settings) per song.
        listener_ids: listeners of the split.
        listeners_per_scene: distinct listeners per scene (at most ``len(listener_ids)``).
        first_gain: number of the first gain id (``gain_0001`` is 1), so the splits share one gains
        file. rng: seeded generator.

    Returns:
        ``(scenes, gains, scene_listeners)`` in the ``scenes.<split>.json``, ``gains.json`` and
        ``scene_listeners.<split>.json`` formats.
    """
    if split not in FIRST_SCENE_NUMBER:
        raise ValueError(f"split {split!r}: expected one of {sorted(FIRST_SCENE_NUMBER)}")
    if not 1 <= listeners_per_scene <= len(listener_ids):
        raise ValueError(
            f"listeners_per_scene: expected 1..{len(listener_ids)}, got {listeners_per_scene}"
        )
    scenes, gains, scene_listeners = {}, {}, {}
    scene_number, gain_number = FIRST_SCENE_NUMBER[split], first_gain
    # listeners are dealt in turn from a shuffled list, so each one hears about as many scenes
    order = list(rng.permutation(len(listener_ids)))
    dealt = 0
    for song, num_sources in songs:
        for _ in range(scenes_per_song):
            scene_id, gain_id = f"S{scene_number}", f"gain_{gain_number:04d}"
            gains[gain_id] = draw_gains(num_sources, rng)
            scenes[scene_id] = {"music": song, "gain": gain_id}
            chosen = [order[(dealt + k) % len(order)] for k in range(listeners_per_scene)]
            dealt += listeners_per_scene
            scene_listeners[scene_id] = [listener_ids[k] for k in chosen]
            scene_number += 1
            gain_number += 1
    return scenes, gains, scene_listeners
