"""Generate training scenes and scene-listener pairs, as the challenge's generator does.

Scenes are numbered from S10001 in song order; each song gets `gains_per_track` scenes whose
gain id is drawn uniformly from the group of `gains_meta.json` for its number of sources
(capped at 5). The draws use NumPy's legacy generator seeded with
`seed_from_text(seed_scene_generation)`; the listeners (`listener_per_scene` per scene, drawn
with replacement) use a second generator seeded with `seed_from_text("Cadenza2-scene")`. With
the same inputs and seed string the output matches the challenge's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from clarity.cad2.seeding import seed_from_text

FIRST_SCENE_NUMBER = 10001
MAX_SOURCES_GROUP = 5
LISTENER_SEED_TEXT = "Cadenza2-scene"


def generate_scenes(
    music: Mapping[str, Mapping[str, Any]],
    gains_meta: Mapping[str, Mapping[str, Any]],
    gains_per_track: int,
    seed_text: str,
) -> dict[str, dict[str, str]]:
    """Scene id -> {"music": song, "gain": gain id}.

    Args:
        music: `music.train.json` content (each song lists its sources and its mixture).
        gains_meta: `gains_meta.json` content: number of sources (as text) -> {gain id: ...}.
        gains_per_track: scenes per song.
        seed_text: text the generator's seed is derived from.

    Raises:
        ValueError: `gains_meta` has no group for a song's number of sources.
    """
    rng = np.random.RandomState(seed_from_text(seed_text))
    scenes = {}
    number = FIRST_SCENE_NUMBER
    for song, entries in music.items():
        group = str(min(MAX_SOURCES_GROUP, len(entries) - 1))
        if group not in gains_meta:
            raise ValueError(f"gains_meta has no gains for {group} sources (song {song!r})")
        gain_ids = list(gains_meta[group].keys())
        for _ in range(int(gains_per_track)):
            scenes[f"S{number}"] = {"music": song, "gain": str(rng.choice(gain_ids))}
            number += 1
    return scenes


def generate_scene_listeners(
    scene_ids: list[str], listener_ids: list[str], listener_per_scene: int
) -> dict[str, list[str]]:
    """Scene id -> `listener_per_scene` listener ids drawn with replacement."""
    if not listener_ids:
        raise ValueError("no listeners to draw from")
    rng = np.random.RandomState(seed_from_text(LISTENER_SEED_TEXT))
    return {
        scene: [str(listener) for listener in rng.choice(listener_ids, int(listener_per_scene))]
        for scene in scene_ids
    }
