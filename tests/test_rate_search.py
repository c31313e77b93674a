"""The learning rate tuned per batch size by steps to the target: the pruning bound, the ranking, the grid's
extension, and a cell whose choice is the rate an unpruned search picks, in both trainers."""

import math

import pandas as pd
import pytest
import torch

from batchlab.config import ConfigError, Study, validate_config
from batchlab.data import make_dataset, save_dataset
from batchlab.measure.crossing import steps_to_target
from batchlab.training.cell import train_cell
from batchlab.training.rate_search import grid_rates
from batchlab.training.reference import train_run
from batchlab.training.run import StopAt
from batchlab.training.tuning import Pruner, next_rate, rank_by_steps
from test_to_target import BASE, TIMING  # the same tiny study as the train-to-target tests

CPU = torch.device("cpu")
TARGET = 0.655


def _study(engine="reference", **tuning) -> Study:
    grid = {"points": 3, "extensions": 2, "tuning_seeds": [7], **tuning}
    block = {"kind": "value", "value": TARGET, "cap": {"unit": "epochs", "amount": 4}, "checks": 30, "lr_tuning": grid}
    return Study.model_validate({**BASE, "training": {"engine": engine}, "to_target": block})


def _curve(pairs):
    return [{"step": s, "val_loss": v} for s, v in pairs]


def test_one_seed_a_trial_stops_at_the_first_logged_step_past_the_best_crossing():
    pruner = Pruner([0], target=1.0, interpolate=False)
    assert not pruner.gives_up((0.1, 0), 10**6)  # nothing finished: nothing to beat
    assert pruner.reached((0.2, 0), _curve([(10, 3.0), (100, 0.5)])) == 100
    assert not pruner.gives_up((0.1, 0), 99)
    assert pruner.gives_up((0.1, 0), 100)  # still short at 100: crosses after 100, cannot win


def test_several_seeds_bound_a_rate_by_its_known_crossings_and_the_current_step():
    pruner = Pruner([0, 1], target=1.0, interpolate=False)
    pruner.reached((0.2, 0), _curve([(40, 0.5)]))
    pruner.reached((0.2, 1), _curve([(60, 0.5)]))  # rate 0.2 finished: mean 50
    pruner.reached((0.1, 0), _curve([(30, 0.5)]))
    assert not pruner.gives_up((0.1, 1), 69)  # (30 + 69) / 2 = 49.5 < 50: could still win
    assert pruner.gives_up((0.1, 1), 70)  # (30 + 70) / 2 = 50: cannot
    pruner.failed((0.4, 0))  # a diverged seed: its rate can never win
    assert pruner.gives_up((0.4, 1), 1)


def test_the_crossing_the_pruner_keeps_is_the_analysis_interpolation():
    curve = _curve([(10, 2.0), (100, 0.5)])
    pruner = Pruner([0], target=1.0)
    assert pruner.reached((0.1, 0), curve) == pytest.approx(steps_to_target([10, 100], [2.0, 0.5], 1.0))
    assert pruner.crossings[0.1, 0] == pytest.approx(10 ** (1 + 2 / 3), rel=1e-12)


def _trials(rows):
    return pd.DataFrame(rows, columns=["base_lr", "seed", "crossing_steps", "diverged", "pruned_step"])


def test_rates_rank_by_mean_crossing_and_a_failed_seed_disqualifies_its_rate():
    trials = _trials([
        (0.1, 0, 80.0, False, -1), (0.1, 1, 120.0, False, -1),  # mean 100
        (0.2, 0, 50.0, False, -1), (0.2, 1, math.nan, False, 70),  # stopped: out
        (0.4, 0, 90.0, False, -1), (0.4, 1, 95.0, False, -1),  # mean 92.5: best
    ])
    table = rank_by_steps(trials).set_index("base_lr")
    assert table.loc[0.4, "selected"] and table.loc[0.4, "mean_steps_to_target"] == 92.5
    assert table["rank"].to_dict() == {0.1: 2, 0.2: 3, 0.4: 1}
    assert table.loc[0.2, "n_stopped"] == 1 and math.isinf(table.loc[0.2, "mean_steps_to_target"])
    assert next_rate(rank_by_steps(trials), 2.0) == 0.8  # best at the top edge: one rate up


@pytest.mark.parametrize(
    "rows, expected",
    [
        ([(0.1, 0, 50.0, False, -1), (0.2, 0, 60.0, False, -1)], 0.05),  # best at the low edge: down
        ([(0.1, 0, 60.0, False, -1), (0.2, 0, 50.0, False, -1), (0.4, 0, 70.0, False, -1)], None),  # inside
        ([(0.1, 0, math.nan, True, -1), (0.2, 0, math.nan, True, -1)], 0.05),  # all diverged: down
        ([(0.1, 0, math.nan, False, -1), (0.2, 0, math.nan, False, -1)], 0.4),  # none reached, none diverged: up
        ([(0.1, 0, math.nan, False, -1), (0.2, 0, math.nan, True, -1)], None),  # the cap, not the rate, is short
    ],
)
def test_the_grid_extends_towards_its_best_rate_or_away_from_divergence(rows, expected):
    assert next_rate(rank_by_steps(_trials(rows)), 2.0) == expected


def test_the_grid_is_centred_on_the_base_rate_and_trained_from_the_centre_out():
    study = _study(points=5, factor=3.0)
    view = study.to_target_view()
    assert view.optim.lr_rule == "sqrt" and view.optim.lr == study.optim.lr  # Adam: the square-root rule
    assert grid_rates(view, study.to_target.lr_tuning) == pytest.approx(
        [1e-3, 1e-3 / 3, 3e-3, 1e-3 / 9, 9e-3], rel=1e-12
    )


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "d.npz"
    save_dataset(make_dataset(_study().data), path)
    return path


@pytest.mark.parametrize("engine", ["reference", "batched"])
def test_a_tuned_cell_picks_the_rate_an_unpruned_search_picks(data_path, tmp_path, engine):
    """Every trial trained to the target without pruning ranks the rates; the pruned cell must choose the same one,
    report its seeds at it, and stop only trials that would have lost."""
    study = _study(engine, points=5, extensions=0, base_lr=0.008)
    view, grid = study.to_target_view(), study.to_target.lr_tuning
    runs = train_cell(view, "s", 8, data_path, tmp_path, device="cpu", stop_at=StopAt(TARGET), lr_tuning=grid)
    search = pd.read_parquet(tmp_path / "lr_search.parquet")
    trials = search[search["role"] == "tuning"].set_index("base_lr")
    data = make_dataset(study.data)
    full = {}
    for lr in trials.index:
        result = train_run(view, data, 8, 7, CPU, base_lr=lr, stop_at=StopAt(TARGET))
        steps, losses = zip(*[(c["step"], c["val_loss"]) for c in result.curve])
        full[lr] = steps_to_target(steps, losses, TARGET)
    best = min((c, lr) for lr, c in full.items() if not math.isnan(c))[1]
    assert set(runs["base_lr"]) == {best} and runs["lr_choice"].iloc[0] == "fewest steps to the target"
    assert list(runs["seed"]) == [0, 1]
    stopped = trials[trials["pruned_step"] >= 0]
    assert len(stopped) >= 1  # the test exercises the pruning
    for lr, row in stopped.iterrows():
        assert math.isnan(full[lr]) or full[lr] > full[best]
        assert row["pruned_step"] >= trials.loc[best, "crossing_steps"]
    reached = trials[trials["pruned_step"] < 0].dropna(subset=["crossing_steps"])
    tolerance = 1e-12 if engine == "reference" else 1e-5  # stacked runs round apart from one run in the last digits
    assert reached["crossing_steps"].to_dict() == pytest.approx({lr: full[lr] for lr in reached.index}, rel=tolerance)
    assert runs["tuning_steps_skipped"].iloc[0] == int((view.budget.steps(8, 96) - stopped["pruned_step"]).sum())


def test_both_trainers_measure_the_same_seeds_at_the_same_rate(data_path, tmp_path):
    outs = {}
    for engine in ("reference", "batched"):
        study = _study(engine)
        outs[engine] = train_cell(study.to_target_view(), "s", 8, data_path, tmp_path / engine, device="cpu",
                                  stop_at=StopAt(TARGET), lr_tuning=study.to_target.lr_tuning)
    ref, bat = (o.drop(columns=[c for c in o.columns if c in TIMING]) for o in outs.values())
    pd.testing.assert_frame_equal(ref, bat)


@pytest.mark.parametrize(
    "tuning, cap, message",
    [
        ({"points": 2}, None, "lr_tuning.points"),
        ({"factor": 1.0}, None, "lr_tuning.factor"),
        ({"base_lr": 0.0}, None, "lr_tuning.base_lr"),
        ({"base_lr": -1e-3}, None, "lr_tuning.base_lr"),
        ({"extensions": -1}, None, "lr_tuning.extensions"),
        ({"tuning_seeds": [0]}, None, "tuning_seeds [0] are also the seeds the analysis measures"),
        ({}, {"unit": "epochs", "amount": 0.5}, "less than one epoch"),
        ({}, {"unit": "samples", "amount": 50}, "less than one epoch"),
    ],
)
def test_bad_rate_grids_and_caps_are_refused_naming_the_study_and_field(tuning, cap, message):
    block = {"kind": "value", "value": TARGET, "cap": cap or {"unit": "epochs", "amount": 4}, "lr_tuning": tuning}
    with pytest.raises(ConfigError) as err:
        validate_config({"studies": {"tiny": {**BASE, "to_target": block}}})
    assert "tiny" in str(err.value) and message in str(err.value)
