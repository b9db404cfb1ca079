"""Verify the batch score files scores_<b>-<N>.csv of an experiment and join them into scores.csv.

    python baseline/merge_batches_results.py evaluate.batch_size=N [path.exp_folder=...]
        [evaluate.allow_partial_merge=true]
"""

import hydra
from omegaconf import DictConfig

from clarity.cad2.merge import run_merge
from clarity.cad2.scores import mean_scores


@hydra.main(config_path="..", config_name="config", version_base=None)
def merge_batches(config: DictConfig) -> None:
    """Merge the `evaluate.batch_size` batch files found in `path.exp_folder`."""
    merged, missing = run_merge(config)
    partial = f" ({len(missing)} pair(s) missing)" if missing else ""
    print(f"Merged into {merged}{partial}; mean HAAQI {mean_scores(merged)['avg_haaqi']:.4f}")


if __name__ == "__main__":
    merge_batches()
