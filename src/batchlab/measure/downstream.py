"""Downstream evaluation of embeddings: an SVM in k-fold cross-validation (the autoencoder paper's protocol).

Every embedding of a study is scored on the same folds, so differences between batch sizes and
baselines are paired. Scaling (and PCA, for the PCA baseline) is fitted inside each fold. When the
samples come in groups (several slices of one case), the folds are drawn over groups, so no group is
on both the training and the test side of a fold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import softmax
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.metrics import accuracy_score, mean_absolute_error, r2_score, roc_auc_score
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, SVR

from batchlab.config import Downstream
from batchlab.forked import imap

CV_SEED = 0


def make_estimator(spec: Downstream, task: str, pca_components: int | None = None) -> Pipeline:
    """StandardScaler (+ PCA) + SVC for classification or SVR for regression."""
    steps: list = [StandardScaler()]
    if pca_components is not None:
        steps.append(PCA(n_components=pca_components, random_state=CV_SEED))
    steps.append(SVC(kernel=spec.kernel, C=spec.C) if task == "classification" else SVR(kernel=spec.kernel, C=spec.C))
    return make_pipeline(*steps)


def folds(y: np.ndarray, task: str, k: int, groups: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The study's fixed CV folds: stratified for classification, plain k-fold for regression; by group when given."""
    if groups is None:
        splitter = StratifiedKFold(k, shuffle=True, random_state=CV_SEED) if task == "classification" else KFold(
            k, shuffle=True, random_state=CV_SEED
        )
        return list(splitter.split(np.zeros(len(y)), y))
    _, first = np.unique(groups, return_index=True)
    if task == "classification":
        smallest = int(np.bincount(y[first]).min())
        if smallest < k:
            raise ValueError(
                f"the rarest class has {smallest} groups (cases), fewer than downstream.folds ({k}); lower the folds"
            )
        splitter = StratifiedGroupKFold(k, shuffle=True, random_state=CV_SEED)
    else:
        if len(first) < k:
            raise ValueError(f"{len(first)} groups (cases), fewer than downstream.folds ({k}); lower the folds")
        splitter = GroupKFold(k, shuffle=True, random_state=CV_SEED)
    return list(splitter.split(np.zeros(len(y)), y, groups))


def _auc(y_true: np.ndarray, scores: np.ndarray, classes: np.ndarray) -> float:
    """Binary ROC AUC from decision values; one-vs-rest macro AUC (softmax of decision values) for more classes."""
    if len(np.unique(y_true)) < 2:
        return np.nan
    if scores.ndim == 1:
        return roc_auc_score(y_true, scores)
    return roc_auc_score(y_true, softmax(scores, axis=1), multi_class="ovr", labels=classes)


def predicted(model: Pipeline, x: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """model.predict(x), read off the decision values where there are two classes instead of computed again.

    libsvm labels a sample classes_[1] exactly when its decision value is positive, so the labels are the
    same; a value of exactly 0 is left to predict. With more classes predict votes one against one."""
    if scores.ndim != 1:
        return model.predict(x)
    labels = model.classes_[(scores > 0).astype(int)]
    tied = scores == 0
    if tied.any():
        labels[tied] = model.predict(x[tied])
    return labels


def fold_scores(estimator: Pipeline, x: np.ndarray, y: np.ndarray, task: str, cv) -> pd.DataFrame:
    """Metrics of one embedding on every fold: roc_auc and accuracy, or r2 and mae."""
    return pd.DataFrame([fold_metrics(estimator, x, y, task, fold, train, test) for fold, (train, test) in enumerate(cv)])


def fold_metrics(estimator: Pipeline, x: np.ndarray, y: np.ndarray, task: str, fold: int, train, test) -> dict:
    """One fold: the estimator fitted on the training side, scored on the test side."""
    model = clone(estimator).fit(x[train], y[train])
    if task == "classification":
        scores = model.decision_function(x[test])
        return {
            "fold": fold,
            "roc_auc": _auc(y[test], scores, model.classes_),
            "accuracy": accuracy_score(y[test], predicted(model, x[test], scores)),
        }
    pred = model.predict(x[test])
    return {"fold": fold, "r2": r2_score(y[test], pred), "mae": mean_absolute_error(y[test], pred)}


def summarise(scores: pd.DataFrame) -> dict[str, float]:
    """Mean and standard deviation over folds of each metric."""
    out: dict[str, float] = {}
    for col in scores.columns.drop("fold"):
        out[f"{col}_mean"] = float(scores[col].mean())
        out[f"{col}_std"] = float(scores[col].std(ddof=1))
    return out


def skip_reason(task: str) -> str:
    """Why no SVM is fitted for a label of this task ('' when one is): unlabelled data have nothing to predict."""
    return "the data set has no label (unlabelled data)" if task == "none" else ""


def evaluate_embeddings(
    z: np.ndarray, keys: list[dict], y: np.ndarray, task: str, spec: Downstream, groups: np.ndarray | None = None
) -> pd.DataFrame:
    """One row per embedding z[i] (runs of one cell) with its CV metrics, keyed by keys[i]; a row not evaluated
    says why in `skipped_reason` (unlabelled data, a model without encode)."""
    skipped = skip_reason(task) or ("the model has no encode method, so no embedding" if z.shape[-1] == 0 else "")
    if skipped:
        return pd.DataFrame([{**key, "embedding": "autoencoder", "evaluated": False, "skipped_reason": skipped}
                             for key in keys])
    cv = folds(y, task, spec.folds, groups)
    estimator = make_estimator(spec, task)
    rows = []
    for key, zi in zip(keys, z):
        if not np.isfinite(zi).all():
            rows.append({**key, "embedding": "autoencoder", "evaluated": False})
            continue
        rows.append({**key, "embedding": "autoencoder", "evaluated": True, **summarise(fold_scores(estimator, zi, y, task, cv))})
    return pd.DataFrame(rows)


def evaluate_baselines(
    x: np.ndarray, y: np.ndarray, task: str, spec: Downstream, latent: int, groups: np.ndarray | None = None,
    workers: int = 1,
) -> pd.DataFrame:
    """The same protocol on the raw inputs and on a PCA embedding with the latent's dimension.

    Every (baseline, fold) fit is independent and runs on one thread, in up to `workers` processes:
    the raw-input SVM of a wide data set is minutes of one core, and the numbers do not depend on the workers."""
    if skip_reason(task):
        return pd.DataFrame([{"embedding": name, "evaluated": False, "skipped_reason": skip_reason(task)}
                             for name in spec.baselines])
    flat = x.reshape(len(x), -1)
    cv = folds(y, task, spec.folds, groups)
    calls = []
    for name in spec.baselines:
        estimator = make_estimator(spec, task, pca_components=min(latent, flat.shape[1]) if name == "pca" else None)
        calls += [(estimator, flat, y, task, fold, train, test) for fold, (train, test) in enumerate(cv)]
    metrics, n = list(imap(fold_metrics, calls, workers)), len(cv)
    return pd.DataFrame(
        [{"embedding": name, "evaluated": True, **summarise(pd.DataFrame(metrics[i * n : (i + 1) * n]))}
         for i, name in enumerate(spec.baselines)]
    )
