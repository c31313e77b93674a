"""Two runs compared: known differences come out at their size, and a changed verdict is listed."""

import pandas as pd
import pytest

from batchlab.compare import metric_differences, report


def _run(folder, val_loss, verdict):
    (folder / "results/s").mkdir(parents=True)
    (folder / "reports/s").mkdir(parents=True)
    pd.DataFrame({
        "study": "s", "batch_size": [1, 1, 4, 4], "base_lr": 1e-3, "seed": [0, 1, 0, 1],
        "val_loss": val_loss, "steps": [100, 100, 25, 25], "wall_time_s": [1.0, 2.0, 3.0, 4.0], "device": "x",
    }).to_parquet(folder / "results/s/table.parquet")
    pd.DataFrame({"claim": ["c1", "c2"], "verdict": ["replicated", verdict], "estimate": [0.5, 0.1]}).to_csv(
        folder / "reports/s/scorecard.csv", index=False
    )
    return folder


def test_identical_runs_differ_nowhere(tmp_path):
    a, b = (_run(tmp_path / n, [0.5, 0.4, 0.2, 0.1], "replicated") for n in "ab")
    text = report(a, b, ("gpu", "cpu"))
    assert "None: every claim has the same verdict in both runs." in text
    assert "4 runs matched" in text


def test_a_known_difference_and_a_flipped_verdict(tmp_path):
    a = _run(tmp_path / "a", [0.5, 0.4, 0.2 * 1.001, 0.1], "inconclusive")
    b = _run(tmp_path / "b", [0.5, 0.4, 0.2, 0.1], "replicated")
    diffs = metric_differences(pd.read_parquet(a / "results/s/table.parquet"), pd.read_parquet(b / "results/s/table.parquet"))
    row = diffs.set_index("metric").loc["val_loss"]
    assert row["max_rel_diff"] == pytest.approx(1e-3) and row["max_at"] == "B=4, seed=0" and row["median_rel_diff"] == 0
    assert set(diffs["metric"]) == {"val_loss", "steps"}  # timings and where-it-ran columns are left out
    text = report(a, b, ("gpu", "cpu"))
    assert "| s      | c2      | inconclusive" in text and "c1" not in text.split("## Differences")[0]
