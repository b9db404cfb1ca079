"""Score the enhanced CAD2 Task 2 signals with HAAQI into <path.exp_folder>/scores.csv.

    python baseline/evaluate.py path.root=/path/to/cadenza_data/cad2/task2

Configuration: the repository's config.yaml (see docs/recipe.md).
"""

import hydra
from omegaconf import DictConfig

from clarity.cad2.evaluate import run_evaluate


@hydra.main(config_path="..", config_name="config", version_base=None)
def evaluate(config: DictConfig) -> None:
    """Score every scene-listener pair of the configured batch."""
    run_evaluate(config)


if __name__ == "__main__":
    evaluate()
