"""scripts/compare_results.py on runs with known differences: layouts compare alike, changes are found."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from conftest import ROOT

spec = importlib.util.spec_from_file_location("compare_results", ROOT / "scripts/compare_results.py")
compare_results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_results)


def _run(root: Path, per_cell: bool, auc_bs4: float = 0.75, verdict: str = "replicated", wall: float = 1.0) -> Path:
    results = root / "results/s"
    results.mkdir(parents=True)
    table = pd.DataFrame(
        {"study": "s", "batch_size": [1, 1, 4, 4], "seed": [0, 1, 0, 1], "val_loss": [0.1, np.nan, 0.3, 0.4],
         "wall_time_s": [wall] * 4}
    )
    table.to_parquet(results / "table.parquet")
    downstream = pd.DataFrame({"study": "s", "batch_size": [1, 1, 4, 4], "seed": [0, 1, 0, 1], "roc_auc_mean": [0.5, 0.6, 0.7, auc_bs4]})
    if per_cell:
        for b, cell in downstream.groupby("batch_size"):
            (results / f"bs{b}").mkdir()
            cell.to_parquet(results / f"bs{b}/downstream.parquet")
    else:
        downstream.to_parquet(results / "downstream.parquet")
    (root / "reports/s").mkdir(parents=True)
    pd.DataFrame({"claim": ["c1", "c2"], "verdict": [verdict, "inconclusive"]}).to_csv(root / "reports/s/scorecard.csv")
    return root


def test_same_values_in_either_layout_are_identical(tmp_path: Path, capsys):
    a = _run(tmp_path / "a", per_cell=True)
    b = _run(tmp_path / "b", per_cell=False, wall=9.0)  # timings differ; they are not compared
    assert compare_results.main([str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "compared 2 columns of 2 tables" in out and "identical bit for bit" in out and "none changed" in out


def test_a_changed_value_and_verdict_are_reported(tmp_path: Path, capsys):
    a = _run(tmp_path / "a", per_cell=True)
    b = _run(tmp_path / "b", per_cell=False, auc_bs4=0.75 + 1e-12, verdict="not replicated")
    assert compare_results.main([str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "1 columns differ" in out and "roc_auc_mean" in out
    table, problems = compare_results.compare(a, b, compare_results.TIMING)
    row = table.set_index("column").loc["roc_auc_mean"]
    assert (row["n"], row["identical"]) == (4, 3) and row["max_abs_diff"] > 0
    assert not problems
    changed = compare_results.changed_verdicts(a, b)
    assert changed[["claim", "verdict_a", "verdict_b"]].values.tolist() == [["c1", "replicated", "not replicated"]]
    assert compare_results.main([str(a), str(b), "--report-only"]) == 0
