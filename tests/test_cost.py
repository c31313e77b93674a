"""The cost shown before a run: work counted from the config, rates from a file or a cached calibration, the warning."""

import copy
import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from batchlab.training import cost
from batchlab.cli import main
from batchlab.config import ConvAE, DenseAE, MLPClassifier, CNNClassifier, ContrastiveEncoder, LinearRegression, validate_config
from batchlab.nets.models import build_model, count_parameters
from conftest import ROOT

RATES = ROOT / "tests/config/rates.json"
TINY = yaml.safe_load((ROOT / "tests/config/tiny.yaml").read_text())

MODELS = [
    (DenseAE(kind="dense_ae", hidden=[32, 8], latent=4), (60,), 2),
    (DenseAE(kind="dense_ae", hidden=[16], latent=3), (1, 5, 6), 2),
    (ConvAE(kind="conv_ae", channels=[4, 8], latent=8), (1, 40), 2),
    (ConvAE(kind="conv_ae", channels=[16, 32], latent=32), (1, 30, 30), 2),  # padded to 32 x 32
    (MLPClassifier(kind="mlp", hidden=[32, 16], latent=8), (1, 40), 10),
    (CNNClassifier(kind="cnn", channels=[8, 16], latent=16), (1, 8, 8), 10),
    (CNNClassifier(kind="cnn", channels=[4], latent=8), (2, 41), 3),
    (ContrastiveEncoder(kind="contrastive", channels=[8, 16], latent=16, projection=8), (1, 40), 2),
    (LinearRegression(kind="linear"), (32,), 1),
]


@pytest.mark.parametrize("spec, shape, classes", MODELS, ids=lambda v: getattr(v, "kind", str(v)))
def test_work_counted_from_the_config_matches_the_built_model(spec, shape, classes):
    """Against torch's own count of the forward pass's flops (2 per multiply-accumulate) and parameters."""
    model = build_model(spec, shape, classes)
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros((1, *shape)))
    views = 2 if spec.kind == "contrastive" else 1
    assert cost.model_work(spec, shape, classes) == (views * counter.get_total_flops() // 2, count_parameters(model))


def test_sample_shapes_match_the_data_sets():
    """The shape each data block promises is the one its data set has (checked on the small ones)."""
    from batchlab.config import DigitsData, Mnist1dData, PhantomMRIData, SyntheticEHRData
    from batchlab.data import make_dataset

    for spec in [
        SyntheticEHRData(name="synthetic_ehr", n_samples=60, n_features=30),
        PhantomMRIData(name="phantom_mri", n_samples=60, size=16),
        DigitsData(name="digits"),
        DigitsData(name="digits", as_images=True),
        Mnist1dData(name="mnist1d", n_samples=100),
    ]:
        assert cost.sample_shape(spec) == make_dataset(spec).x.shape[1:], spec.name


def test_steps_and_time_of_a_cell_by_hand():
    """One cell worked out by hand from the documented model: t(B) = step_s + mac_s (B W + P), plus its passes."""
    raw = {
        "studies": {
            "s": {
                "data": {"name": "synthetic_ehr", "n_samples": 100, "n_features": 20, "split": {"val_fraction": 0.1, "test_fraction": 0.1}},
                "model": {"kind": "dense_ae", "hidden": [4], "latent": 2},
                "budget": {"unit": "epochs", "amount": 2},
                "batch_sizes": [4],
                "seeds": [0, 1],
                "curve_points": 5,
                "sharpness": {"samples": 0},
                "gradients": {"checkpoints": [1.0], "eval_samples": 8, "spread_batch_sizes": [1, 2], "spread_draws": 2},
            }
        }
    }
    rate = cost.Rate(step_s=0.01, param_s=1e-7, mac_s=1e-6)
    rates = cost.Rates("test", {"dense_ae": rate}, "test")
    (cell,) = cost.cell_costs("s", validate_config(raw).studies["s"], rates)
    macs = 2 * (20 * 4 + 4 * 2)  # encoder 20-4-2, mirrored decoder
    params = (20 * 4 + 4) + (4 * 2 + 2) + (2 * 4 + 4) + (4 * 20 + 20)
    steps = 2 * 80 // 4  # 80 training samples, 2 epochs, batch size 4

    def step(b):
        return 0.01 + 1e-7 * params + 1e-6 * b * macs

    train = 2 * steps * step(4)
    evaluation = 2 * (1e-6 * macs / 3) * (5 * 10 + 2 * 100)  # 5 curve points on 10 validation samples, 2 passes over all
    gradients = 1 * 1 * (8 * (2 * 1e-6 * macs + 1e-7 * params) + 2 * (step(1) + step(2)))  # 1 seed, 1 checkpoint
    assert (cell.runs, cell.steps) == (2, steps)
    assert cell.seconds == pytest.approx(train + evaluation + gradients, rel=1e-12)


def test_validate_prints_steps_and_time(capsys, tmp_path: Path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    assert main(["validate", str(path), "--rates", str(RATES)]) == 0
    out, err = capsys.readouterr()
    cfg = validate_config(TINY)
    sweeps = [s for name, study in cfg.studies.items() for s in study.variants(name).values()]
    runs = [len(s.seeds) * len(s.optim.candidate_lrs()) for s in sweeps]
    grids = [s.to_target.lr_tuning for s in sweeps if s.to_target is not None]
    sweeps += [s.to_target_view() for s in sweeps if s.to_target is not None]  # at their cap
    # a rate-tuned train-to-target cell: its measured seeds, and every trial of its grid with all extensions
    runs += [len(s.seeds) + (0 if g is None else (g.points + g.extensions) * len(g.tuning_seeds))
             for s, g in zip(sweeps[len(runs):], grids)]
    steps = sum(n * s.budget.steps(b, s.data.n_train()) for s, n in zip(sweeps, runs) for b in s.batch_sizes)
    assert "estimated cost (test rates" in out
    assert "tiny_ehr: " in out and "optimizer steps over 3 cells" in out
    assert "tiny_scaling: " in out and "over 16 cells" in out  # 4 grid cells x 4 batch sizes
    assert "tiny_signal: " in out and "over 5 cells, " in out
    assert "for its 2 fixed-budget cells and up to" in out and "for its 3 train-to-target cells (counted at their cap" in out
    lines = [ln for ln in out.splitlines() if "optimizer steps" in ln]
    assert sum(int(ln.split(": ")[1].split(" optimizer")[0].replace(",", "")) for ln in lines) == steps
    cells = [c for study in cost.estimate(cfg, cost.read_rates(RATES)).values() for c in study]
    fixed, capped = (sum(c.seconds for c in cells if c.to_target == t) for t in (False, True))
    assert f"all: ≈ {cost._duration(fixed)} of training and measurement, one job at a time, and up to " \
           f"{cost._duration(capped)} more for the train-to-target cells at their caps" in out
    assert "warning" not in err
    signal = cfg.studies["tiny_signal"].to_target_view()
    caps = ", ".join(f"batch size {b}: {signal.budget.steps(b, signal.data.n_train()):,}" for b in signal.batch_sizes)
    assert f"    train-to-target caps (updates per run): {caps}" in out.splitlines()
    assert "    learning rate tuned per batch size: up to 6 runs a cell (3 + up to 1 rates x 1 tuning seed, then the " \
           "measured seeds)" in out.splitlines()


def test_a_huge_budget_warns_naming_the_costliest_cells(capsys, tmp_path: Path):
    raw = copy.deepcopy(TINY)
    raw["studies"]["tiny_ehr"]["budget"] = {"unit": "epochs", "amount": 1e9}
    path = tmp_path / "huge.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(path), "--rates", str(RATES)]) == 0  # a warning, not an error
    err = capsys.readouterr().err
    assert f"warning: {path} is estimated at" in err and "above warn_above_hours (2 h)" in err
    assert "The costliest cells: tiny_ehr batch size 1 (2 runs x 192,000,000,000 steps" in err


def test_the_threshold_is_a_setting(capsys, tmp_path: Path):
    raw = copy.deepcopy(TINY)
    raw["warn_above_hours"] = 1e-6
    path = tmp_path / "strict.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(path), "--rates", str(RATES)]) == 0
    assert "above warn_above_hours (1e-06 h)" in capsys.readouterr().err
    raw["warn_above_hours"] = 0
    path.write_text(yaml.safe_dump(raw))
    assert main(["validate", str(path), "--rates", str(RATES)]) == 2
    assert "field 'warn_above_hours'" in capsys.readouterr().err


def test_a_bad_rates_file_is_a_clear_error(capsys, tmp_path: Path):
    bad = tmp_path / "rates.json"
    bad.write_text(json.dumps({"device": "x", "kinds": {"dense_ae": {"step_s": 0.1, "param_s": 1e-9, "mac_s": 1e-9}}}))
    assert main(["validate", str(ROOT / "tests/config/tiny.yaml"), "--rates", str(bad)]) == 2
    assert f"{bad}: no rate for model kind" in capsys.readouterr().err
    bad.write_text("{}")
    assert main(["validate", str(ROOT / "tests/config/tiny.yaml"), "--rates", str(bad)]) == 2
    assert f"{bad}: not a rates file" in capsys.readouterr().err


def test_calibration_runs_once_and_is_cached(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(cost, "CALIBRATION_BLOCKS", 2)
    first = cost.machine_rates("cpu", {"mlp"})
    rate = first.kinds["mlp"]
    assert min(rate.step_s, rate.param_s, rate.mac_s) >= 0
    assert rate.step(1, *cost.model_work(*cost.REFERENCE["mlp"][1], 10)) > 0
    assert json.loads((tmp_path / "batchlab/rates.json").read_text())
    monkeypatch.setattr(cost, "calibrate", lambda kind, device: pytest.fail("calibrated again"))
    assert cost.machine_rates("cpu", {"mlp"}).kinds["mlp"] == rate
    monkeypatch.setattr(cost, "machine_key", lambda setting: "another machine")
    with pytest.raises(pytest.fail.Exception):
        cost.machine_rates("cpu", {"mlp"})


def test_a_cached_rate_of_an_older_format_is_calibrated_again(tmp_path: Path, monkeypatch):
    """A cache written by an earlier version (other fields) must not stop every run with a TypeError."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    stale = {"device": "cpu", "measured": "2026-01-01", "kinds": {"mlp": {"mac_s": 1e-10, "step_s": 1e-4}}}
    (tmp_path / "batchlab").mkdir()
    (tmp_path / "batchlab/rates.json").write_text(json.dumps({cost.machine_key("cpu"): stale}))
    fresh = cost.Rate(step_s=1.0, param_s=2.0, mac_s=3.0)
    monkeypatch.setattr(cost, "calibrate", lambda kind, device: fresh)
    assert cost.machine_rates("cpu", {"mlp"}).kinds["mlp"] == fresh
    assert json.loads((tmp_path / "batchlab/rates.json").read_text())[cost.machine_key("cpu")]["kinds"]["mlp"] == vars(fresh)


def test_a_grids_caps_are_printed_once_per_set_of_cells_that_share_them():
    """Cells of one training-set size share their caps in epochs; a cap in samples is the same for every cell."""
    study = {
        "data": {"name": "mnist1d", "n_samples": 4000}, "model": {"kind": "mlp", "hidden": [16]},
        "optim": {"name": "sgd", "lr": 0.05}, "budget": {"unit": "epochs", "amount": 1}, "batch_sizes": [4, 16],
        "seeds": [0, 1], "scaling": {"train_samples": [400, 1600], "width_factors": [0.5, 2]},
        "to_target": {"kind": "baseline_ratio", "value": 0.7, "cap": {"unit": "epochs", "amount": 2}},
    }
    cfg = validate_config({"studies": {"g": study}})
    rates = cost.read_rates(RATES)
    lines, _ = cost.describe(cfg, cost.estimate(cfg, rates), rates, "config.yaml")
    caps = [line.strip() for line in lines if "train-to-target caps" in line]
    assert caps == [
        "train-to-target caps of g-n400-w0p5, g-n400-w2 (updates per run): batch size 4: 200, batch size 16: 50",
        "train-to-target caps of g-n1600-w0p5, g-n1600-w2 (updates per run): batch size 4: 800, batch size 16: 200",
    ]
    study["to_target"]["cap"] = {"unit": "samples", "amount": 3200}
    cfg = validate_config({"studies": {"g": study}})
    lines, _ = cost.describe(cfg, cost.estimate(cfg, rates), rates, "config.yaml")
    assert [line.strip() for line in lines if "train-to-target caps" in line] == [
        "train-to-target caps (updates per run): batch size 4: 800, batch size 16: 200"]
