"""The spread-knee test (batchlab.analysis.spread_shape) on curves whose shape is known."""

import math

import numpy as np
import pytest

from batchlab.analysis.spread_shape import flattening_test, knee_fit

SIZES = 2.0 ** np.arange(11)  # 1 .. 1024


def table(curve, sd: float, seeds: int = 3, data_seed: int = 0, sizes=SIZES) -> np.ndarray:
    """[n_sizes, seeds] log spread: curve(log B) plus independent Gaussian noise per run."""
    rng = np.random.default_rng(data_seed)
    return curve(np.log(sizes))[:, None] + sd * rng.standard_normal((len(sizes), seeds))


def stick(before: float, after: float, knee: float, level: float = 0.0):
    k = math.log(knee)
    return lambda x: level + before * np.minimum(x - k, 0) + after * np.maximum(x - k, 0)


def brute_force(log2_sizes: np.ndarray, y: np.ndarray) -> dict:
    """Reference broken stick: np.linalg.lstsq on an explicit design matrix per candidate knee, smallest rss wins."""
    order = np.argsort(log2_sizes)
    l2, y = log2_sizes[order], y[order]
    x = l2 * math.log(2)
    interior = list(l2[1:-1])
    candidates = sorted(interior + [(a + b) / 2 for a, b in zip(interior[:-1], interior[1:])])
    best = None
    for k2 in candidates:
        k = k2 * math.log(2)
        design = np.array([[1.0, min(xi - k, 0.0), max(xi - k, 0.0)] for xi in x])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        rss = float(np.sum((y - design @ coef) ** 2))
        if best is None or rss < best["rss"]:
            best = {"knee": 2.0**k2, "level": coef[0], "slope_before": coef[1], "slope_after": coef[2], "rss": rss}
    line = np.column_stack([np.ones_like(x), x])
    coef, *_ = np.linalg.lstsq(line, y, rcond=None)
    best.update(line_slope=coef[1], line_rss=float(np.sum((y - line @ coef) ** 2)))
    return best


@pytest.mark.parametrize("data_seed", range(4))
def test_one_power_law_has_equal_slopes_and_is_not_replicated(data_seed):
    result = flattening_test(SIZES, table(lambda x: -1.0 - 0.5 * x, 0.01, data_seed=data_seed))
    assert result["slope_before"] == pytest.approx(-0.5, abs=0.05)
    assert result["slope_after"] == pytest.approx(-0.5, abs=0.05)
    assert result["verdict"] == "not replicated"
    assert -0.25 < result["low"] <= result["estimate"] <= result["high"] < 0.25
    assert result["statistic"] == "spread_knee" and result["n_x"] == 11 and result["n_seeds"] == 3


@pytest.mark.parametrize("data_seed", range(4))
def test_a_planted_knee_is_found_and_replicated(data_seed):
    result = flattening_test(SIZES, table(stick(-0.6, 0.0, 64.0), 0.02, data_seed=data_seed))
    assert 32 <= result["knee"] <= 128
    assert result["estimate"] == pytest.approx(0.6, abs=0.1)
    assert result["verdict"] == "replicated"
    assert result["p_value"] <= 0.05 and result["low"] > 0


def test_a_fall_then_a_level_last_doubling_is_replicated():
    """The case one slope against -1/2 reads "not replicated": a fall at -0.65, then level over the last doubling."""
    result = flattening_test(SIZES, table(stick(-0.65, 0.0, 512.0), 0.02))
    assert result["knee"] == pytest.approx(512, rel=0.5)
    assert result["verdict"] == "replicated"


@pytest.mark.parametrize("sd", [0.02, 0.1])
def test_a_rising_curve_is_not_replicated(sd):
    result = flattening_test(SIZES, table(lambda x: 0.3 * x, sd))
    assert result["verdict"] == "not replicated"
    assert "rises" in result["detail"]


@pytest.mark.parametrize("down", [-0.3, -0.5])
@pytest.mark.parametrize("sd", [0.02, 0.05, 0.1])
@pytest.mark.parametrize("data_seed", range(3))
def test_rise_then_fall_is_never_replicated(down, sd, data_seed):
    """The EHR case: the spread grows 1.64x from B = 1 to 8, then falls."""
    up = math.log(1.64) / math.log(8)
    curve = stick(up, down, 8.0, level=math.log(1.64))
    result = flattening_test(SIZES, table(curve, sd, data_seed=data_seed))
    assert result["verdict"] != "replicated"
    if sd == 0.02:
        assert result["verdict"] == "not replicated"


@pytest.mark.parametrize("knee", [32.0, math.sqrt(32 * 64), 4.0])
def test_knee_fit_is_exact_on_noiseless_input_and_matches_brute_force(knee):
    sizes = 2.0 ** np.arange(9)  # 1 .. 256
    y = stick(-0.55, 0.05, knee, level=-2.0)(np.log(sizes))
    shuffled = np.random.default_rng(3).permutation(len(sizes))
    fit = knee_fit(np.log2(sizes)[shuffled], y[shuffled])
    ref = brute_force(np.log2(sizes), y)
    assert fit["knee"] == pytest.approx(knee, rel=1e-9)
    assert fit["slope_before"] == pytest.approx(-0.55, rel=1e-9)
    assert fit["slope_after"] == pytest.approx(0.05, rel=1e-9)
    assert fit["level"] == pytest.approx(-2.0, rel=1e-9)
    assert fit["rss"] == pytest.approx(0.0, abs=1e-20)
    for key in ("knee", "level", "slope_before", "slope_after", "line_slope", "line_rss"):
        assert fit[key] == pytest.approx(ref[key], rel=1e-9), key


def test_knee_fit_matches_brute_force_on_noisy_input():
    rng = np.random.default_rng(7)
    l2 = np.arange(12.0)
    y = -0.4 * l2 + 0.3 * rng.standard_normal(12)
    fit, ref = knee_fit(l2, y), brute_force(l2, y)
    for key in ("knee", "level", "slope_before", "slope_after", "rss", "line_slope", "line_rss"):
        assert fit[key] == pytest.approx(ref[key], rel=1e-9), key


def test_the_same_seed_gives_the_same_result():
    data = table(stick(-0.4, -0.1, 128.0), 0.1)
    a, b = flattening_test(SIZES, data, seed=5), flattening_test(SIZES, data, seed=5)
    other = flattening_test(SIZES, data, seed=6)
    assert a == b
    assert (a["low"], a["high"], a["p_value"]) != (other["low"], other["high"], other["p_value"])
    assert a["estimate"] == other["estimate"]


def test_fewer_than_four_batch_sizes_is_inconclusive():
    result = flattening_test(SIZES[:3], table(lambda x: -0.5 * x, 0.01, sizes=SIZES[:3]))
    assert result["verdict"] == "inconclusive"
    assert "3 batch sizes" in result["detail"]
    assert math.isnan(result["estimate"])


def test_batch_sizes_without_a_finite_run_do_not_count():
    data = table(lambda x: -0.5 * x, 0.01, sizes=SIZES[:5])
    data[1, :] = np.nan
    data[3, :] = -np.inf
    data[0, 1] = np.nan
    result = flattening_test(SIZES[:5], data)
    assert result["verdict"] == "inconclusive" and result["n_x"] == 3
    assert "3 batch sizes" in result["detail"]


def test_nan_runs_are_left_out_of_the_seed_means():
    data = table(stick(-0.6, 0.0, 64.0), 0.02)
    data[2, 0] = data[7, 2] = np.nan
    result = flattening_test(SIZES, data)
    assert result["verdict"] == "replicated" and result["n_x"] == 11


def test_one_seed_at_four_sizes_has_no_noise_estimate():
    result = flattening_test(SIZES[:4], table(lambda x: -0.5 * x, 0.01, seeds=1, sizes=SIZES[:4]))
    assert result["verdict"] == "inconclusive"
    assert "noise" in result["detail"]


def test_the_calibration_benchmark_runs_and_counts_every_table():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "spread_shape_calibration.py"
    spec = importlib.util.spec_from_file_location("spread_shape_calibration", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.calibration_rows(reps=2, seed=1, n_sim=50)
    assert len(rows) == 42
    assert all(r["replicated"] + r["not_replicated"] + r["inconclusive"] == pytest.approx(1.0) for r in rows)
    assert bench.wilson(0, 200)[1] == pytest.approx(0.0188, abs=1e-4)
    assert "smallest T" in bench.markdown(rows)
