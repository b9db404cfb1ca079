"""Generate training scenes and their listeners from gains_meta.json and the listeners file.

    python process_dataset/generate_train_scenes.py path.root=/data/cadenza_data/cad2/task2 \
        gains_per_track=4 listener_per_scene=2

Writes path.scene_metadata_file and path.scene_listeners_file (see clarity.cad2.train_scenes).
An existing output file that this script did not write (a released metadata file) is not
replaced unless overwrite=true; both files are checked before either is written.
"""

import json

import hydra
from omegaconf import DictConfig

from clarity.cad2.train_scenes import generate_scene_listeners, generate_scenes
from clarity.utils.generated_files import check_replaceable, write_generated_text
from clarity.utils.json_files import read_json


@hydra.main(config_path=".", config_name="config", version_base=None)
def generate_train_scenes(config: DictConfig) -> None:
    """Write the training scenes and scene-listener pairs."""
    outputs = (config.path.scene_metadata_file, config.path.scene_listeners_file)
    check_replaceable(outputs, config.overwrite)
    scenes = generate_scenes(
        read_json(config.path.music_metadata, "music"),
        read_json(config.path.gain_metadata, "gains meta"),
        config.gains_per_track,
        config.seed_scene_generation,
    )
    listeners = list(read_json(config.path.listeners_file, "listeners"))
    scene_listeners = generate_scene_listeners(list(scenes), listeners, config.listener_per_scene)
    for path, content in zip(outputs, (scenes, scene_listeners), strict=True):
        write_generated_text(path, json.dumps(content, indent=4))
    print(f"{len(scenes)} scenes written to {config.path.scene_metadata_file}")


if __name__ == "__main__":
    generate_train_scenes()
