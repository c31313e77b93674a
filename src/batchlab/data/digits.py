"""scikit-learn's bundled handwritten digits (UCI, 1,797 8x8 images): small real data, no download."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from batchlab.config import DigitsData
from batchlab.data import Dataset, with_split


def make(spec: DigitsData) -> Dataset:
    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    if spec.as_images:
        x = x.reshape(-1, 1, 8, 8)
    return with_split(
        x,
        {"digit": bunch.target.astype(np.int64)},
        {"digit": "classification"},
        "digit",
        spec.split,
        "digits",
        synthetic=False,
        description="Real data: the UCI handwritten digits bundled with scikit-learn (1,797 8x8 images, "
        "pixel values scaled to [0, 1]), label: the digit.",
    )
