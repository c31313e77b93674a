"""The tuned protocol picks the learning rate on validation loss, and never a diverging one."""

import math

import pandas as pd
import pytest

from batchlab.training.tuning import rank_learning_rates


def runs(rows):
    return pd.DataFrame(rows, columns=["base_lr", "seed", "val_loss", "test_loss", "diverged"])


def test_lowest_mean_validation_loss_wins_not_test_loss():
    table = rank_learning_rates(
        runs(
            [
                (0.01, 0, 0.50, 0.10, False), (0.01, 1, 0.52, 0.10, False),  # best on test, worse on validation
                (0.10, 0, 0.40, 0.90, False), (0.10, 1, 0.42, 0.90, False),
            ]
        )
    )
    assert table.loc[table["selected"], "base_lr"].item() == 0.10
    assert table["mean_val_loss"].tolist() == pytest.approx([0.51, 0.41])


def test_diverged_seeds_rank_first_and_never_enter_the_mean():
    table = rank_learning_rates(
        runs(
            [
                (0.01, 0, 0.50, 0.5, False), (0.01, 1, 0.50, 0.5, False),
                (1.00, 0, 0.10, 0.1, False), (1.00, 1, math.nan, math.nan, True),  # lower loss, but a seed diverged
                (9.00, 0, math.nan, math.nan, True), (9.00, 1, math.nan, math.nan, True),
            ]
        )
    )
    by_lr = table.set_index("base_lr")
    assert by_lr["selected"].idxmax() == 0.01
    assert by_lr.loc[1.0, "n_diverged"] == 1 and by_lr.loc[1.0, "mean_val_loss"] == 0.10
    assert by_lr.loc[9.0, "n_diverged"] == 2 and math.isnan(by_lr.loc[9.0, "mean_val_loss"])
    assert by_lr["rank"].tolist() == [1, 2, 3]


def test_ties_go_to_the_smaller_rate():
    table = rank_learning_rates(runs([(0.1, 0, 0.3, 0.3, False), (0.01, 0, 0.3, 0.3, False)]))
    assert table.loc[table["selected"], "base_lr"].item() == 0.01
