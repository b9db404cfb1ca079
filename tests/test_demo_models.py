"""The demo's separation models: the shipped ones and the training that makes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from clarity.demo import SHIPPED_MODELS
from clarity.demo.dataset import make_dataset
from clarity.demo.models import (
    DEMO_TRAINING,
    MANIFEST_FILE,
    DemoTraining,
    check_shipped_models,
    evaluate_demo_models,
    read_manifest,
    train_demo_models,
)
from clarity.demo.render import RENDERING_VERSION
from clarity.separation.checkpoints import INSTRUMENTS, checkpoint_name
from clarity.separation.convtasnet import ConvTasNetConfig, ConvTasNetStereo
from clarity.utils.machine import cpu_description

SHIPPED_LIMIT_BYTES = 16 * 2**20
RECORD_FIELDS = {"command", "rendering", "seed", "dataset_seed", "epochs", "wall_seconds",
                 "device", "processes", "valid_target_si_sdr_median", "training"}  # fmt: skip


def test_shipped_models_cover_the_eight_instruments_and_this_rendering_version():
    """Fails when the demo renderer changes (RENDERING_VERSION) without retraining the shipped
    models (``make demo-models DEMO_MODELS_DIR=clarity/demo/pretrained``)."""
    manifest = read_manifest(SHIPPED_MODELS)
    assert sorted(manifest) == sorted(INSTRUMENTS)
    for instrument, record in manifest.items():
        assert record["rendering"] == RENDERING_VERSION, instrument
        assert set(record) >= RECORD_FIELDS, sorted(RECORD_FIELDS - set(record))
        assert record["command"].startswith("python -m clarity.demo.models")
        # what `make demo-models` would train again from scratch
        assert record["recipe"] == "shipped", instrument
        assert record["training"] == DEMO_TRAINING["shipped"].training_options(), instrument
        assert record["epochs"] == DEMO_TRAINING["shipped"].epochs, instrument
        folder = SHIPPED_MODELS / checkpoint_name(instrument, "noncausal")
        model = ConvTasNetStereo.from_pretrained(folder)
        assert not model.causal
        assert model.config == ConvTasNetConfig(**record["training"]["model"])
    size = sum(path.stat().st_size for path in SHIPPED_MODELS.rglob("*") if path.is_file())
    assert size <= SHIPPED_LIMIT_BYTES


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    make_dataset(tmp_path / "cad2", "tiny", seed=0, log=lambda line: None)
    return tmp_path / "cad2"


@pytest.fixture
def quick_recipe(monkeypatch: pytest.MonkeyPatch) -> DemoTraining:
    """The "tiny" recipe as two rounds of one epoch of a very small model."""
    model = ConvTasNetConfig(N=8, L=40, B=8, H=8, P=3, X=2, R=1, norm_type="cLN")
    recipe = DemoTraining(epochs=2, round_epochs=1, samples_per_track=2, batch_size=2,
                          model=model)  # fmt: skip
    monkeypatch.setitem(DEMO_TRAINING, "tiny", recipe)
    return recipe


def test_demo_training_rounds_reuse_and_continue_from_shipped_weights(
    tiny_dataset, quick_recipe, tmp_path
):
    torch.set_num_threads(1)
    models = tmp_path / "models"
    lines: list[str] = []
    trio = ["Cello", "Viola", "Violin"]  # the instruments of the tiny validation split
    first = train_demo_models(tiny_dataset, models, "tiny", instruments=trio, minutes=None,
                              log=lines.append)  # fmt: skip
    assert first.complete and first.trained == trio
    assert len(lines) == 6  # two rounds of one epoch each, per instrument
    assert evaluate_demo_models(tiny_dataset, models) == {
        instrument: first.manifest[instrument]["valid_target_si_sdr"] for instrument in trio
    }
    record = first.manifest["Violin"]
    assert record["epochs"] == record["target_epochs"] == 2
    assert record["rendering"] == RENDERING_VERSION
    assert record["valid_target_si_sdr"]  # the validation songs with a violin, scored
    assert json.loads((models / MANIFEST_FILE).read_text()) == first.manifest

    again = train_demo_models(tiny_dataset, models, "tiny", instruments=trio, log=lines.append)
    assert again.trained == [] and again.complete

    assert record["last_lr"] == quick_recipe.lr  # too few epochs for the schedule to halve it

    # another machine: the exported models and manifest, no training state; more epochs wanted
    for state in (models / "training").rglob("*.pt"):
        state.unlink()
    elsewhere = {**record, "last_lr": quick_recipe.lr / 4, "device": "another CPU"}
    (models / MANIFEST_FILE).write_text(json.dumps({**first.manifest, "Violin": elsewhere}))
    DEMO_TRAINING["tiny"] = DemoTraining(**{**quick_recipe.__dict__, "epochs": 3})
    before = ConvTasNetStereo.from_pretrained(models / checkpoint_name("Violin", "noncausal"))
    more = train_demo_models(tiny_dataset, models, "tiny", instruments=["Violin"])
    violin = more.manifest["Violin"]
    assert violin["epochs"] == 3 and violin["carried"]["epochs"] == 2
    assert violin["last_lr"] == quick_recipe.lr / 4  # continued at the schedule's rate
    assert violin["device"] == f"another CPU; then {cpu_description()}"
    assert violin["wall_seconds"] > first.manifest["Violin"]["wall_seconds"]
    after = ConvTasNetStereo.from_pretrained(models / checkpoint_name("Violin", "noncausal"))
    unchanged = all(torch.equal(before.state_dict()[k], v) for k, v in after.state_dict().items())
    # the continued run starts from the exported weights as its best, so it exports epoch 3
    # only if that validates better; otherwise the best epoch stays that of the first run
    assert unchanged == (violin["best_epoch"] != 3)
    if unchanged:
        assert violin["best_epoch"] == record["best_epoch"]
    assert more.manifest["Cello"] == first.manifest["Cello"]  # left alone

    # once more elsewhere, at a learning rate of one's choosing
    for state in (models / "training").rglob("*.pt"):
        state.unlink()
    DEMO_TRAINING["tiny"] = DemoTraining(**{**quick_recipe.__dict__, "epochs": 4})
    chosen = train_demo_models(tiny_dataset, models, "tiny", instruments=["Violin"],
                               resume_lr=quick_recipe.lr / 8)  # fmt: skip
    assert chosen.manifest["Violin"]["epochs"] == 4
    assert chosen.manifest["Violin"]["last_lr"] == quick_recipe.lr / 8
    assert chosen.manifest["Violin"]["device"] == violin["device"]  # the same machine again


def test_shipped_models_are_checked_against_the_dataset(tiny_dataset, quick_recipe, tmp_path):
    models = tmp_path / "models"
    with pytest.raises(ValueError, match=r"demo_models\.json is missing"):
        check_shipped_models(tiny_dataset, models)
    train_demo_models(tiny_dataset, models, "tiny", instruments=["Cello"], log=lambda line: None)
    with pytest.raises(ValueError, match=r"no demo model for \['Viola', 'Violin'\]"):
        check_shipped_models(tiny_dataset, models)
    manifest = read_manifest(models)
    manifest["Cello"]["rendering"] = RENDERING_VERSION - 1
    (models / MANIFEST_FILE).write_text(json.dumps(manifest))
    older = rf"trained on audio of rendering version \[{RENDERING_VERSION - 1}\]"
    with pytest.raises(ValueError, match=older):
        check_shipped_models(tiny_dataset, models)
    with pytest.raises(ValueError, match=r"recipe 'shipped' trains on the 'small' dataset"):
        train_demo_models(tiny_dataset, models, "shipped")
    with pytest.raises(ValueError, match=r"unknown instruments \['Piano'\]"):
        train_demo_models(tiny_dataset, models, "tiny", instruments=["Piano"])
