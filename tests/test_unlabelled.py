"""Unlabelled arrays of any sample shape: an NPZ without a label serves an autoencoder study through the cell
trainer, its downstream step skipped with the reason; shapes are checked at validate against the model, and a
model that needs a label is refused."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from batchlab.cli import main
from batchlab.config import ConfigError, Downstream, validate_config
from batchlab.data import load_dataset, make_dataset, save_dataset
from batchlab.data.inspect import inspect_files
from batchlab.jobs.study_cells import downstream_cell
from batchlab.measure.downstream import evaluate_baselines
from batchlab.training.cell import train_cell

ROOT = Path(__file__).resolve().parents[1]
RATES = ROOT / "tests/config/rates.json"


def _signals(path: Path, n: int = 60, shape=(2, 12)) -> Path:
    """Unlabelled 2-channel signals in [0, 1], saved as an NPZ holding one array x."""
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.random((n, *shape)).astype(np.float32))
    return path


def _raw(path: Path, model: dict, **extra) -> dict:
    study = {
        "data": {"name": "file", "path": str(path)}, "model": model, "budget": {"unit": "samples", "amount": 96},
        "batch_sizes": [8], "seeds": [0], "curve_points": 4, "sharpness": {"samples": 0},
        "downstream": {"folds": 2}, **extra,
    }
    return {"studies": {"signals": study}}


def test_an_unlabelled_npz_makes_a_data_set_whose_downstream_step_is_skipped(tmp_path):
    cfg = validate_config(_raw(_signals(tmp_path / "x.npz"), {"kind": "conv_ae", "channels": [4]}), inspect=inspect_files)
    data = make_dataset(cfg.studies["signals"].data)
    assert data.x.shape == (60, 2, 12) and data.tasks[data.target] == "none"
    assert (data.labels[data.target] == 0).all() and "unlabelled" in data.description
    baselines = evaluate_baselines(data.x, data.labels[data.target], data.tasks[data.target], Downstream(folds=2), 4)
    assert not baselines["evaluated"].any()
    assert (baselines["skipped_reason"] == "the data set has no label (unlabelled data)").all()


def test_an_unlabelled_autoencoder_study_trains_through_the_cell_trainer(tmp_path):
    cfg = validate_config(_raw(_signals(tmp_path / "x.npz"), {"kind": "conv_ae", "channels": [4], "latent": 3}),
                          inspect=inspect_files)
    study = cfg.studies["signals"]
    data_path = tmp_path / "signals.npz"
    save_dataset(make_dataset(study.data), data_path)
    runs = train_cell(study, "signals", 8, data_path, tmp_path / "bs8", device="cpu")
    assert len(runs) == 1 and np.isfinite(runs["val_loss"]).all() and not runs["diverged"].any()
    emb = np.load(tmp_path / "bs8" / "embeddings.npz")
    assert emb["z"].shape == (1, 60, 3)
    (table,) = downstream_cell("signals", Downstream(folds=2).model_dump_json(), str(data_path), 8,
                               str(tmp_path / "bs8" / "embeddings.npz"))
    assert not table["evaluated"].any() and table["skipped_reason"].str.contains("no label").all()
    assert load_dataset(data_path).tasks[load_dataset(data_path).target] == "none"  # survives the saved file


@pytest.mark.parametrize("model", [{"kind": "mlp"}, {"kind": "python", "factory": "m:f", "task": "classifier"}])
def test_a_model_that_learns_a_label_is_refused_on_unlabelled_data(tmp_path, model):
    with pytest.raises(ConfigError, match=r"study 'signals'.*learns a label, but the data set has none \(data.label\)"):
        validate_config(_raw(_signals(tmp_path / "x.npz"), model))


def test_a_factory_autoencoder_of_the_wrong_shape_is_refused_at_validate(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shape_nets_a1.py").write_text(
        "from torch import nn\n"
        "def flat(in_shape, n_classes):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(24, 24))\n"  # [B, 24], not the input's [B, 2, 12]
    )
    raw = _raw(_signals(tmp_path / "x.npz"), {"kind": "python", "factory": "shape_nets_a1:flat", "task": "autoencoder"})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    assert main(["validate", "c.yaml", "--rates", str(RATES)]) == 2
    err = capsys.readouterr().err
    assert "study 'signals', field 'model'" in err and "must have the input's shape [8, 2, 12]" in err, err


def test_a_labelled_npz_still_needs_its_label_array(tmp_path):
    path = _signals(tmp_path / "x.npz")
    raw = _raw(path, {"kind": "conv_ae", "channels": [4]})
    raw["studies"]["signals"]["data"]["label"] = "y"
    with pytest.raises(ConfigError, match=r"missing array\(s\) \['y'\]"):
        validate_config(raw, inspect=inspect_files)


def test_validate_passes_an_unlabelled_autoencoder_and_estimates_its_cost_from_the_arrays_shape(tmp_path, monkeypatch,
                                                                                                capsys):
    monkeypatch.chdir(tmp_path)
    raw = _raw(_signals(tmp_path / "x.npz"), {"kind": "conv_ae", "channels": [4]})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    assert main(["validate", "c.yaml", "--rates", str(RATES)]) == 0
    out = capsys.readouterr().out
    assert "signals: file, conv_ae" in out and "signals: 12 optimizer steps over 1 cells, ≈" in out, out


def test_the_report_figure_says_why_the_downstream_step_was_skipped(tmp_path):
    from batchlab.report.figures import _skipped_downstream, downstream_vs_batch

    reason = "the data set has no label (unlabelled data)"
    table = pd.DataFrame({"batch_size": [4, 8], "seed": [0, 0], "diverged": [False, False],
                          "svm_evaluated": [False, False], "svm_skipped_reason": [reason, reason]})
    baselines = evaluate_baselines(np.zeros((30, 3), np.float32), np.zeros(30), "none", Downstream(folds=2), 2)
    assert _skipped_downstream(table, baselines) == reason
    assert _skipped_downstream(table.assign(svm_evaluated=[True, False]), baselines) == ""
    downstream_vs_batch(table, baselines, "r2", 2, tmp_path / "downstream.png", "signals")
    assert (tmp_path / "downstream.png").stat().st_size > 0
