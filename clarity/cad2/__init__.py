"""The CAD2 Task 2 recipe ("Rebalancing Classical Music") as small library pieces.

`metadata` loads and checks the challenge metadata, `remix` holds the gain, level and
compression steps, `separators` estimates the sources of a mixture, `enhance` and `evaluate`
are the two pipelines, `batching` and `runner` split and drive the work, and `zenodo` and
`train_scenes` prepare the dataset. The thin Hydra scripts live in `baseline/` and
`process_dataset/`. `experiment` places the outputs of a run; importing this package registers
its `cad2_exp_folder` resolver, which config.yaml uses.
"""

from clarity.cad2 import experiment  # noqa: F401
