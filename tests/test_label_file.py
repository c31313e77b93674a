"""A label kept apart from the training arrays (`data.labels`): the data set takes it row for row from its own
file, training reads only the arrays, and every mismatch is refused at validate naming the file and the field."""

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from batchlab.cli import main
from batchlab.config import ConfigError, Downstream, validate_config
from batchlab.data import make_dataset
from batchlab.data.inspect import inspect_files
from batchlab.measure.downstream import evaluate_baselines

ROOT = Path(__file__).resolve().parents[1]
RATES = ROOT / "tests/config/rates.json"
N = 60


def _signals(path: Path, **arrays) -> tuple[Path, np.ndarray]:
    """Unlabelled 2-channel signals in [0, 1] saved as the NPZ array x (plus any extra arrays), and the signals."""
    x = np.random.default_rng(0).random((N, 2, 12)).astype(np.float32)
    np.savez(path, x=x, **arrays)
    return path, x


def _raw(data: dict, model: dict | None = None) -> dict:
    study = {
        "data": {"name": "file", **data}, "model": model or {"kind": "conv_ae", "channels": [4]},
        "budget": {"unit": "samples", "amount": 96}, "batch_sizes": [8], "seeds": [0], "curve_points": 4,
        "sharpness": {"samples": 0}, "downstream": {"folds": 2},
    }
    return {"studies": {"signals": study}}


def _threshold_labels(x: np.ndarray) -> np.ndarray:
    """'high' where a signal's mean lies above the median of the means, else 'low': a label the features decide."""
    means = x.reshape(len(x), -1).mean(axis=1)
    return np.where(means > np.median(means), "high", "low")


def test_an_npz_label_file_labels_the_arrays_row_for_row_and_the_downstream_step_scores_it(tmp_path):
    path, x = _signals(tmp_path / "x.npz")
    words = _threshold_labels(x)
    np.savez(tmp_path / "y.npz", group=words)
    spec = validate_config(_raw({"path": str(path), "labels": str(tmp_path / "y.npz"), "label": "group"}),
                           inspect=inspect_files).studies["signals"].data
    assert spec.input_files() == [path, tmp_path / "y.npz"]
    data = make_dataset(spec)
    assert data.target == "group" and data.tasks["group"] == "classification"
    np.testing.assert_array_equal(data.labels["group"], (words == "low").astype(int))  # 'high' < 'low': codes 0, 1
    np.testing.assert_array_equal(data.x, x)
    assert "label: group (classification), from y.npz" in data.description
    inputs = pd.read_csv(io.StringIO(data.source["inputs_csv"]))
    assert list(inputs["role"]) == ["table", "labels"] and list(inputs["path"]) == [str(path), str(tmp_path / "y.npz")]
    assert spec.summary().smallest_class == N // 2 and spec.summary().n_classes == 2
    baselines = evaluate_baselines(data.x, data.labels["group"], "classification", Downstream(folds=2), 4)
    assert baselines["evaluated"].all() and "skipped_reason" not in baselines


def test_the_label_file_wins_over_an_array_of_the_same_name_in_the_data_file(tmp_path):
    path, x = _signals(tmp_path / "x.npz", y=np.arange(N) % 2)
    labels = np.r_[np.zeros(N // 3), np.ones(N - N // 3)]
    np.savez(tmp_path / "labels.npz", y=labels)
    spec = validate_config(_raw({"path": str(path), "labels": str(tmp_path / "labels.npz"), "label": "y"}),
                           inspect=inspect_files).studies["signals"].data
    np.testing.assert_array_equal(make_dataset(spec).labels["y"], labels.astype(int))
    assert spec.summary().smallest_class == N // 3  # 20 zeros against 40 ones, not the data file's 30 and 30


def test_a_csv_table_takes_a_regression_label_from_a_parquet_file(tmp_path):
    rng = np.random.default_rng(1)
    table = pd.DataFrame(rng.normal(size=(N, 4)), columns=["a", "b", "c", "d"])
    table.to_csv(tmp_path / "x.csv", index=False)
    age = np.round(rng.uniform(20, 90, N), 3)
    pd.DataFrame({"age": age}).to_parquet(tmp_path / "age.parquet")
    raw = _raw({"path": str(tmp_path / "x.csv"), "labels": str(tmp_path / "age.parquet"), "label": "age",
                "task": "regression"}, {"kind": "dense_ae", "hidden": [8], "latent": 2, "output": "linear", "loss": "mse"})
    data = make_dataset(validate_config(raw, inspect=inspect_files).studies["signals"].data)
    assert data.x.shape == (N, 4) and data.tasks["age"] == "regression"
    np.testing.assert_allclose(data.labels["age"], age.astype(np.float32), rtol=0)
    np.testing.assert_allclose(data.x, table.to_numpy(np.float32), rtol=0)


def test_an_edited_label_file_is_read_again(tmp_path):
    path, _ = _signals(tmp_path / "x.npz")
    labels = tmp_path / "y.npz"
    np.savez(labels, y=np.arange(N) % 2)
    raw = _raw({"path": str(path), "labels": str(labels), "label": "y"})
    assert validate_config(raw, inspect=inspect_files).studies["signals"].data.summary().smallest_class == N // 2
    np.savez(labels, y=(np.arange(N) < 10).astype(int))
    os.utime(labels, ns=(labels.stat().st_atime_ns, labels.stat().st_mtime_ns + 10**9))
    assert validate_config(raw, inspect=inspect_files).studies["signals"].data.summary().smallest_class == 10


@pytest.mark.parametrize(
    ("labels", "field", "message"),
    [
        (lambda d: np.savez(d / "y.npz", y=np.arange(N - 1) % 2), {"label": "y"},
         r"y\.npz: 59 labels, but .*x\.npz has 60 samples; they must match row for row \(data\.labels\)"),
        (lambda d: np.savez(d / "y.npz", z=np.arange(N) % 2), {"label": "y"},
         r"y\.npz: missing array 'y' \(data\.label\); arrays: \['z'\]"),
        (lambda d: np.savez(d / "y.npz", y=np.zeros((N, 2))), {"label": "y"},
         r"y\.npz: array 'y' has shape \[60, 2\]; one label per sample is needed \(data\.label\)"),
        (lambda d: np.savez(d / "y.npz", y=np.zeros(N)), {"label": "y"},
         r"y\.npz: label column 'y' has one class"),
        (lambda d: np.savez(d / "y.npz", y=np.arange(N) % 2), {},
         r"labels names .*y\.npz, but label names no column or array in it \(data\.label\)"),
    ],
    ids=["rows", "array", "shape", "one-class", "no-label"],
)
def test_a_bad_label_file_is_refused_at_validate_naming_the_file_and_field(tmp_path, labels, field, message):
    path, _ = _signals(tmp_path / "x.npz")
    labels(tmp_path)
    with pytest.raises(ConfigError, match=message):
        validate_config(_raw({"path": str(path), "labels": str(tmp_path / "y.npz"), **field}), inspect=inspect_files)


def test_a_label_file_without_the_column_and_one_that_is_missing_are_refused(tmp_path):
    path, _ = _signals(tmp_path / "x.npz")
    pd.DataFrame({"sex": np.arange(N) % 2}).to_csv(tmp_path / "y.csv", index=False)
    with pytest.raises(ConfigError, match=r"y\.csv: missing column 'age' \(data\.label\)"):
        validate_config(_raw({"path": str(path), "labels": str(tmp_path / "y.csv"), "label": "age"}), inspect=inspect_files)
    with pytest.raises(ConfigError, match=r"gone\.csv: no such file"):
        validate_config(_raw({"path": str(path), "labels": str(tmp_path / "gone.csv"), "label": "sex"}),
                        inspect=inspect_files)
    with pytest.raises(ConfigError, match=r"y\.txt: unsupported file type '\.txt'"):
        validate_config(_raw({"path": str(path), "labels": str(tmp_path / "y.txt"), "label": "sex"}))


def test_validate_refuses_a_short_label_file_with_the_study_and_field_and_a_nonzero_exit(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _signals(tmp_path / "x.npz")
    np.savez(tmp_path / "y.npz", y=np.arange(N - 5) % 2)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(_raw({"path": "x.npz", "labels": "y.npz", "label": "y"})))
    assert main(["validate", "c.yaml", "--rates", str(RATES)]) == 2
    err = capsys.readouterr().err
    assert "study 'signals'" in err and "y.npz: 55 labels, but x.npz has 60 samples" in err, err


def test_a_contrastive_model_is_accepted_on_unlabelled_arrays(tmp_path):
    path, _ = _signals(tmp_path / "x.npz")
    raw = _raw({"path": str(path)}, {"kind": "contrastive", "channels": [4], "latent": 3, "projection": 2, "shift": 2})
    data = validate_config(raw, inspect=inspect_files).studies["signals"].data
    assert data.target_task() == "none" and make_dataset(data).x.shape == (N, 2, 12)
