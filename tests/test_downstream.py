"""Downstream SVM protocol on cases with known answers."""

import numpy as np
import pytest

from batchlab.config import Downstream
from batchlab.measure.downstream import evaluate_baselines, evaluate_embeddings, folds, make_estimator, predicted

SPEC = Downstream(folds=5)


def test_separable_embedding_scores_near_one_and_noise_near_half():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 100)
    good = rng.normal(size=(200, 4)) + 3 * y[:, None]
    noise = rng.normal(size=(200, 4))
    table = evaluate_embeddings(np.stack([good, noise]), [{"run": 0}, {"run": 1}], y, "classification", SPEC)
    assert table.loc[0, "roc_auc_mean"] > 0.99 and table.loc[0, "accuracy_mean"] > 0.95
    assert abs(table.loc[1, "roc_auc_mean"] - 0.5) < 0.15
    assert (table["embedding"] == "autoencoder").all()


def test_multiclass_auc_and_regression():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], 60)
    z = rng.normal(size=(180, 3)) + 4 * np.eye(3)[y]
    cls = evaluate_embeddings(z[None], [{}], y, "classification", SPEC)
    assert cls.loc[0, "roc_auc_mean"] > 0.98
    x = rng.normal(size=(200, 3))
    target = x @ np.array([1.0, -2.0, 0.5])
    reg = evaluate_embeddings(x[None], [{}], target, "regression", Downstream(folds=5, kernel="linear"))
    assert reg.loc[0, "r2_mean"] > 0.95


def test_nonfinite_embedding_is_marked_not_scored():
    y = np.repeat([0, 1], 20)
    z = np.full((1, 40, 2), np.nan)
    table = evaluate_embeddings(z, [{"seed": 0}], y, "classification", SPEC)
    assert not table.loc[0, "evaluated"]


def test_folds_are_fixed_and_stratified():
    y = np.repeat([0, 1], [30, 70])
    a, b = folds(y, "classification", 5), folds(y, "classification", 5)
    assert all(np.array_equal(ta, tb) for (ta, _), (tb, _) in zip(a, b))
    assert all(np.mean(y[test]) == pytest.approx(0.7) for _, test in a)


def test_baselines_raw_and_pca():
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 50)
    x = rng.normal(size=(100, 10)) + 2 * y[:, None]
    table = evaluate_baselines(x, y, "classification", SPEC, latent=3)
    assert list(table["embedding"]) == ["raw", "pca"]
    assert (table["roc_auc_mean"] > 0.95).all()


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_baselines_in_worker_processes_equal_the_serial_baselines(task):
    """Each (baseline, fold) fit runs on its own, so two workers give the serial table bit for bit."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(90, 12)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) if task == "classification" else x[:, 0] + 0.1 * rng.normal(size=90)
    serial = evaluate_baselines(x, y, task, SPEC, latent=3)
    parallel = evaluate_baselines(x, y, task, SPEC, latent=3, workers=2)
    assert list(serial["embedding"]) == ["raw", "pca"]
    assert serial.equals(parallel)


def _pid_and_square(i: int) -> tuple:
    import os

    return os.getpid(), i * i


def test_forked_map_keeps_the_order_and_uses_worker_processes():
    import os

    from batchlab.forked import imap

    serial = list(imap(_pid_and_square, [(i,) for i in range(6)], workers=1))
    forked = list(imap(_pid_and_square, [(i,) for i in range(6)], workers=3))
    assert [r[1] for r in serial] == [r[1] for r in forked] == [i * i for i in range(6)]
    assert {r[0] for r in serial} == {os.getpid()}
    assert os.getpid() not in {r[0] for r in forked}


@pytest.mark.parametrize("labels", [(0, 1), (3, -2), ("female", "male")])
def test_two_class_predictions_read_off_the_decision_values_are_predicts(labels):
    """Overlapping classes, so that many test samples sit near the boundary: the labels read off the decision
    values are model.predict's, for labels in either order and of any type; a value of exactly 0 goes to predict."""
    gen = np.random.default_rng(0)
    for trial in range(20):
        x = gen.normal(size=(120, 5))
        y = np.asarray(labels, dtype=object if isinstance(labels[0], str) else None)[(x[:, 0] + gen.normal(size=120) > 0).astype(int)]
        model = make_estimator(SPEC, "classification").fit(x[:80], y[:80])
        scores = model.decision_function(x[80:])
        assert np.array_equal(predicted(model, x[80:], scores), model.predict(x[80:])), trial

    class Tied:
        classes_ = np.array([0, 1])

        def predict(self, x):
            return np.full(len(x), 7)

    assert predicted(Tied(), np.zeros((3, 2)), np.array([-1.0, 0.0, 2.0])).tolist() == [0, 7, 1]


def test_more_classes_are_left_to_predict():
    gen = np.random.default_rng(1)
    x = gen.normal(size=(150, 4))
    y = np.argmax(x[:, :3] + 0.5 * gen.normal(size=(150, 3)), axis=1)
    model = make_estimator(SPEC, "classification").fit(x[:100], y[:100])
    scores = model.decision_function(x[100:])
    assert scores.ndim == 2 and np.array_equal(predicted(model, x[100:], scores), model.predict(x[100:]))
