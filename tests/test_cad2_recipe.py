"""End-to-end runs of the CAD2 recipe on the miniature dataset."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from clarity.cad2 import enhance as enhance_module
from clarity.cad2.enhance import run_enhance
from clarity.cad2.evaluate import run_evaluate
from clarity.cad2.runner import FailedScenesError
from clarity.cad2.scores import SCORES_COLUMNS
from clarity.cad2.separators import PassthroughSeparator
from clarity.cad2.testing import SCENE_LISTENERS

PAIRS = [(scene, listener) for scene, listeners in SCENE_LISTENERS.items()
         for listener in listeners]


def enhanced_files(exp_folder):
    return sorted((exp_folder / "enhanced_signals").rglob("*.flac"))


def read_scores(path):
    return pd.read_csv(path).sort_values(["scene", "listener"]).reset_index(drop=True)


def test_oracle_scores_higher_than_passthrough(
    mini_dataset, tmp_path, recipe_overrides, recipe_config, run_script
):
    passthrough = recipe_config(
        recipe_overrides(mini_dataset, tmp_path / "exp" / "passthrough_noncausal", "passthrough")
    )
    run_enhance(passthrough)
    _, passthrough_scores = run_evaluate(passthrough)

    oracle_exp = tmp_path / "exp" / "oracle_noncausal"
    arguments = recipe_overrides(mini_dataset, oracle_exp, "oracle")
    for script in ("baseline/enhance.py", "baseline/evaluate.py"):
        result = run_script(script, arguments)
        assert result.returncode == 0, result.stderr[-3000:]
    assert "Mean HAAQI" in result.stdout
    # The plot of the oracle run, with the passthrough run as its lower bound.
    assert (oracle_exp / "scores.png").stat().st_size > 0

    files = enhanced_files(oracle_exp)
    assert [file.name for file in files] == [f"{scene}_{name}_remix.flac" for scene, name in PAIRS]
    assert {file.parent.name for file in files} == {"valid"}
    info = sf.info(str(files[0]))
    assert (info.samplerate, info.channels, info.subtype) == (32000, 2, "PCM_16")
    assert info.frames == 3 * 32000

    oracle = read_scores(oracle_exp / "scores.csv")
    baseline = read_scores(passthrough_scores)
    assert list(oracle.columns) == SCORES_COLUMNS
    assert list(zip(oracle.scene, oracle.listener, strict=True)) == PAIRS
    for scores in (oracle, baseline):
        values = scores[["left_haaqi", "right_haaqi", "avg_haaqi"]].to_numpy()
        assert np.all((values >= 0) & (values <= 1))
        np.testing.assert_allclose(scores.avg_haaqi, (scores.left_haaqi + scores.right_haaqi) / 2)
    assert oracle.avg_haaqi.mean() > baseline.avg_haaqi.mean() + 0.1
    assert np.all(oracle.avg_haaqi.to_numpy() > baseline.avg_haaqi.to_numpy())


def test_rerun_does_no_work_unless_overwrite(
    mini_dataset, tmp_path, recipe_overrides, recipe_config
):
    exp = tmp_path / "exp"
    config = recipe_config(recipe_overrides(mini_dataset, exp, "oracle"))
    assert len(run_enhance(config).processed) == 3
    stamps = {file: file.stat().st_mtime_ns for file in enhanced_files(exp)}
    _, scores = run_evaluate(config)
    scores_text = scores.read_text()

    again = run_enhance(config)
    assert (again.processed, len(again.skipped)) == ([], 3)
    assert {file: file.stat().st_mtime_ns for file in enhanced_files(exp)} == stamps
    again, _ = run_evaluate(config)
    assert (again.processed, len(again.skipped)) == ([], 3)
    assert scores.read_text() == scores_text

    overwrite = recipe_config(recipe_overrides(mini_dataset, exp, "oracle", "overwrite=true"))
    assert len(run_enhance(overwrite).processed) == 3
    again, _ = run_evaluate(overwrite)
    assert len(again.processed) == 3
    # Seeded HAAQI on the same signals gives the same rows.
    assert scores.read_text() == scores_text


def test_random_weight_convtasnet(mini_dataset, tmp_path, tiny_checkpoints, recipe_overrides,
                                  recipe_config):
    exp = tmp_path / "exp"
    config = recipe_config(
        recipe_overrides(mini_dataset, exp, "convtasnet", checkpoint_dir=tiny_checkpoints)
    )
    run_enhance(config)
    assert len(enhanced_files(exp)) == 3
    _, scores_file = run_evaluate(config)
    scores = read_scores(scores_file)
    assert len(scores) == 3
    values = scores[["left_haaqi", "right_haaqi"]].to_numpy()
    assert np.all((values >= 0) & (values <= 1))


def test_corrupt_mixture_fails_only_its_scene(mini_dataset, tmp_path, recipe_overrides, run_script):
    mixture = mini_dataset / "audio" / "valid" / "mini_trio_000" / "mixture.flac"
    data = bytearray(mixture.read_bytes())
    rng = np.random.default_rng(1)
    data[len(data) // 3 :] = rng.bytes(len(data) - len(data) // 3)
    mixture.write_bytes(bytes(data))

    exp = tmp_path / "exp"
    result = run_script("baseline/enhance.py", recipe_overrides(mini_dataset, exp, "passthrough"))
    assert result.returncode != 0
    assert "S50002" in result.stderr and "1 of 3 pair(s) failed" in result.stderr
    assert [file.name for file in enhanced_files(exp)] == [
        "S50001_L0001_remix.flac", "S50001_L0002_remix.flac"
    ]


def edit_json(path, edit):
    content = json.loads(path.read_text())
    edit(content)
    path.write_text(json.dumps(content))


def write_at_48k(path):
    signal, _ = sf.read(path)
    sf.write(path, signal, 48000, subtype="PCM_16")


BROKEN_INPUTS = {
    "root unset": ([], "path.root is not set", None),
    "root missing": ([], "does not exist", None),
    "unknown causality": (["separator.causality=semi"], "separator.causality", None),
    "undefined listener": (
        [], "listener 'L0009' is not defined",
        lambda root: edit_json(
            root / "metadata" / "scene_listeners.valid.json", lambda c: c["S50002"].append("L0009")
        ),
    ),
    "undefined gain": (
        [], "gain 'gain_0404'",
        lambda root: edit_json(
            root / "metadata" / "scenes.valid.json", lambda c: c["S50001"].update(gain="gain_0404")
        ),
    ),
    "undefined song": (
        [], "song 'no_such_song'",
        lambda root: edit_json(
            root / "metadata" / "scenes.valid.json",
            lambda c: c["S50002"].update(music="no_such_song"),
        ),
    ),
    "missing audio": (
        [], "audio file(s) not found",
        lambda root: (root / "audio" / "valid" / "mini_trio_000" / "Flute.flac").unlink(),
    ),
    "workers not a number": (
        ["evaluate.num_workers=abc"], "evaluate.num_workers must be an integer, got 'abc'", None
    ),
    "wrong sample rate": (
        [], "sample rate 48000 Hz, expected input_sample_rate=44100",
        lambda root: write_at_48k(root / "audio" / "valid" / "mini_trio_000" / "Cello.flac"),
    ),
}


@pytest.mark.parametrize("case", BROKEN_INPUTS)
@pytest.mark.parametrize("pipeline", [run_enhance, run_evaluate], ids=["enhance", "evaluate"])
def test_clear_errors_before_any_work(case, pipeline, mini_dataset, tmp_path, recipe_overrides,
                                      recipe_config):
    extra, message, damage = BROKEN_INPUTS[case]
    root = {"root unset": "null", "root missing": tmp_path / "nowhere"}.get(case, mini_dataset)
    if damage is not None:
        damage(mini_dataset)
    exp = tmp_path / "exp"
    config = recipe_config(recipe_overrides(root, exp, "oracle", *extra))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pipeline(config)
    assert not exp.exists()


def test_unknown_causality_script_exit_code(mini_dataset, tmp_path, recipe_overrides, run_script):
    result = run_script(
        "baseline/enhance.py",
        recipe_overrides(mini_dataset, tmp_path / "exp", "oracle", "separator.causality=semi"),
    )
    assert result.returncode != 0
    assert "separator.causality must be one of ['causal', 'noncausal']" in result.stderr


def test_batches_with_submitit_and_merge(mini_dataset, tmp_path, recipe_overrides, recipe_config,
                                         run_script):
    exp = tmp_path / "exp"
    single = recipe_config(recipe_overrides(mini_dataset, exp, "oracle"))
    run_enhance(single)
    _, whole = run_evaluate(single)
    expected = read_scores(whole)
    whole.unlink()

    arguments = recipe_overrides(
        mini_dataset, exp, "oracle", "evaluate.batch_size=2", "evaluate.batch=0,1",
        "hydra/launcher=submitit_local", f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    result = run_script("baseline/evaluate.py", ["--multirun", *arguments])
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = read_scores(exp / "scores_1-2.csv"), read_scores(exp / "scores_2-2.csv")
    assert (len(first), len(second)) == (2, 1)

    result = run_script(
        "baseline/merge_batches_results.py",
        recipe_overrides(mini_dataset, exp, "oracle", "evaluate.batch_size=2"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    pd.testing.assert_frame_equal(read_scores(exp / "scores.csv"), expected)


def test_resume_keeps_scored_rows_and_drops_a_cut_row(mini_dataset, tmp_path, recipe_overrides,
                                                      recipe_config):
    exp = tmp_path / "exp"
    config = recipe_config(recipe_overrides(mini_dataset, exp, "oracle"))
    run_enhance(config)
    _, scores = run_evaluate(config)
    lines = scores.read_text().splitlines(keepends=True)
    scores.write_text(lines[0] + lines[1] + lines[2][:20])

    summary, _ = run_evaluate(config)
    assert len(summary.skipped) == 1 and len(summary.processed) == 2
    resumed = scores.read_text().splitlines(keepends=True)
    assert resumed[:2] == lines[:2]
    assert sorted(resumed) == sorted(lines)


def test_parallel_workers_give_the_sequential_scores(mini_dataset, tmp_path, recipe_overrides,
                                                     recipe_config):
    exp = tmp_path / "exp"
    sequential = recipe_config(recipe_overrides(mini_dataset, exp, "oracle"))
    run_enhance(sequential)
    _, scores = run_evaluate(sequential)
    expected = read_scores(scores)

    parallel = recipe_config(
        recipe_overrides(mini_dataset, exp, "oracle", "overwrite=true", "evaluate.num_workers=2")
    )
    run_evaluate(parallel)
    pd.testing.assert_frame_equal(read_scores(scores), expected)


def test_failed_pairs_are_listed(mini_dataset, tmp_path, recipe_overrides, recipe_config):
    exp = tmp_path / "exp"
    config = recipe_config(recipe_overrides(mini_dataset, exp, "oracle"))
    run_enhance(config)
    missing = exp / "enhanced_signals" / "valid" / "S50001_L0002_remix.flac"
    shutil.move(missing, tmp_path / "elsewhere.flac")
    with pytest.raises(FailedScenesError, match="scene S50001 listener L0002"):
        run_evaluate(config)
    assert len(read_scores(exp / "scores.csv")) == 2


def test_a_second_evaluate_on_the_same_scores_file_stops_at_once(
    mini_dataset, tmp_path, recipe_overrides, recipe_config, run_script, lock_holder
):
    exp = tmp_path / "exp"
    config = recipe_config(recipe_overrides(mini_dataset, exp, "oracle"))
    run_enhance(config)
    with lock_holder(exp / "scores.csv") as holder:
        result = run_script("baseline/evaluate.py", recipe_overrides(mini_dataset, exp, "oracle"))
        assert result.returncode != 0
        assert f"scores.csv is being written by process {holder.pid}" in result.stderr
        assert not (exp / "scores.csv").exists()
    first = run_script("baseline/evaluate.py", recipe_overrides(mini_dataset, exp, "oracle"))
    assert first.returncode == 0, first.stderr[-3000:]
    logs = sorted((exp / "logs" / "evaluate").iterdir())
    assert len(logs) == 2 and logs[0].name != logs[1].name


def test_resume_redoes_a_broken_enhanced_file(mini_dataset, tmp_path, recipe_overrides,
                                               recipe_config):
    exp = tmp_path / "exp"
    config = recipe_config(recipe_overrides(mini_dataset, exp, "oracle"))
    run_enhance(config)
    files = enhanced_files(exp)
    expected = {path: path.read_bytes() for path in files}
    truncated, mono, kept = files
    truncated.write_bytes(expected[truncated][: len(expected[truncated]) // 2])
    signal, rate = sf.read(mono)
    sf.write(mono, signal[:, 0], rate, subtype="PCM_16")
    stamp = kept.stat().st_mtime_ns
    summary = run_enhance(config)
    assert sorted(summary.processed) == sorted(
        tuple(path.name.split("_")[:2]) for path in (truncated, mono)
    )
    assert {path: path.read_bytes() for path in files} == expected
    assert kept.stat().st_mtime_ns == stamp


def test_evaluate_names_a_mono_enhanced_file(mini_dataset, tmp_path, recipe_overrides,
                                             recipe_config):
    exp = tmp_path / "exp"
    config = recipe_config(recipe_overrides(mini_dataset, exp, "oracle"))
    run_enhance(config)
    mono = exp / "enhanced_signals" / "valid" / "S50001_L0002_remix.flac"
    signal, rate = sf.read(mono)
    sf.write(mono, signal[:, 0], rate, subtype="PCM_16")
    with pytest.raises(FailedScenesError, match=r"S50001_L0002_remix\.flac: 1 channel\(s\), "
                                                r"expected 2; run enhance again"):
        run_evaluate(config)


def test_a_silent_reference_is_a_named_failure_not_a_nan_row(
    mini_dataset, tmp_path, recipe_overrides, recipe_config
):
    exp = tmp_path / "exp"
    config = recipe_config(recipe_overrides(mini_dataset, exp, "oracle"))
    run_enhance(config)
    for stem in (mini_dataset / "audio" / "valid" / "mini_trio_000").glob("*.flac"):
        if stem.name != "mixture.flac":
            signal, rate = sf.read(stem)
            sf.write(stem, np.zeros_like(signal), rate, subtype="PCM_16")
    with pytest.raises(FailedScenesError, match="reference mixture of scene S50002 is silent"):
        run_evaluate(config)
    text = (exp / "scores.csv").read_text()
    assert "S50002" not in text and "nan" not in text.lower()
    assert len(read_scores(exp / "scores.csv")) == 2


def test_a_non_finite_stem_is_named(mini_dataset, tmp_path, recipe_overrides, recipe_config):
    cello = mini_dataset / "audio" / "valid" / "mini_trio_000" / "Cello.flac"
    cello.with_suffix(".txt").write_text("nan")
    config = recipe_config(recipe_overrides(mini_dataset, tmp_path / "exp", "oracle"))
    with pytest.raises(FailedScenesError, match=r"Cello\.flac: holds non-finite samples"):
        run_enhance(config)


def test_merge_refuses_a_missing_batch(mini_dataset, tmp_path, recipe_overrides, recipe_config,
                                       run_script):
    exp = tmp_path / "exp"
    run_enhance(recipe_config(recipe_overrides(mini_dataset, exp, "oracle")))
    first = recipe_config(
        recipe_overrides(mini_dataset, exp, "oracle", "evaluate.batch_size=2", "evaluate.batch=0")
    )
    run_evaluate(first)
    merge = recipe_overrides(mini_dataset, exp, "oracle", "evaluate.batch_size=2")
    result = run_script("baseline/merge_batches_results.py", merge)
    assert result.returncode != 0
    assert "scores_2-2.csv: not found (batch 2 of 2)" in result.stderr
    assert not (exp / "scores.csv").exists()
    result = run_script(
        "baseline/merge_batches_results.py", [*merge, "evaluate.allow_partial_merge=true"]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(1 pair(s) missing)" in result.stdout
    merged, batch = read_scores(exp / "scores.csv"), read_scores(exp / "scores_1-2.csv")
    pd.testing.assert_frame_equal(merged, batch)


class CountingSeparator:
    """Passthrough estimates, counting the calls (and the listeners, when listener aware)."""

    def __init__(self, listener_aware: bool):
        self.listener_aware = listener_aware
        self.calls = []

    def __call__(self, song, mixture, listener_id=None):
        self.calls.append((song.name, listener_id))
        return PassthroughSeparator()(song, mixture)


@pytest.mark.parametrize("listener_aware", [False, True])
def test_each_scene_is_separated_once_unless_the_separator_wants_the_listener(
    mini_dataset, tmp_path, recipe_overrides, recipe_config, monkeypatch, listener_aware
):
    reference_exp = tmp_path / "per_pair"
    run_enhance(recipe_config(recipe_overrides(mini_dataset, reference_exp, "passthrough")))
    expected = {path.name: path.read_bytes() for path in enhanced_files(reference_exp)}

    separator = CountingSeparator(listener_aware)
    monkeypatch.setattr(enhance_module, "build_separator", lambda *args: separator)
    exp = tmp_path / "grouped"
    summary = run_enhance(recipe_config(recipe_overrides(mini_dataset, exp, "passthrough")))
    assert len(summary.processed) == len(PAIRS) == 3
    if listener_aware:
        assert sorted(separator.calls) == [
            ("mini_quartet_000", "L0001"), ("mini_quartet_000", "L0002"), ("mini_trio_000", "L0002")
        ]
    else:
        assert sorted(separator.calls) == [("mini_quartet_000", None), ("mini_trio_000", None)]
    assert {path.name: path.read_bytes() for path in enhanced_files(exp)} == expected
