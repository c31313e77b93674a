"""Data sets: shipped generators, bundled real data and a user's own files, in one `Dataset` shape.

Every data set is made locally (nothing is downloaded), split once into train/validation/test and
saved as an .npz that loads without pickle.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from batchlab.config import Split, split_sizes
from batchlab.io import atomic_path

PARTS = {"train": 0, "val": 1, "test": 2, "unused": 3}


@dataclass(frozen=True)
class Dataset:
    """Features, labels and the split of one study's data set.

    x is float32 [N, F] for tables, [N, 1, L] for 1-D signals and [N, C, H, W] for images.
    groups, when set, names the case each sample comes from (several slices of one volume): the split
    and the downstream folds keep each case on one side. source holds what a real data set's report
    shows: counts, what was left out and why, and the input files with their checksums.
    """

    x: np.ndarray
    labels: dict[str, np.ndarray]
    tasks: dict[str, str]
    target: str
    split: np.ndarray
    name: str
    synthetic: bool
    description: str
    groups: np.ndarray | None = None
    source: dict | None = None

    def indices(self, part: str) -> np.ndarray:
        return np.flatnonzero(self.split == PARTS[part]).astype(np.int64)

    def n_classes(self) -> int:
        """Classes of the target (labels are coded 0..K-1); 1 for a regression target."""
        y = self.labels[self.target]
        return int(y.max()) + 1 if self.tasks[self.target] == "classification" else 1


def assign_split(y: np.ndarray, task: str, split: Split, groups: np.ndarray | None = None) -> np.ndarray:
    """Split labels into train (0) / val (1) / test (2) with exactly `split_sizes`, stratified for classes.

    With groups, the groups are split (by the label of their first sample) and each sample follows its
    group, so no group lies on two sides; the fractions then count groups.
    """
    from sklearn.model_selection import train_test_split  # deferred: ~1 s of import every training job would pay

    if groups is not None:
        _, first, member = np.unique(groups, return_index=True, return_inverse=True)
        if task == "classification" and (y != y[first][member]).any():
            raise ValueError("a group's samples carry different labels; a grouped split needs one label per group")
        return assign_split(y[first], task, split)[member]
    n = len(y)
    n_train, n_val, n_test = split_sizes(n, split)
    idx = np.arange(n)
    out = np.zeros(n, dtype=np.int8)
    stratify = task == "classification" and np.unique(y, return_counts=True)[1].min() >= 2

    def cut(pool: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        if size == 0:
            return pool, pool[:0]
        strat = y[pool] if stratify and size >= len(np.unique(y[pool])) else None
        rest, taken = train_test_split(pool, test_size=size, random_state=seed, stratify=strat)
        return rest, taken

    rest, test = cut(idx, n_test, split.seed)
    rest, val = cut(rest, n_val, split.seed + 1)
    out[val], out[test] = PARTS["val"], PARTS["test"]
    assert len(rest) == n_train
    return out


def with_split(
    x: np.ndarray,
    labels: dict[str, np.ndarray],
    tasks: dict[str, str],
    target: str,
    split: Split,
    name: str,
    synthetic: bool,
    description: str,
    groups: np.ndarray | None = None,
    source: dict | None = None,
) -> Dataset:
    """A Dataset whose split is drawn from its target label (over groups, when given)."""
    return Dataset(
        x=np.ascontiguousarray(x, dtype=np.float32),
        labels=labels,
        tasks=tasks,
        target=target,
        split=assign_split(labels[target], tasks[target], split, groups),
        name=name,
        synthetic=synthetic,
        description=description,
        groups=groups,
        source=source,
    )


# Each source's maker as "module.function" of this package, imported only for its own data set: the
# mnist1d package pulls in matplotlib, files pandas, digits scikit-learn.
MAKERS = {
    "synthetic_ehr": "synthetic_ehr.make",
    "phantom_mri": "phantom_mri.make",
    "digits": "digits.make",
    "mnist1d": "mnist1d_data.make",
    "noisy_quadratic": "noisy_quadratic.make",
    "file": "files.load_file",
    "brats": "brats.make",
    "ehr_codes": "ehr_codes.make",
}


def make_dataset(spec) -> Dataset:
    """The data set a study's `data` block names; deterministic in the spec."""
    module, function = MAKERS[spec.name].rsplit(".", 1)
    maker = getattr(importlib.import_module(f"batchlab.data.{module}"), function)
    return limit_training(maker(spec), spec.train_samples, spec.split.seed)


def limit_training(ds: Dataset, train_samples: int | None, seed: int) -> Dataset:
    """Keep the first `train_samples` training samples of a fixed seeded order and mark the rest unused.

    The order depends on the split seed only, so a smaller training set is a subset of every larger one
    (a data-size study compares nested sets); validation and test samples are untouched. With groups,
    whole groups are kept, in a fixed seeded order, as many as fit in `train_samples`.
    """
    train = ds.indices("train")
    if train_samples is None or train_samples >= len(train):
        return ds
    rng = np.random.default_rng([seed, 7919])
    split = ds.split.copy()
    if ds.groups is None:
        order = rng.permutation(train)
        split[order[train_samples:]] = PARTS["unused"]
    else:
        names, sizes = np.unique(ds.groups[train], return_counts=True)
        order = rng.permutation(len(names))
        dropped = names[order][np.cumsum(sizes[order]) > train_samples]
        split[train[np.isin(ds.groups[train], dropped)]] = PARTS["unused"]
    return replace(ds, split=split)


def save_dataset(ds: Dataset, path: str | Path) -> None:
    meta = {
        "name": ds.name,
        "synthetic": ds.synthetic,
        "description": ds.description,
        "tasks": ds.tasks,
        "target": ds.target,
        "source": ds.source,
    }
    arrays = {"x": ds.x, "split": ds.split, "meta": np.array(json.dumps(meta))}
    arrays.update({f"label__{k}": v for k, v in ds.labels.items()})
    if ds.groups is not None:
        arrays["groups"] = ds.groups
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)


def load_dataset(path: str | Path) -> Dataset:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        labels = {k.removeprefix("label__"): z[k] for k in z.files if k.startswith("label__")}
        groups = z["groups"] if "groups" in z.files else None
        return Dataset(x=z["x"], labels=labels, split=z["split"], groups=groups, **meta)


def training_size(path: str | Path) -> int:
    """Samples in a saved data set's training split, read without loading its features."""
    with np.load(path, allow_pickle=False) as z:
        return int((z["split"] == PARTS["train"]).sum())
