"""MNIST-1D (Greydanus 2020): the procedurally generated benchmark, made locally by its PyPI package."""

from __future__ import annotations

import numpy as np
from mnist1d.data import get_dataset_args, make_dataset

from batchlab.config import Mnist1dData
from batchlab.data import Dataset, with_split


def generate(n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The package's generator with our sample count and seed; never its downloading loader."""
    args = get_dataset_args(as_dict=False)
    args.num_samples, args.seed, args.train_split = n_samples, seed, 1.0
    state = np.random.get_state()  # make_dataset reseeds numpy's global RNG
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(state)
    x = np.concatenate([data["x"], data["x_test"]]).astype(np.float32)
    y = np.concatenate([data["y"], data["y_test"]]).astype(np.int64)
    return x, y


def make(spec: Mnist1dData) -> Dataset:
    x, y = generate(spec.n_samples, spec.seed)
    return with_split(
        x[:, None, :],
        {"digit": y},
        {"digit": "classification"},
        "digit",
        spec.split,
        "mnist1d",
        synthetic=False,
        description=f"Real benchmark: MNIST-1D (Greydanus 2020), {len(y):,} 40-sample 1-D signals of 10 digit "
        f"templates, generated locally by the mnist1d package with seed {spec.seed}.",
    )
