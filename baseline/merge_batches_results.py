"""Join the batch score files scores_<b>-<N>.csv of an experiment into scores.csv.

    python baseline/merge_batches_results.py evaluate.batch_size=N [path.exp_folder=...]
"""

import hydra
from omegaconf import DictConfig

from clarity.cad2.scores import mean_scores, merge_batch_scores


@hydra.main(config_path="..", config_name="config", version_base=None)
def merge_batches(config: DictConfig) -> None:
    """Merge the `evaluate.batch_size` batch files found in `path.exp_folder`."""
    merged = merge_batch_scores(config.path.exp_folder, config.evaluate.batch_size)
    print(f"Merged into {merged}; mean HAAQI {mean_scores(merged)['avg_haaqi']:.4f}")


if __name__ == "__main__":
    merge_batches()
