"""The advise pilot: successive halving on an equal wall-time budget (batchlab.training.halving) against known
answers, and a small real pilot (batchlab.training.pilot) end to end."""

import math

import pytest

from batchlab.training.halving import Candidate, Progress, rung_sizes, schedule, steps_for, successive_halving, winner

S_MIN, B_CRIT, B_SAT, X_MAX, TARGET = 200.0, 64.0, 256.0, 20000.0, 0.5
SIZES = [8, 16, 32, 64, 128, 256, 512, 1024]
RATES = [0.5, 1.0, 2.0]  # multiples of each batch size's best rate


def steps_to_target(b: int, m: float) -> float:
    """S(B) = S_min (1 + B_crit/B) at the best rate, longer off it."""
    return S_MIN * (1 + B_CRIT / b) * (1 + math.log2(m) ** 2)


def throughput(b: int) -> float:
    """Samples per second that saturate at X_MAX beyond B_sat."""
    return X_MAX * b / (b + B_SAT)


def analytic_time(c: Candidate) -> float:
    return steps_to_target(c.batch_size, c.base_lr) * c.batch_size / throughput(c.batch_size)


def advance(c: Candidate, steps: int) -> Progress:
    """Validation loss TARGET·(S/s)^0.5: at equal wall time it orders candidates as their time to the target."""
    s = steps_to_target(c.batch_size, c.base_lr)
    loss = TARGET * (s / steps) ** 0.5
    return Progress(steps, loss, reached=steps >= s, crossing=s if steps >= s else math.nan)


CANDIDATES = [Candidate(b, m, m) for b in SIZES for m in RATES]
SPEED = {b: throughput(b) for b in SIZES}


def test_rungs_and_budget_are_exact():
    assert rung_sizes(24, 3) == [24, 8, 3]
    assert rung_sizes(5, 3) == [5, 2]
    assert rung_sizes(9, 3) == [9, 3]
    assert rung_sizes(16, 2) == [16, 8, 4, 2]
    plan = schedule(24, 3, 600.0)
    assert [k for k, _ in plan] == [24, 8, 3]
    t0 = plan[0][1]
    assert [t for _, t in plan] == pytest.approx([t0, 3 * t0, 9 * t0])
    spent = 24 * t0 + 8 * (3 * t0 - t0) + 3 * (9 * t0 - 3 * t0)
    assert spent == pytest.approx(600.0)
    with pytest.raises(ValueError):
        rung_sizes(4, 1)


def test_halving_keeps_the_analytic_time_optimum_and_drops_the_rest_in_order():
    rows = successive_halving(CANDIDATES, SPEED, 3, 60.0, advance)
    best = min(CANDIDATES, key=analytic_time)
    assert (best.batch_size, best.base_lr) == (128, 1.0)  # sqrt(B_crit·B_sat) at the best rate
    won = winner(rows)
    assert (won["batch_size"], won["base_lr"]) == (128, 1.0)
    assert won["reached"] and won["time_to_target_s"] == pytest.approx(analytic_time(best))
    for r in sorted({row["rung"] for row in rows}):
        rung = sorted((row for row in rows if row["rung"] == r), key=lambda row: row["rank"])
        times = [analytic_time(Candidate(row["batch_size"], row["base_lr"], row["lr"])) for row in rung]
        # ranked as the analytic time to target, reached or not (ties within rounding either way)
        assert all(a <= b * (1 + 1e-9) for a, b in zip(times, times[1:]))
        kept = [row for row in rung if row["kept"]]
        assert len(kept) == math.ceil(len(rung) / 3)
    assert [sum(row["rung"] == r for row in rows) for r in range(3)] == [24, 8, 3]


def test_the_schedule_spends_the_budget_and_no_more():
    budget = 60.0
    rows = successive_halving(CANDIDATES, SPEED, 3, budget, advance)
    spent, before = 0.0, {}
    for row in sorted(rows, key=lambda row: row["rung"]):
        key = (row["batch_size"], row["base_lr"])
        spent += row["estimated_time_s"] - before.get(key, 0.0)
        before[key] = row["estimated_time_s"]
    assert spent <= budget  # floor(t·X/B) steps never exceed the time
    assert spent > 0.95 * budget


def test_steps_are_the_floor_of_time_times_throughput():
    assert steps_for(1.0, 1000.0, 64) == 15
    assert steps_for(0.001, 1000.0, 64) == 1  # at least one step


def test_a_wall_stop_ends_the_halving_and_is_recorded():
    def stopped(c: Candidate, steps: int) -> Progress:
        p = advance(c, steps)
        return Progress(p.steps, p.val_loss, wall_stopped=c.batch_size == 512)

    rows = successive_halving(CANDIDATES, SPEED, 3, 60.0, stopped)
    assert {row["rung"] for row in rows} == {0}
    assert sum(row["kept"] for row in rows) == 1
    assert any(row["wall_stopped"] for row in rows)


# ---- the advise block, refused at validation with the study and field named
def _validate(edit):
    import copy
    from pathlib import Path

    import yaml

    from batchlab.config import validate_config
    from batchlab.data.inspect import inspect_files

    raw = yaml.safe_load((Path(__file__).parents[1] / "tests/config/tiny.yaml").read_text())
    study = copy.deepcopy(raw["studies"]["tiny_signal"])
    edit(study)
    return validate_config({"device": "cpu", "studies": {"sig": study}}, "tiny.yaml", inspect=inspect_files)


def test_an_advise_block_defaults_to_the_to_target_batch_sizes():
    cfg = _validate(lambda s: s.update(advise={"minutes": 2}))
    advise = cfg.studies["sig"].advise
    assert (advise.eta, advise.seed, advise.sizes(cfg.studies["sig"])) == (3, 0, [2, 8, 32])
    assert cfg.studies["sig"].cell_view(2).advise is None  # no training cell reruns when the pilot changes


@pytest.mark.parametrize("edit, words", [
    (lambda s: (s.pop("to_target"), s.update(advise={"minutes": 2})), "advise needs a to_target block"),
    (lambda s: s.update(advise={"minutes": 2, "batch_sizes": [2, 8]}), "at least 3 batch sizes to halve, got [2, 8]"),
    (lambda s: s["to_target"].update(batch_sizes=[2, 8]) or s.update(advise={"minutes": 2}), "got [2, 8] (from"),
    (lambda s: s.update(advise={"minutes": 2, "batch_sizes": [2, 8, 4096]}), "advise.batch_sizes [4096] exceed"),
    (lambda s: s.update(advise={"minutes": 0}), "greater than 0"),
    (lambda s: s.update(advise={"minutes": 1, "eta": 1}), "greater than or equal to 2"),
])
def test_a_bad_advise_block_is_refused_naming_study_and_field(edit, words):
    from batchlab.config import ConfigError

    with pytest.raises(ConfigError) as info:
        _validate(edit)
    msg = str(info.value)
    assert "tiny.yaml" in msg and "study 'sig'" in msg and words in msg, msg


# ---- a small real pilot: the reference trainer's arithmetic, kept in memory between rungs
REAL = {
    "data": {"name": "synthetic_ehr", "n_samples": 200, "n_features": 24, "n_factors": 3},
    "model": {"kind": "dense_ae", "hidden": [16], "latent": 4},
    "optim": {"lr": 0.03, "lr_rule": "sqrt", "base_batch_size": 8},
    "budget": {"unit": "epochs", "amount": 1},
    "batch_sizes": [2, 8, 32],
    "seeds": [0, 1],
    "to_target": {"kind": "baseline_ratio", "value": 0.9, "cap": {"unit": "epochs", "amount": 4}, "checks": 12},
    "advise": {"minutes": 5, "eta": 2},
}


@pytest.fixture(scope="module")
def real_pilot():
    import torch

    from batchlab.analysis.targets import constant_prediction_loss
    from batchlab.config import Study
    from batchlab.data import make_dataset
    from batchlab.training.run import StopAt

    torch.use_deterministic_algorithms(True)
    study = Study.model_validate(REAL)
    data = make_dataset(study.data)
    stop = StopAt(0.95 * constant_prediction_loss(data, study.model, "val"))
    view = study.to_target_view()
    speed = {2: 2000.0, 8: 6000.0, 32: 12000.0}  # injected X(B): the steps follow from it alone
    return study, view, data, stop, speed


def _pilot(real_pilot, budget_s=0.2):
    from batchlab.training.pilot import run_pilot

    study, view, data, stop, speed = real_pilot
    return run_pilot(view, data, study.advise, study.to_target, [2, 8, 32], stop, "cpu", speed=speed, budget_s=budget_s)


def test_a_real_pilot_runs_end_to_end_and_is_deterministic_given_x(real_pilot):
    first, again = _pilot(real_pilot), _pilot(real_pilot)
    assert [int((first["rung"] == r).sum()) for r in range(first["rung"].max() + 1)] == [3, 2]  # eta 2: 3, 2, then 1
    assert first.drop(columns="wall_time_s").equals(again.drop(columns="wall_time_s"))
    assert not first["stopped_by_wall_cap"].any()
    assert int(first["kept"].sum()) == 2 + 1
    steps = first[first["rung"] == 0].set_index("batch_size")["steps"]
    t0 = 0.2 / (3 + 2 * (2 - 1))
    capped_or_reached = first[first["rung"] == 0].set_index("batch_size")[["reached", "capped"]].any(axis=1)
    for b, x in real_pilot[4].items():
        if not capped_or_reached[b]:
            assert steps[b] == max(1, math.floor(t0 * x / b))


def test_the_pilot_checks_the_target_as_a_to_target_run_does(real_pilot):
    import torch

    from batchlab.training.reference import train_run

    study, view, data, stop, speed = real_pilot
    table = _pilot(real_pilot, budget_s=20.0)
    hit = table[table["reached"]]
    assert len(hit), "the target is reachable within the budget"
    row = hit.iloc[0]
    b = int(row["batch_size"])
    run = train_run(view, data, b, 0, torch.device("cpu"), base_lr=float(row["base_lr"]), stop_at=stop)
    assert run.record["reached_target"] and run.curve[-1]["step"] == row["steps"]  # the same logged step
    assert run.curve[-1]["val_loss"] == row["val_loss"]  # bit for bit: the reference trainer's arithmetic
    from batchlab.measure.crossing import steps_to_target

    curve = run.curve
    assert steps_to_target([c["step"] for c in curve], [c["val_loss"] for c in curve], stop.value) == pytest.approx(
        row["crossing_steps"], rel=1e-12)


def test_the_report_labels_the_pilots_answer_as_one_seed(real_pilot):
    from batchlab.analysis.recommend import pilot

    table = _pilot(real_pilot, budget_s=20.0)
    answer = pilot(table)
    won = table[(table["rung"] == table["rung"].max()) & table["kept"]].iloc[0]
    assert (answer["batch_size"], answer["lr"]) == (int(won["batch_size"]), float(won["lr"]))
    assert answer["label"] == "pilot: one seed, no interval" and "no interval" in answer["paragraph"]
    assert answer["reached"] == bool(won["reached"]) and len(answer["table"]) == len(table)


def test_a_rung_where_every_candidate_reached_the_target_is_the_last():
    rows = successive_halving(CANDIDATES, SPEED, 3, 1e6, advance)  # all reach the target in the first rung
    assert {row["rung"] for row in rows} == {0} and sum(row["kept"] for row in rows) == 1
    assert (winner(rows)["batch_size"], winner(rows)["base_lr"]) == (128, 1.0)


def test_the_cost_estimate_is_the_measurement_and_the_schedule():
    from batchlab.training.halving import SPEED_BLOCK_S, SPEED_REPEATS, TRAIN_SHARE, estimate

    sizes = [8, 16, 32]
    e = estimate(sizes, 1, 3, 1.0, lambda b: 1e-3 * b, 0.0, lambda b: 10**9, 10)
    measure = sum(3e-3 * b + SPEED_REPEATS * max(SPEED_BLOCK_S, 1e-3 * b) for b in sizes)
    assert e["measure_s"] == pytest.approx(measure)
    assert e["rungs"] == [3] and e["total_s"] == pytest.approx(measure + (60 - measure) * TRAIN_SHARE, rel=1e-3)
    assert e["first_rung_steps"] == {b: math.floor(e["seconds"][0] / (1e-3 * b)) for b in sizes}


def test_validate_prints_the_pilots_cost_and_warns_above_its_cap(capsys):
    from batchlab.training.cost import Rate, Rates, describe, estimate

    cfg = _validate(lambda s: s.update(advise={"minutes": 0.01}))
    rates = Rates("test device", {"conv_ae": Rate(1e-3, 0.0, 1e-9)}, "given")
    lines, warning = describe(cfg, estimate(cfg, rates), rates, "tiny.yaml")
    pilot = [line for line in lines if "advise pilot" in line]
    assert len(pilot) == 1 and "3 batch sizes x 3 rates, eta 3, cap 0.01 min" in pilot[0], lines
    assert warning is not None and "above its cap of 0.01 min" in warning


def test_the_workflow_runs_the_pilot_before_the_report(tmp_path):
    """The plan: the pilot after the sweep's smallest cell (its pilot_fraction target), the report reading its table.
    Then the pilot job itself, started cold: its table, and the heavy libraries it loaded, within its step's use (the
    tiny config's cold run in test_workflow.py has no advise block)."""
    import pandas as pd
    import yaml
    from test_imports import USES

    from batchlab.cli import USAGE_LINE
    from conftest import ROOT, snakemake

    raw = yaml.safe_load((ROOT / "tests/config/tiny.yaml").read_text())
    study = {**raw["studies"]["tiny_signal"], "advise": {"minutes": 0.25}}
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(
        yaml.safe_dump({"device": "cpu", "warm_start": False, "studies": {"sig": study}}))
    result = snakemake(tmp_path, "-n", "-p", "--cores", "1", "reports/sig/index.html", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    plan = result.stdout + result.stderr
    assert "rule advise:" in plan and "results/sig/advise/pilot.parquet" in plan
    assert "--advise results/sig/advise/pilot.parquet --workers" in plan  # the report reads it
    assert "--batch-sizes 2 8 32" in plan and "--pilot results/sig/bs2/runs.parquet" in plan  # a pilot_fraction target
    result = snakemake(tmp_path, "--cores", "2", "results/sig/advise/pilot.parquet", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_parquet(tmp_path / "results/sig/advise/pilot.parquet")
    assert set(table["batch_size"]) == {2, 8, 32} and table["kept"].any()
    usage = USAGE_LINE.search((tmp_path / "logs/sig/advise.log").read_text())
    loaded = set() if usage["loaded"] == "none" else set(usage["loaded"].split(", "))
    assert usage["step"] == "advise" and usage["started"] == "cold" and loaded <= USES["advise"]
