"""A user's own data: CSV, Parquet or NPZ with named feature and label columns, or without a label.

This is how a researcher with access to BLSA or BraTS runs the real study. An NPZ array may hold samples of
any shape ([N, F], [N, C, L], [N, C, H, W], ...). The label lives in the same file or in a separate one
(`labels`, row for row). Unlabelled data (no `label`) serve an autoencoder or a contrastive model: the data
set then carries an all-zero label of task "none", which the downstream step reads as "skip". Every problem
is reported with the file and the column it concerns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from batchlab.config import FileData
from batchlab.data import Dataset, with_split
from batchlab.provenance import inputs_manifest

MIN_ROWS = 20
HEAD_ROWS = 8  # the first samples kept by the file check, for the model check at validate
NO_LABEL = "unlabelled"  # the target's name in a data set made from a file without a label


@dataclass(frozen=True)
class FileSummary:
    """What config validation needs to know about a user's file before any job runs."""

    n_rows: int
    smallest_class: int | None  # samples in the rarest class; None for regression or no label
    n_classes: int | None = None  # classes of the label; None for regression or no label
    sample_shape: tuple[int, ...] = ()  # one sample's shape, without the batch axis
    head: np.ndarray | None = None  # the first HEAD_ROWS samples as float32, for the model check
    head_labels: np.ndarray | None = None  # their labels, encoded as training reads them


def inspect_file(spec: FileData) -> FileSummary:
    """Read and check the whole file (columns, types, finiteness, classes); cached per file version.

    Run when the config is validated, so a bad file stops the workflow before any job starts.
    """
    stats = [path.stat() for path in spec.input_files()]
    key = (spec.model_dump_json(), *((stat.st_size, stat.st_mtime_ns) for stat in stats))
    if key not in _SUMMARIES:
        x, y = read_features_and_label(spec)
        y = _check(spec, x, y)
        counts = np.bincount(y) if spec.target_task() == "classification" else None
        _SUMMARIES[key] = FileSummary(
            n_rows=len(x), smallest_class=None if counts is None else int(counts.min()),
            n_classes=None if counts is None else len(counts), sample_shape=tuple(x.shape[1:]),
            head=x[:HEAD_ROWS].astype(np.float32), head_labels=y[:HEAD_ROWS],
        )
    return _SUMMARIES[key]


_SUMMARIES: dict[tuple, FileSummary] = {}


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in {".parquet", ".pq"}


def table_columns(path: Path) -> list[str]:
    """The column names of a CSV or Parquet table, reading only its header."""
    try:
        if is_parquet(path):
            return list(pq.read_schema(path).names)
        return list(pd.read_csv(path, nrows=0).columns)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{path}: unreadable: {err}") from None


def read_table(path: Path, columns: list[str] | None = None, text: bool = False) -> pd.DataFrame:
    """A CSV or Parquet table (only `columns`, when given); with text, CSV cells are kept as strings.

    Text keeps identifiers such as codes and person ids as written (leading zeros survive).
    """
    try:
        if is_parquet(path):
            return pd.read_parquet(path, columns=columns)
        return pd.read_csv(path, usecols=columns, dtype=str if text else None)
    except (OSError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{path}: unreadable: {err}") from None


def read_features_and_label(spec: FileData) -> tuple[np.ndarray, np.ndarray]:
    """The features and the raw label (all zeros without one), the label from `labels` when the spec names it."""
    in_file = None if spec.labels is not None else spec.label
    read = _read_npz if spec.path.suffix.lower() == ".npz" else _read_table
    x, y = read(spec, in_file)
    if spec.labels is not None:
        y = _read_label_file(spec, len(x))
    return x, y


def _read_table(spec: FileData, label: str | None) -> tuple[np.ndarray, np.ndarray]:
    path = spec.path
    frame = read_table(path)
    features = spec.features or [c for c in frame.columns if c != spec.label]
    missing = [c for c in [*features, *([label] if label else [])] if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing} (data.features / data.label)")
    non_numeric = [c for c in features if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise ValueError(f"{path}: non-numeric feature column(s) {non_numeric[:5]} (data.features)")
    x = frame[features].to_numpy(dtype=np.float64)
    return x, (frame[label].to_numpy() if label else np.zeros(len(x), dtype=np.int64))


def _read_npz(spec: FileData, label: str | None) -> tuple[np.ndarray, np.ndarray]:
    """The features array (any sample shape) and the label array, all zeros when no label is read here."""
    path = spec.path
    key = (spec.features or ["x"])[0]
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in (key, label) if k is not None and k not in z.files]
            if missing:
                raise ValueError(f"{path}: missing array(s) {missing} (data.features / data.label); arrays: {sorted(z.files)}")
            x = z[key]
            y = z[label] if label else np.zeros(len(x), dtype=np.int64)
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: unreadable: {err}") from None
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{path}: array {key!r} is not numeric (data.features)")
    if len(x) != len(y):
        raise ValueError(f"{path}: {key!r} has {len(x)} rows but {label!r} has {len(y)} (data.label)")
    return x.astype(np.float64), y


def _read_label_file(spec: FileData, n_rows: int) -> np.ndarray:
    """The label `label` names in the separate file `labels`: one value per sample of `path`, in its order."""
    path = spec.labels
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                if spec.label not in z.files:
                    raise ValueError(f"{path}: missing array {spec.label!r} (data.label); arrays: {sorted(z.files)}")
                y = z[spec.label]
        except (OSError, EOFError) as err:
            raise ValueError(f"{path}: unreadable: {err}") from None
    else:
        if spec.label not in table_columns(path):
            raise ValueError(f"{path}: missing column {spec.label!r} (data.label)")
        y = read_table(path, columns=[spec.label])[spec.label].to_numpy()
    if y.ndim != 1:
        raise ValueError(f"{path}: array {spec.label!r} has shape {list(y.shape)}; one label per sample is needed (data.label)")
    if len(y) != n_rows:
        raise ValueError(f"{path}: {len(y)} labels, but {spec.path} has {n_rows} samples; they must match row for row (data.labels)")
    return y


def _check(spec: FileData, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Validate features and label; return the label encoded for its task."""
    path = spec.path
    label_path = spec.labels or spec.path
    if len(x) < MIN_ROWS:
        raise ValueError(f"{path}: {len(x)} rows; at least {MIN_ROWS} are needed")
    bad = ~np.isfinite(x.reshape(len(x), -1))
    if bad.any():
        col = int(np.flatnonzero(bad.any(axis=0))[0])
        name = spec.features[col] if spec.features and len(spec.features) > col else f"#{col}"
        raise ValueError(f"{path}: {int(bad.sum())} non-finite feature value(s), first in column {name} (data.features)")
    if spec.label is None:
        return np.zeros(len(x), dtype=np.int64)
    if pd.isna(pd.Series(y)).any():
        raise ValueError(f"{label_path}: label column {spec.label!r} has missing values (data.label)")
    if spec.task == "regression":
        if not np.issubdtype(np.asarray(y).dtype, np.number):
            raise ValueError(f"{label_path}: label column {spec.label!r} is not numeric, but task is regression (data.task)")
        return np.asarray(y, dtype=np.float32)
    classes, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
    if len(classes) < 2:
        raise ValueError(f"{label_path}: label column {spec.label!r} has one class ({classes[0]!r}) (data.label)")
    if counts.min() < 2:
        raise ValueError(
            f"{label_path}: class {classes[counts.argmin()]!r} of {spec.label!r} has {counts.min()} sample(s); "
            "each class needs at least 2 (data.label)"
        )
    return codes.astype(np.int64)


def load_file(spec: FileData) -> Dataset:
    x, y = read_features_and_label(spec)
    y = _check(spec, x, y)
    kind = "synthetic" if spec.synthetic else "user-provided"
    inputs = [{"role": "table", "path": str(spec.path)}]
    if spec.labels is not None:
        inputs.append({"role": "labels", "path": str(spec.labels)})
    inputs_csv, inputs_sha256 = inputs_manifest(inputs)
    inputs_kind = "input table" if spec.labels is None else "input table and its label file"
    source = {"kind": "file", "inputs_csv": inputs_csv, "inputs_sha256": inputs_sha256, "inputs_kind": inputs_kind}
    target = spec.label or NO_LABEL
    label_text = f"{spec.label} ({spec.task})" if spec.label else "none (unlabelled: the downstream step is skipped)"
    if spec.labels is not None:
        label_text += f", from {Path(spec.labels).name}"
    return with_split(
        x,
        {target: y},
        {target: spec.target_task()},
        target,
        spec.split,
        "file",
        synthetic=spec.synthetic,
        description=f"{kind.capitalize()} data from {Path(spec.path).name}: {len(x):,} samples x "
        f"{int(np.prod(x.shape[1:])):,} features; label: {label_text}.",
        source=source,
    )
