"""The noisy quadratic model (NQM) as data, in its two forms (config: NoisyQuadraticData.form).

H = diag(h), h_j = j^(-power); w*_j = scale / sqrt(h_j) times a seeded sign, so that the zero-initialised
model starts with error moments m0_j = scale^2 / h_j (batchlab.analysis.nqm.initial_error) and SGD on it
follows the exact expected-loss recursion of batchlab.analysis.nqm. Training and test samples are drawn
independently; the validation split has exact moments, so that its loss is the population loss: a measured
validation curve is the expected loss of its own run, with no sampling error of the evaluation set.

additive (the default; Zhang et al. 2019): each sample is z ~ N(w*, sigma^2 H^-1), stored as x [N, d], and
the `quadratic` model's loss is 0.5 sum_j h_j (w_j - z_j)^2, whose gradient noise has covariance sigma^2 H
whatever w. The label y is all zeros: the loss reads no label (the downstream SVR, which does read it, has
nothing to predict there). Validation: z_val = w* + sqrt(n_val) Q diag(sigma / sqrt h), Q orthonormal
columns orthogonal to the ones vector (QR of a column-centred Gaussian matrix), so every column's mean is
exactly w*_j, its mean squared deviation exactly sigma^2 / h_j, and the columns are uncorrelated; the
validation loss of any w is then 0.5 e^T H e + d sigma^2 / 2 (e = w - w*), up to float32 rounding.

regression: x ~ N(0, H), y = w*.x + sigma eps, learned by the `linear` model (loss 0.5 (w.x - y)^2).
Validation: X_val = sqrt(n_val) Q diag(sqrt h) with Q orthonormal columns (QR of a Gaussian matrix), so
X_val^T X_val / n_val = H; its noise is orthogonal to the columns of X_val and rescaled to mean(eps^2) = 1.
The validation loss of any w is 0.5 e^T H e + sigma^2 / 2, up to float32 rounding.
"""

from __future__ import annotations

import numpy as np

from batchlab.config import NoisyQuadraticData, split_sizes
from batchlab.data import PARTS, Dataset


def spectrum(spec: NoisyQuadraticData) -> np.ndarray:
    """h_j = j^(-power), j = 1..d (the same as batchlab.analysis.nqm.spectrum, which this floor cannot import)."""
    return np.arange(1, spec.n_features + 1, dtype=float) ** -float(spec.power)


def generate(spec: NoisyQuadraticData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Samples [N, d] float64, labels [N], split [N] (train, then validation, then test), h [d] and w* [d]."""
    n_train, n_val, n_test = split_sizes(spec.n_samples, spec.split)
    d, sigma = spec.n_features, spec.noise
    streams = np.random.SeedSequence(spec.seed).spawn(4)
    signs_rng, train_rng, val_rng, test_rng = (np.random.default_rng(s) for s in streams)
    h = spectrum(spec)
    root = np.sqrt(h)
    w_star = spec.scale / root * signs_rng.choice([-1.0, 1.0], d)
    if spec.form == "additive":
        spread = sigma / root  # each coordinate's standard deviation

        def iid(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
            return w_star + rng.standard_normal((n, d)) * spread, np.zeros(n)

        g = val_rng.standard_normal((n_val, d))
        q, _ = np.linalg.qr(g - g.mean(0))  # n_val x d, orthonormal columns, each orthogonal to the ones vector
        x_val, y_val = w_star + np.sqrt(n_val) * q * spread, np.zeros(n_val)
    else:

        def iid(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
            x = rng.standard_normal((n, d)) * root
            return x, x @ w_star + sigma * rng.standard_normal(n)

        q, _ = np.linalg.qr(val_rng.standard_normal((n_val, d)))  # n_val x d, orthonormal columns
        x_val = np.sqrt(n_val) * q * root
        eps = val_rng.standard_normal(n_val)
        eps -= q @ (q.T @ eps)  # orthogonal to every column of x_val
        eps *= np.sqrt(n_val) / np.linalg.norm(eps)  # mean(eps^2) = 1 exactly
        y_val = x_val @ w_star + sigma * eps
    x_train, y_train = iid(train_rng, n_train)
    x_test, y_test = iid(test_rng, n_test)
    split = np.repeat(np.array([PARTS["train"], PARTS["val"], PARTS["test"]], dtype=np.int8), [n_train, n_val, n_test])
    return (np.concatenate([x_train, x_val, x_test]), np.concatenate([y_train, y_val, y_test]), split, h, w_star)


def make(spec: NoisyQuadraticData) -> Dataset:
    x, y, split, h, w_star = generate(spec)
    d, power, sigma = spec.n_features, f"{spec.power:g}", f"{spec.noise:g}"
    if spec.form == "additive":
        what = (f"{spec.n_samples:,} samples z ~ N(w*, {sigma}^2 H^-1) in {d} dimensions, H = diag(j^-{power}), the "
                f"loss 0.5 sum_j h_j (w_j - z_j)^2 (Zhang et al.'s additive-noise form; the label y is all zeros, "
                "unused by the loss)")
    else:
        what = (f"{spec.n_samples:,} samples of x ~ N(0, H) in {d} dimensions, H = diag(j^-{power}), and "
                f"y = w*.x + {sigma} eps (the linear-regression form)")
    return Dataset(
        x=np.ascontiguousarray(x, dtype=np.float32),
        labels={"y": y.astype(np.float32)},
        tasks={"y": "regression"},
        target="y",
        split=split,
        name="noisy_quadratic",
        synthetic=True,
        description=f"Synthetic: the noisy quadratic model, {what}, with each direction's initial excess loss "
        f"{spec.scale**2 / 2:g} from w = 0. The validation split has exact moments, so its loss is the population "
        "loss, which SGD's exact recursion predicts (batchlab.analysis.nqm).",
        source={"nqm": {"form": spec.form, "spectrum": h.tolist(), "w_star": w_star.tolist(), "noise": spec.noise,
                        "scale": spec.scale}},
    )
