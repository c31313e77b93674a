"""Known answers for the downstream SVM protocol (batchlab.measure.downstream) where mutation testing found gaps: the
folds at k other than 5 and over groups, the estimator's settings, regression metrics by hand, a test side without
one of three classes, the rows of skipped and non-finite embeddings, groups reaching the folds of both tables, and the
PCA baseline's own dimension."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.dummy import DummyRegressor
from sklearn.svm import SVC, SVR

from batchlab.config import Downstream
from batchlab.measure.downstream import (
    CV_SEED, evaluate_baselines, evaluate_embeddings, fold_metrics, fold_scores, folds, make_estimator,
)

SPEC = Downstream(folds=5)
LINEAR = Downstream(folds=5, kernel="linear")


def _partition(cv, n):
    """Every sample on the test side of exactly one fold, and train and test disjoint."""
    tested = np.sort(np.concatenate([test for _, test in cv]))
    assert tested.tolist() == list(range(n))
    for train, test in cv:
        assert sorted([*train, *test]) == list(range(n))


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_three_folds_are_three_folds(task):
    """k = 3 (not the splitters' default 5): 3 folds of 4 samples of 12, each class twice per test side."""
    y = np.repeat([0, 1], 6) if task == "classification" else np.linspace(0.0, 1.0, 12)
    cv = folds(y, task, 3)
    assert len(cv) == 3 and [len(test) for _, test in cv] == [4, 4, 4]
    _partition(cv, 12)
    if task == "classification":
        assert all(np.bincount(y[test]).tolist() == [2, 2] for _, test in cv)


def test_group_folds_for_classification_keep_each_case_on_one_side():
    """20 cases of 1 to 3 slices, 10 of each class, 4 folds: every case wholly on one test side, the folds the same on
    a second call (a fixed seed), and each test side holding both classes."""
    sizes = [1, 2, 3, 1, 2, 3, 1, 2, 3, 1] * 2
    groups = np.repeat(np.arange(20), sizes)
    y = np.repeat(np.arange(20) % 2, sizes)
    cv = folds(y, "classification", 4, groups)
    assert len(cv) == 4
    _partition(cv, len(y))
    for train, test in cv:
        assert not set(groups[train]) & set(groups[test])
        assert set(y[test]) == {0, 1}
    again = folds(y, "classification", 4, groups)
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(cv, again))


def test_the_rarest_class_needs_as_many_cases_as_folds():
    """Class 1 in exactly 4 cases of 10: 4 folds are allowed, 5 are refused with the counts named."""
    groups = np.repeat(np.arange(10), 2)
    y = np.repeat((np.arange(10) >= 6).astype(int), 2)
    cv = folds(y, "classification", 4, groups)
    assert len(cv) == 4 and all(set(y[test]) == {0, 1} for _, test in cv)
    with pytest.raises(ValueError, match=r"^the rarest class has 4 groups \(cases\), fewer than downstream.folds \(5\); "
                       "lower the folds$"):
        folds(y, "classification", 5, groups)


def test_group_folds_for_regression():
    """Exactly 3 cases for 3 folds: each test side is one case; 10 cases split the same way twice; 2 cases refused."""
    groups = np.repeat([7, 3, 5], [2, 3, 4])
    y = np.linspace(0.0, 1.0, 9)
    cv = folds(y, "regression", 3, groups)
    assert sorted(tuple(sorted(set(groups[test]))) for _, test in cv) == [(3,), (5,), (7,)]
    _partition(cv, 9)
    many = np.repeat(np.arange(10), 3)
    first, second = folds(np.arange(30.0), "regression", 3, many), folds(np.arange(30.0), "regression", 3, many)
    assert len(first) == 3 and all(np.array_equal(a, b) for (_, a), (_, b) in zip(first, second))
    for train, test in first:
        assert not set(many[train]) & set(many[test])
    with pytest.raises(ValueError, match=r"^2 groups \(cases\), fewer than downstream.folds \(3\); lower the folds$"):
        folds(y[:5], "regression", 3, groups[:5])


def test_the_estimator_carries_the_configured_svm_and_a_seeded_pca():
    spec = Downstream(folds=5, kernel="linear", C=0.25)
    svc = make_estimator(spec, "classification")
    assert [type(step) for _, step in svc.steps][1:] == [SVC]
    assert (svc[-1].kernel, svc[-1].C) == ("linear", 0.25)
    svr = make_estimator(spec, "regression", pca_components=2)
    pca = svr.steps[1][1]
    assert isinstance(pca, PCA) and pca.n_components == 2 and pca.random_state == CV_SEED
    assert isinstance(svr[-1], SVR) and (svr[-1].kernel, svr[-1].C) == ("linear", 0.25)


def test_regression_metrics_of_the_training_mean_by_hand():
    """The training mean as the prediction (DummyRegressor). Fold 0 trains on 0, 1, 2 (mean 1) and tests 3 and 10:
    MAE (2 + 9) / 2 = 5.5, R² 1 - 85 / 24.5. Fold 1 trains on 3, 10, 4 (mean 17/3) and tests 0, 1, 2: MAE 14/3,
    R² 1 - (289 + 196 + 121) / 9 / 2."""
    y = np.array([0.0, 1.0, 2.0, 3.0, 10.0, 4.0])
    x = np.zeros((6, 1))
    cv = [(np.array([0, 1, 2]), np.array([3, 4])), (np.array([3, 4, 5]), np.array([0, 1, 2]))]
    table = fold_scores(DummyRegressor(), x, y, "regression", cv)
    assert table["fold"].tolist() == [0, 1]
    assert table["mae"].tolist() == pytest.approx([5.5, 14 / 3], rel=1e-12)
    assert table["r2"].tolist() == pytest.approx([1 - 85 / 24.5, 1 - 606 / 18], rel=1e-12)
    assert fold_metrics(DummyRegressor(), x, y, "regression", 7, *cv[0])["fold"] == 7


def test_a_test_side_without_one_of_three_classes_has_no_auc_but_an_accuracy():
    """Three clusters 10 apart with a spread of 0.1: the test side holds classes 0 and 1 only, so the one-vs-rest AUC
    of class 2 is undefined (NaN), while every test sample is classified correctly."""
    rng = np.random.default_rng(4)
    y = np.repeat([0, 1, 2], 10)
    x = 10 * np.eye(3)[y] + 0.1 * rng.normal(size=(30, 3))
    train = np.array([i for i in range(30) if i % 10 < 7])
    test = np.array([i for i in range(20) if i % 10 >= 7])
    with pytest.warns(Warning):
        row = fold_metrics(make_estimator(SPEC, "classification"), x, y, "classification", 0, train, test)
    assert math.isnan(row["roc_auc"]) and row["accuracy"] == 1.0


def test_skipped_embeddings_and_baselines_say_why():
    keys = [{"seed": 0}, {"seed": 1}]
    unlabelled = evaluate_embeddings(np.zeros((2, 8, 3)), keys, np.zeros(8), "none", SPEC)
    reason = "the data set has no label (unlabelled data)"
    expected = pd.DataFrame([{"seed": s, "embedding": "autoencoder", "evaluated": False, "skipped_reason": reason}
                             for s in (0, 1)])
    pd.testing.assert_frame_equal(unlabelled, expected)
    no_encode = evaluate_embeddings(np.zeros((2, 8, 0)), keys, np.repeat([0, 1], 4), "classification", SPEC)
    pd.testing.assert_frame_equal(
        no_encode, expected.assign(skipped_reason="the model has no encode method, so no embedding"))
    baselines = evaluate_baselines(np.zeros((8, 3)), np.zeros(8), "none", SPEC, latent=2)
    pd.testing.assert_frame_equal(baselines, pd.DataFrame(
        [{"embedding": name, "evaluated": False, "skipped_reason": reason} for name in ("raw", "pca")]))


def test_a_non_finite_embedding_does_not_stop_the_next_and_one_dimension_is_scored():
    """Run 0 diverged (NaN); run 1 is one-dimensional and separable with a margin: scored perfectly."""
    rng = np.random.default_rng(5)
    y = np.repeat([0, 1], 20)
    z = np.stack([np.full((40, 1), np.nan), ((2 * y - 1) * rng.uniform(1, 2, 40))[:, None]])
    table = evaluate_embeddings(z, [{"run": 0}, {"run": 1}], y, "classification", LINEAR)
    assert table["embedding"].tolist() == ["autoencoder", "autoencoder"]
    assert table["evaluated"].tolist() == [False, True]
    assert math.isnan(table.loc[0, "accuracy_mean"])
    assert table.loc[1, ["accuracy_mean", "roc_auc_mean", "accuracy_std", "roc_auc_std"]].tolist() == [1, 1, 0, 0]


def _outlier_case():
    """Class 0 on [-11, -9] and class 1 on [9, 11], one sample per case, and a case of three class-1 slices at -12,
    beyond every class-0 sample (a second feature is noise)."""
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.uniform(-11, -9, 50), rng.uniform(9, 11, 47), [-12.0, -12.1, -12.2]])
    y = np.array([0] * 50 + [1] * 50)
    groups = np.concatenate([np.arange(97), [97, 97, 97]])
    return np.column_stack([x, rng.uniform(-1, 1, 100)]), y, groups


def test_groups_reach_the_folds_of_embeddings_and_baselines():
    """A linear SVM puts the boundary in the margin, so with folds over cases the fold whose test side holds the
    three-slice case misses all three (accuracy 1 - 3/n_test, AUC 1 - 3/n_pos) and every other fold is perfect."""
    z, y, groups = _outlier_case()
    accuracy, auc = [], []
    for _, test in folds(y, "classification", 5, groups):
        has = 97 in test
        assert has == (98 in test) == (99 in test)
        accuracy.append(1 - 3 / len(test) if has else 1.0)
        auc.append(1 - 3 / int(y[test].sum()) if has else 1.0)
    expected = [np.mean(accuracy), np.std(accuracy, ddof=1), np.mean(auc), np.std(auc, ddof=1)]
    columns = ["accuracy_mean", "accuracy_std", "roc_auc_mean", "roc_auc_std"]
    row = evaluate_embeddings(z[None], [{"run": 0}], y, "classification", LINEAR, groups=groups).iloc[0]
    assert row[columns].tolist() == pytest.approx(expected, rel=1e-12)
    raw = Downstream(folds=5, kernel="linear", baselines=["raw"])
    base = evaluate_baselines(z, y, "classification", raw, latent=1, groups=groups).iloc[0]
    assert base["embedding"] == "raw" and base["evaluated"]
    assert base[columns].tolist() == pytest.approx(expected, rel=1e-12)


def test_the_pca_baseline_keeps_only_the_latents_dimension():
    """Pairs of cases, one of each class, share their noise: features 1 and 2 are one noise variable (twice), the
    class sits in feature 0 (+-m, m in [1, 2], the same m in a pair), and a pair is one group, so every training
    side holds whole pairs and feature 0 is uncorrelated with the noise on it. After scaling, the first principal
    component is the noise (eigenvalue about 2 against 1): PCA to latent = 1 keeps no class. The two cases of a
    pair then get the same score up to rounding, so a fold's AUC is 0.5 within 1/(2 n_neg) = 0.025 (only the pair's
    own comparison can tip) and its accuracy 0.5, while the raw inputs separate perfectly. With latent = 3 (all
    components) PCA only rotates the scaled inputs, which a linear kernel's dot products do not see: raw's row."""
    rng = np.random.default_rng(8)
    y = np.repeat([0, 1], 100)
    u, m = np.tile(rng.normal(size=100), 2), np.tile(rng.uniform(1, 2, 100), 2)
    x = np.column_stack([(2 * y - 1) * m, u, u + 0.01 * np.tile(rng.normal(size=100), 2)])
    pairs = np.tile(np.arange(100), 2)
    table = evaluate_baselines(x, y, "classification", LINEAR, latent=1, groups=pairs)
    assert table["embedding"].tolist() == ["raw", "pca"] and table["evaluated"].tolist() == [True, True]
    raw, pca = table.iloc[0], table.iloc[1]
    assert (raw["accuracy_mean"], raw["roc_auc_mean"]) == (1.0, 1.0)
    assert abs(pca["roc_auc_mean"] - 0.5) <= 0.025 and abs(pca["accuracy_mean"] - 0.5) <= 0.025
    full = evaluate_baselines(x, y, "classification", LINEAR, latent=3, groups=pairs)
    columns = ["accuracy_mean", "accuracy_std", "roc_auc_mean", "roc_auc_std"]
    assert full.iloc[1][columns].tolist() == pytest.approx(full.iloc[0][columns].tolist(), rel=1e-9)
