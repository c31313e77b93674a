"""Two runs compared: known differences come out at their size, and a changed verdict is listed."""

import json

import pandas as pd
import pytest

from batchlab.analysis.compare import metric_differences, report


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


def _summary(folder):
    """A study's summary.json as the index reads it, with no claims of its own."""
    path = folder / "summary.json"
    path.write_text(json.dumps({"name": "s", "dataset": "d", "synthetic": False, "model": "m", "kind": "study",
                                "batch_sizes": [1, 4], "n_runs": 4, "best_batch_size": 1, "description": "",
                                "metric": "roc_auc", "scorecard": []}))
    return path


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


def test_the_report_lists_the_flipped_verdict_and_a_claim_scored_in_one_run_only(tmp_path):
    """This run (its own file lists) against another folder: the index and the comparison page say which
    claims differ, with both verdicts; a claim the other run did not score is listed as not scored there."""
    from batchlab.finished_run import scorecard_files, table_files
    from batchlab.report.comparison import compare_with, write_comparison
    from batchlab.report.index import build_index

    this = _run(tmp_path / "this", [0.5, 0.4, 0.2 * 1.001, 0.1], "inconclusive")
    other = _run(tmp_path / "other", [0.5, 0.4, 0.2, 0.1], "replicated")
    pd.DataFrame({"claim": ["c1", "c2", "c3"], "verdict": ["replicated", "inconclusive", "replicated"],
                  "estimate": [0.5, 0.1, 2.0]}).to_csv(this / "reports/s/scorecard.csv", index=False)
    found = compare_with(table_files(this), scorecard_files(this), other)
    write_comparison(found, "other", tmp_path / "out")
    facts = json.loads((tmp_path / "out/comparison.json").read_text())
    assert facts["runs"] == {"this": 4, "other": 4, "matched": 4} and facts["devices"] == {"this": ["x"], "other": ["x"]}
    flips = {r["claim"]: (r["verdict_this"], r["verdict_other"]) for r in facts["verdicts_differ"]}
    assert flips == {"c2": ("inconclusive", "replicated"), "c3": ("replicated", None)}
    metrics = pd.read_csv(tmp_path / "out/comparison_metrics.csv").set_index("metric")
    assert metrics.loc["val_loss", "max_rel_diff"] == pytest.approx(1e-3)

    summary = _summary(tmp_path)
    build_index([summary], tmp_path / "out/index.html", tmp_path / "out/comparison.json")
    index = (tmp_path / "out/index.html").read_text()
    assert "Against another run" in index and "The verdicts of 2 claims differ" in index
    assert '<td class="l">c2</td><td class="l">inconclusive</td>' in index and "not scored" in index
    page = (tmp_path / "out/comparison.html").read_text()
    assert '<td class="l">c3</td><td class="l">replicated</td><td>2</td><td class="l">not scored</td>' in page


def test_an_index_without_a_comparison_has_no_comparison_section(tmp_path):
    from batchlab.report.index import build_index

    summary = _summary(tmp_path)
    build_index([summary], tmp_path / "index.html")
    assert "Against another run" not in (tmp_path / "index.html").read_text()
