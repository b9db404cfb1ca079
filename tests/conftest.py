"""Shared fixtures: a miniature CAD2 dataset, tiny random-weight checkpoints, recipe runners."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from clarity.cad2.testing import write_mini_dataset

REPO_ROOT = Path(__file__).resolve().parent.parent
MINI_INSTRUMENTS = ("Cello", "Flute", "Violin")
TINY_CONVTASNET = {"N": 16, "L": 20, "B": 8, "H": 16, "P": 3, "X": 2, "R": 1, "C": 2}


@pytest.fixture
def mini_dataset(tmp_path: Path) -> Path:
    """Root of a fresh miniature dataset (2 songs, 3 instruments, 2 listeners, 3 s)."""
    return write_mini_dataset(tmp_path / "cad2")


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of `ConvTasNet_<Instrument>_NonCausal/` tiny random-weight checkpoints."""
    import torch

    from clarity.separation.convtasnet import ConvTasNetStereo

    folder = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    for instrument in MINI_INSTRUMENTS:
        model = ConvTasNetStereo(**TINY_CONVTASNET, audio_channels=2, samplerate=44100)
        model.save_pretrained(folder / f"ConvTasNet_{instrument}_NonCausal")
    return folder


def _recipe_overrides(
    root: Path, exp_folder: Path, separator: str, *extra: str, checkpoint_dir: Path | None = None
) -> list[str]:
    overrides = [
        f"path.root={root}",
        f"path.exp_folder={exp_folder}",
        f"separator.type={separator}",
        f"separator.checkpoint_dir={checkpoint_dir if checkpoint_dir else 'null'}",
        "separator.device=cpu",
    ]
    return [*overrides, *extra]


@pytest.fixture
def recipe_overrides() -> Callable[..., list[str]]:
    """`(root, exp_folder, separator, *extra, checkpoint_dir=None)` -> command-line overrides
    pointing the recipe at a dataset, an experiment folder and a separator."""
    return _recipe_overrides


@pytest.fixture
def recipe_config() -> Callable[..., DictConfig]:
    """Compose the repository's config.yaml with overrides, as the scripts would see it."""

    def make(overrides: list[str]) -> DictConfig:
        with initialize_config_dir(config_dir=str(REPO_ROOT), version_base=None):
            return compose(config_name="config", overrides=overrides)

    return make


def _run_script(
    script: str, arguments: list[str], timeout: float = 300
) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / script), *arguments],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def run_script() -> Callable[..., subprocess.CompletedProcess]:
    """`(script, arguments, timeout=300)`: run a script (path relative to the repository root)
    in a subprocess from the repository root; returns the completed process."""
    return _run_script


_LOCK_HOLDER = (
    "import sys, time\n"
    "from clarity.utils.file_lock import exclusive_lock\n"
    "with exclusive_lock(sys.argv[1]):\n"
    "    print('locked', flush=True)\n"
    "    time.sleep(120)\n"
)


@pytest.fixture
def lock_holder() -> Callable[[Path], contextlib.AbstractContextManager[subprocess.Popen]]:
    """`with lock_holder(path) as process:` another process holds the lock of `path` inside the
    block (it is killed at the end)."""

    @contextlib.contextmanager
    def hold(path: Path):
        process = subprocess.Popen(
            [sys.executable, "-c", _LOCK_HOLDER, str(path)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert process.stdout.readline().strip() == "locked"
            yield process
        finally:
            process.kill()
            process.wait()
            process.stdout.close()

    return hold
