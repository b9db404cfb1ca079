"""What a fresh evaluate process pays before its first score: imports, and no numba compiling
once a first run has filled the cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

# Heavy packages evaluate does not need unless asked to (plot, ConvTasNet, multirun launchers).
NOT_FOR_EVALUATE = ("torch", "matplotlib", "pandas", "submitit", "joblib")

IMPORTS = (
    "import json, runpy, sys\n"
    "runpy.run_path(sys.argv[1])\n"  # the script's imports; __main__ is not run
    "print(json.dumps(sorted(sys.modules)))\n"
)


def loaded_modules(script: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", IMPORTS, str(REPO_ROOT / script)],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=120,
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


@pytest.mark.parametrize("script", ["baseline/evaluate.py", "baseline/enhance.py"])
def test_scripts_do_not_import_what_they_may_not_use(script):
    modules = loaded_modules(script)
    assert "clarity.cad2.runner" in modules  # the script's own imports did run
    heavy = sorted(m for m in modules if m.split(".")[0] in NOT_FOR_EVALUATE)
    assert heavy == []


# Runs evaluate on one pair in this process, then reports every numba dispatcher that missed
# the on-disk cache (compiled) in this process.
EVALUATE_AND_COUNT_COMPILES = """
import gc, json, sys
from hydra import compose, initialize_config_dir
import numba.core.dispatcher
from clarity.cad2.evaluate import run_evaluate

root, exp, repo = sys.argv[1:4]
overrides = [f"path.root={root}", f"path.exp_folder={exp}", "separator.type=oracle",
             "separator.checkpoint_dir=null",
             "overwrite=true", "evaluate.plot=false", "++evaluate.report=false",
             "evaluate.batch_size=3", "evaluate.batch=0"]
with initialize_config_dir(config_dir=repo, version_base=None):
    run_evaluate(compose(config_name="config", overrides=overrides))
compiled = sorted(
    f"{d.py_func.__module__}.{d.py_func.__qualname__}"
    for d in gc.get_objects()
    if isinstance(d, numba.core.dispatcher.Dispatcher) and sum(d._cache_misses.values())
)
print(json.dumps(compiled))
"""


@pytest.mark.slow
def test_a_second_process_compiles_no_kernel(tmp_path, recipe_overrides, run_script):
    from clarity.cad2.testing import write_mini_dataset

    root = write_mini_dataset(tmp_path / "cad2", duration=1.0)
    exp = tmp_path / "exp"
    enhanced = run_script("baseline/enhance.py", recipe_overrides(root, exp, "oracle"))
    assert enhanced.returncode == 0, enhanced.stderr[-2000:]
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}

    def compiled_kernels() -> list[str]:
        result = subprocess.run(
            [sys.executable, "-c", EVALUATE_AND_COUNT_COMPILES, str(root), str(exp),
             str(REPO_ROOT)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.splitlines()[-1])

    assert compiled_kernels() != []  # the first process, with an empty cache, compiles
    assert compiled_kernels() == []  # every kernel is cached (cache=True) for the next one
