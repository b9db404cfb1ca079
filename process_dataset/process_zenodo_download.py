"""Prepare the CAD2 Task 2 dataset from the downloaded packages.

    python process_dataset/process_zenodo_download.py \
        path.zenodo_download_path=/downloads/cad2 path.root=/data/cadenza_data/cad2/task2

Unzips what is not unzipped yet, copies the training audio, cuts the validation segments and
copies the metadata; safe to run again (see clarity.cad2.zenodo).
"""

import hydra
from omegaconf import DictConfig

from clarity.cad2.zenodo import prepare_dataset


@hydra.main(config_path=".", config_name="config", version_base=None)
def process_zenodo_download(config: DictConfig) -> None:
    """Build `path.root` from the packages in `path.zenodo_download_path`."""
    prepare_dataset(
        config.path.zenodo_download_path,
        config.path.root,
        config.path.music_dir,
        config.path.metadata_dir,
    )


if __name__ == "__main__":
    process_zenodo_download()
