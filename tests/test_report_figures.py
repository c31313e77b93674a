"""A study page's figures drawn in forked processes: the same files as drawn in one, and a failure is not lost."""

import pandas as pd
import pytest

from batchlab.report import figures, recommendation_figure


def _table() -> pd.DataFrame:
    rows = [{"batch_size": b, "seed": s, "samples_per_s": 100.0 * b ** 0.5 + s} for b in (1, 4, 16) for s in (0, 1)]
    return pd.DataFrame(rows)


def _broken(path) -> None:
    raise ValueError(f"cannot draw {path.name}")


def test_figures_drawn_by_two_processes_are_the_files_drawn_by_one(tmp_path):
    for workers in (1, 2):
        calls = [(figures.throughput_vs_batch, (_table(), tmp_path / f"w{workers}" / f"{i}.png", f"t{i}")) for i in range(3)]
        figures.draw_all(calls, workers)
    for i in range(3):
        assert (tmp_path / f"w1/{i}.png").read_bytes() == (tmp_path / f"w2/{i}.png").read_bytes()
    assert (tmp_path / "w1/0.png").read_bytes() != (tmp_path / "w1/1.png").read_bytes()  # the titles differ


def test_a_figure_that_fails_in_a_worker_fails_the_report(tmp_path):
    calls = [(figures.throughput_vs_batch, (_table(), tmp_path / "ok.png", "t")), (_broken, (tmp_path / "bad.png",))]
    with pytest.raises(ValueError, match="cannot draw bad.png"):
        figures.draw_all(calls, 2)
    assert not (tmp_path / "bad.png").exists()


def test_the_recommendation_figure_draws_an_answer_and_its_absence(tmp_path):
    import json

    from batchlab.analysis.recommend import recommend

    sizes = [1, 4, 16, 64, 256]
    steps = pd.DataFrame([{"batch_size": b, "seed": s, "steps": 100 * (1 + 16 / b), "reached": True}
                          for b in sizes for s in range(2)])
    runs = pd.DataFrame([{"batch_size": b, "seed": s, "samples_per_s": 50.0 * min(b, 64), "lr": 1e-3}
                         for b in sizes for s in range(2)])
    rec = json.loads(json.dumps(recommend(steps, runs, "cpu", "learning rate fixed")))  # as the page reads it back
    recommendation_figure.recommendation(rec, tmp_path / "yes.png", "t")
    none = json.loads(json.dumps(recommend(steps.assign(reached=False), runs, "cpu", "learning rate fixed")))
    recommendation_figure.recommendation(none, tmp_path / "no.png", "t")
    assert (tmp_path / "yes.png").stat().st_size > 0 and (tmp_path / "no.png").read_bytes() != (tmp_path / "yes.png").read_bytes()


def test_the_recommendation_figure_draws_a_mean_outside_its_seeds_range(tmp_path):
    """Each seed's time at its own run's throughput, the mean's at the median: the mean can fall outside them."""
    rec = {"available": True, "band": [4], "time_optimal_batch_size": 4, "sample_efficient_batch_size": 1,
           "memory": None, "table": [
               {"batch_size": 1, "time_s": 10.0, "time_s_low": 11.0, "time_s_high": 12.0, "samples": 100.0},
               {"batch_size": 4, "time_s": 5.0, "time_s_low": 4.0, "time_s_high": 4.5, "samples": 120.0}]}
    recommendation_figure.recommendation(rec, tmp_path / "r.png", "t")
    assert (tmp_path / "r.png").stat().st_size > 0
