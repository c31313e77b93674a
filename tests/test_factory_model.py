"""A model of the user's own, named by a Python factory (model kind `python`): it trains bit for bit like the same
architecture given as a built-in kind in both trainers, validate refuses what does not fit before any job, a model
the engine cannot stack falls back to the reference trainer with the reason recorded, and editing the factory's
file changes the cell's JSON that reruns its jobs."""

import math
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from batchlab.cli import main
from batchlab.config import ConfigError, Study, validate_config
from batchlab import io
from batchlab.data import load_dataset, make_dataset, save_dataset
from batchlab.measure.noise import measure_cell
from batchlab.data.inspect import inspect_files
from batchlab.measure.downstream import evaluate_embeddings
from batchlab.config import Downstream
from batchlab.training.cell import train_cell
from batchlab.training.engine import train_runs
from batchlab.training.model_check import check_models
from batchlab.training.reference import train_run

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[1]
RATES = ROOT / "tests/config/rates.json"
TIMING = {"wall_time_s", "samples_per_s", "peak_mem_mb", "peak_mem_kind", "resumed_at_step"}
FRACTIONS = (0.0, 1.0)

NETS = '''
import torch
from torch import nn
from batchlab.nets.models import DenseAutoencoder, MLPNet


def mlp(in_shape, n_classes, hidden=(16,), latent=8):
    return MLPNet(in_shape, list(hidden), latent, n_classes)


def dense_ae(in_shape, n_classes, hidden=(16,), latent=4):
    return DenseAutoencoder(in_shape, list(hidden), latent)


def not_a_module(in_shape, n_classes):
    return "a string"


def wrong_head(in_shape, n_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(in_shape).prod()), n_classes + 1))


def batch_norm(in_shape, n_classes):
    width = int(torch.tensor(in_shape).prod())
    return nn.Sequential(nn.Flatten(), nn.Linear(width, 8), nn.BatchNorm1d(8), nn.Linear(8, n_classes))


class Counting(nn.Module):
    """Counts the batches it sees in a buffer: state a training step changes."""

    def __init__(self, width, n_classes):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(width, n_classes))
        self.register_buffer("seen", torch.zeros(()))

    def forward(self, x):
        if self.training:
            self.seen += 1
        return self.net(x)


def counting(in_shape, n_classes):
    return Counting(int(torch.tensor(in_shape).prod()), n_classes)


class Scaled(nn.Module):
    """A constant buffer (a fixed input scale): the batched engine stacks buffer-free models only."""

    def __init__(self, in_shape, n_classes):
        super().__init__()
        self.register_buffer("scale", torch.full((), 2.0))
        self.body = MLPNet(in_shape, [8], 4, n_classes)

    def encode(self, x):
        return self.body.encode(x * self.scale)

    def forward(self, x):
        return self.body(x * self.scale)


def scaled(in_shape, n_classes):
    return Scaled(in_shape, n_classes)


class NoEncode(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(width, 4), nn.ReLU(), nn.Linear(4, width))

    def forward(self, x):
        return self.net(x).reshape(x.shape)


def no_encode(in_shape, n_classes):
    return NoEncode(int(torch.tensor(in_shape).prod()))


class Reads(nn.Module):
    """Reads a value back to the host in its forward pass: plain autograd trains it, torch.func's vmap cannot."""

    def __init__(self, width, n_classes):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(width, 8), nn.ReLU())
        self.head = nn.Linear(8, n_classes)

    def encode(self, x):
        return self.body(x)

    def forward(self, x):
        h = self.body(x)
        return self.head(h if float(x.abs().sum()) >= 0 else -h)


def reads(in_shape, n_classes):
    return Reads(int(torch.tensor(in_shape).prod()), n_classes)
'''


@pytest.fixture
def nets(tmp_path, monkeypatch) -> str:
    """A factory module in the working directory, under a name of its own (modules are cached by name)."""
    name = f"user_nets_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(NETS)
    monkeypatch.chdir(tmp_path)
    return name


DIGITS = {"name": "digits"}
EHR = {"name": "synthetic_ehr", "n_samples": 120, "n_features": 24, "n_factors": 3}


def _raw(data: dict, model: dict, **extra) -> dict:
    return {
        "data": data, "model": model, "budget": {"unit": "samples", "amount": 200}, "batch_sizes": [4],
        "seeds": [0, 1], "curve_points": 6, "sharpness": {"samples": 16, "iters": 3}, **extra,
    }


def _studies(nets: str, kind: str):
    """The built-in study and the same architecture as a factory, validated as the workflow does."""
    if kind == "mlp":
        data, builtin = DIGITS, {"kind": "mlp", "hidden": [16], "latent": 8}
        factory = {"kind": "python", "factory": f"{nets}:mlp", "task": "classifier", "args": {"hidden": [16], "latent": 8}}
    else:
        data, builtin = EHR, {"kind": "dense_ae", "hidden": [16], "latent": 4}
        factory = {"kind": "python", "factory": f"{nets}:dense_ae", "task": "autoencoder", "loss": "bce",
                   "args": {"hidden": [16], "latent": 4}}
    cfg = validate_config({"studies": {"builtin": _raw(data, builtin), "factory": _raw(data, factory)}}, inspect=inspect_files)
    return cfg.studies["builtin"], cfg.studies["factory"]


def _same_run(a, b):
    ra = {k: v for k, v in a.record.items() if k not in TIMING}
    rb = {k: v for k, v in b.record.items() if k not in TIMING}
    assert ra.keys() == rb.keys()
    for k in ra:
        assert ra[k] == rb[k] or (isinstance(ra[k], float) and math.isnan(ra[k]) and math.isnan(rb[k])), k
    assert len(a.curve) == len(b.curve) and all(
        {k: v for k, v in x.items() if not (isinstance(v, float) and math.isnan(v))}
        == {k: v for k, v in y.items() if not (isinstance(v, float) and math.isnan(v))}
        for x, y in zip(a.curve, b.curve)
    )
    assert np.array_equal(a.embeddings, b.embeddings)
    for f in a.checkpoints:
        assert all(torch.equal(a.checkpoints[f][k], b.checkpoints[f][k]) for k in a.checkpoints[f])


@pytest.mark.parametrize("kind", ["mlp", "dense_ae"])
def test_factory_model_trains_bit_for_bit_like_the_builtin_kind_in_both_trainers(nets, kind):
    builtin, factory = _studies(nets, kind)
    data = make_dataset(builtin.data)
    for seed in (0, 1):
        _same_run(train_run(builtin, data, 4, seed, CPU, FRACTIONS), train_run(factory, data, 4, seed, CPU, FRACTIONS))
    runs = [(builtin.optim.lr, 0), (builtin.optim.lr, 1)]  # two runs stacked: the engine's vmapped path
    fractions = {0: FRACTIONS, 1: FRACTIONS}
    for a, b in zip(train_runs(builtin, data, 4, runs, CPU, fractions), train_runs(factory, data, 4, runs, CPU, fractions)):
        assert a.record["engine"] == b.record["engine"] == "batched"
        _same_run(a, b)


def test_validate_measures_the_embedding_and_prints_the_estimate(nets, tmp_path, capsys):
    raw = {"studies": {"s": _raw(DIGITS, {"kind": "python", "factory": f"{nets}:mlp", "task": "classifier"})}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    assert main(["validate", "c.yaml", "--rates", str(RATES)]) == 0
    out = capsys.readouterr().out
    assert "s: digits, python" in out and "optimizer steps" in out
    cfg = check_models(validate_config(raw, inspect=inspect_files), "c.yaml")
    assert cfg.studies["s"].model.latent == 8  # MLPNet's encode is latent wide


@pytest.mark.parametrize(
    "factory, task, says",
    [
        ("no_such_module_xyz:make", "classifier", "does not import: ModuleNotFoundError"),
        ("{nets}:missing", "classifier", "has no callable 'missing'"),
        ("{nets}:not_a_module", "classifier", "returned a str, not a torch.nn.Module"),
        ("{nets}:wrong_head", "classifier", "must have [batch, n_classes] = [8, 10] logits"),
        ("{nets}:mlp", "autoencoder", "must have the input's shape [8, 64]"),
        ("{nets}:batch_norm", "classifier", "BatchNorm layer(s) '2'"),
        ("{nets}:counting", "classifier", "buffer(s) 'seen' change in a training step"),
    ],
    ids=["no-import", "no-callable", "not-a-module", "wrong-head", "output-not-input-shaped", "batch-norm", "buffer"],
)
def test_validate_refuses_a_factory_that_does_not_fit(nets, tmp_path, capsys, factory, task, says):
    raw = {"studies": {"mine": _raw(DIGITS, {"kind": "python", "factory": factory.format(nets=nets), "task": task})}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    assert main(["validate", "c.yaml", "--rates", str(RATES)]) == 2
    err = capsys.readouterr().err
    assert "c.yaml" in err and "study 'mine'" in err and "model" in err and says in err, err


def test_editing_the_factory_file_changes_the_cells_json(nets, tmp_path):
    raw = {"studies": {"s": _raw(DIGITS, {"kind": "python", "factory": f"{nets}:mlp", "task": "classifier"})}}
    before = validate_config(raw, inspect=inspect_files).studies["s"]
    (tmp_path / f"{nets}.py").write_text(NETS + "\n# an edit\n")
    after = validate_config(raw, inspect=inspect_files).studies["s"]
    assert before.model.source_sha256 and before.model.source_sha256 != after.model.source_sha256
    assert before.cell_view(4).model_dump_json() != after.cell_view(4).model_dump_json()
    assert Study.model_validate_json(after.model_dump_json()).model.source_sha256 == after.model.source_sha256  # jobs keep it


def test_a_model_the_engine_cannot_stack_is_trained_by_the_reference_trainer_with_the_reason(nets, tmp_path, caplog):
    raw = {"studies": {"s": _raw(DIGITS, {"kind": "python", "factory": f"{nets}:scaled", "task": "classifier"},
                                 training={"engine": "batched"}, downstream={"folds": 2})}}
    study = check_models(validate_config(raw, inspect=inspect_files), "c.yaml").studies["s"]
    data_path = tmp_path / "digits.npz"
    save_dataset(make_dataset(study.data), data_path)
    runs = train_cell(study, "s", 4, data_path, tmp_path / "bs4", device="cpu")
    assert (runs["engine"] == "reference").all()
    assert runs["engine_fallback_reason"].str.contains("buffers only; this one has scale").all()
    assert "the reference trainer trains the runs, not the batched engine" in caplog.text
    assert (pd.read_parquet(tmp_path / "bs4" / "runs.parquet")["engine_fallback_reason"] != "").all()


def test_a_model_torch_func_cannot_vmap_trains_by_reference_and_skips_its_gradient_statistics(nets, tmp_path):
    raw = {"studies": {"s": _raw(DIGITS, {"kind": "python", "factory": f"{nets}:reads", "task": "classifier"},
                                 training={"engine": "batched"}, gradients={"checkpoints": [1.0], "seeds": 1,
                                                                            "eval_samples": 32})}}
    study = check_models(validate_config(raw, inspect=inspect_files), "c.yaml").studies["s"]
    data_path = tmp_path / "digits.npz"
    save_dataset(make_dataset(study.data), data_path)
    runs = train_cell(study, "s", 4, data_path, tmp_path / "bs4", device="cpu")
    assert (runs["engine"] == "reference").all()
    assert runs["engine_fallback_reason"].str.startswith("torch.func cannot stack this model across runs").all()
    stats, spread = measure_cell(study.cell_view(4), study.gradients, load_dataset(data_path), 4,
                                 io.read_torch(tmp_path / "bs4" / "checkpoints.pt"), CPU)
    assert stats["method"].str.startswith("skipped: torch.func cannot take per-example gradients").all()
    assert stats["b_simple"].isna().all() and np.isfinite(stats["eval_loss"]).all()
    assert len(spread) and np.isfinite(spread["spread"]).all()  # minibatch gradients need no torch.func


def test_a_model_without_encode_has_its_downstream_step_skipped_with_the_reason(nets, tmp_path):
    raw = {"studies": {"s": _raw(EHR, {"kind": "python", "factory": f"{nets}:no_encode", "task": "autoencoder"})}}
    study = check_models(validate_config(raw, inspect=inspect_files), "c.yaml").studies["s"]
    assert study.model.latent == 32  # no encode: the PCA baseline's default width
    data = make_dataset(study.data)
    run = train_run(study, data, 4, 0, CPU, (1.0,))
    assert run.embeddings.shape == (len(data.x), 0)
    table = evaluate_embeddings(run.embeddings[None], [{"seed": 0}], data.labels[data.target],
                                data.tasks[data.target], Downstream(folds=2))
    assert not table["evaluated"].any() and (table["skipped_reason"] == "the model has no encode method, so no embedding").all()


def test_without_file_checks_the_factory_is_not_imported():
    """A job rebuilds its study from JSON, and a config validated without file checks touches no user file."""
    study = validate_config(
        {"studies": {"s": _raw(DIGITS, {"kind": "python", "factory": "no_such_module_xyz:make", "task": "classifier"})}}
    ).studies["s"]
    assert study.model.source_sha256 is None


def test_a_classifier_task_takes_no_reconstruction_loss():
    with pytest.raises(ConfigError, match="model.loss applies to task autoencoder"):
        validate_config({"studies": {"s": _raw(DIGITS, {"kind": "python", "factory": "m:f", "task": "classifier",
                                                         "loss": "mse"})}})


def test_the_worked_example_validates_and_prints_its_estimate(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the example's factory is imported from the repository root, where it is run
    assert main(["validate", "examples/mnist1d_cnn/config.yaml", "--rates", str(RATES)]) == 0
    out = capsys.readouterr().out
    assert "mnist1d_cnn: mnist1d, python, batch sizes [8, 16, 32, 64, 128]" in out and "train-to-target" in out
    study = check_models(validate_config(yaml.safe_load((ROOT / "examples/mnist1d_cnn/config.yaml").read_text()),
                                         inspect=inspect_files), "example").studies["mnist1d_cnn"]
    assert study.to_target is not None and study.model.latent == 32 and study.model.source_sha256
