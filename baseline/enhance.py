"""Enhance the CAD2 Task 2 scenes: separate, rebalance, remix, compress, save FLACs.

    python baseline/enhance.py path.root=/path/to/cadenza_data/cad2/task2

Configuration: the repository's config.yaml (see docs/recipe.md).
"""

import hydra
from omegaconf import DictConfig

from clarity.cad2.enhance import run_enhance


@hydra.main(config_path="..", config_name="config", version_base=None)
def enhance(config: DictConfig) -> None:
    """Enhance every scene-listener pair of the configured batch."""
    run_enhance(config)


if __name__ == "__main__":
    enhance()
