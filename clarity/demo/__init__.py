"""The embedded demo: a CAD2 Task 2 dataset rendered from scores, its listeners and models.

``SHIPPED_MODELS`` is the folder of the demo separation models that come with the package
(``ConvTasNet_<Instrument>_NonCausal/`` checkpoints and their ``demo_models.json`` manifest,
see :mod:`clarity.demo.models`), the default ``separator.checkpoint_dir`` of ``config.yaml``.
"""

from pathlib import Path

SHIPPED_MODELS = Path(__file__).resolve().parent / "pretrained"
