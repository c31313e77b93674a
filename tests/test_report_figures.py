"""A study page's figures drawn in forked processes: the same files as drawn in one, and a failure is not lost."""

import pandas as pd
import pytest

from batchlab.report import figures


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
