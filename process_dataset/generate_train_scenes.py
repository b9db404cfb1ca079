"""Generate training scenes and their listeners from gains_meta.json and the listeners file.

    python process_dataset/generate_train_scenes.py path.root=/data/cadenza_data/cad2/task2 \
        gains_per_track=4 listener_per_scene=2

Writes path.scene_metadata_file and path.scene_listeners_file (see clarity.cad2.train_scenes).
"""

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig

from clarity.cad2.train_scenes import generate_scene_listeners, generate_scenes
from clarity.utils.flac_encoder import write_atomically
from clarity.utils.json_files import read_json


def write_json(path: str, content: dict) -> None:
    """Write indented JSON through a temporary file."""
    text = json.dumps(content, indent=4)
    write_atomically(Path(path), lambda temporary: temporary.write_text(text, encoding="utf-8"))


@hydra.main(config_path=".", config_name="config", version_base=None)
def generate_train_scenes(config: DictConfig) -> None:
    """Write the training scenes and scene-listener pairs."""
    scenes = generate_scenes(
        read_json(config.path.music_metadata, "music"),
        read_json(config.path.gain_metadata, "gains meta"),
        config.gains_per_track,
        config.seed_scene_generation,
    )
    write_json(config.path.scene_metadata_file, scenes)
    listeners = list(read_json(config.path.listeners_file, "listeners"))
    write_json(
        config.path.scene_listeners_file,
        generate_scene_listeners(list(scenes), listeners, config.listener_per_scene),
    )
    print(f"{len(scenes)} scenes written to {config.path.scene_metadata_file}")


if __name__ == "__main__":
    generate_train_scenes()
