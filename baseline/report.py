"""Write the listening report <path.exp_folder>/report.html of an evaluated experiment.

    python baseline/report.py [path.exp_folder=...] [+ the overrides evaluate.py was run with]

evaluate.py writes it after scoring (evaluate.report=true); this script writes it again, e.g.
after the bound runs (passthrough, oracle) have been scored.
"""

import hydra
from omegaconf import DictConfig

from clarity.cad2.report import run_report


@hydra.main(config_path="..", config_name="config", version_base=None)
def report(config: DictConfig) -> None:
    """Write the report of `path.exp_folder`."""
    print(f"Listening report: {run_report(config)}")


if __name__ == "__main__":
    report()
