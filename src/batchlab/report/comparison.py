"""reports/comparison.html: this run against another finished run of the same config (`compare_with`),
for example the CPU run of a study trained on a GPU: every metric's differences and each claim whose
verdict differs. The index lists those claims from comparison.json, so it needs no pandas."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from batchlab import io
from batchlab.analysis.compare import Comparison, compare, read_scorecards, read_tables
from batchlab.finished_run import scorecard_files, table_files
from batchlab.report.html import render

LABELS = ("this", "other")


def compare_with(tables: list[Path], cards: list[Path], other: Path) -> Comparison:
    """This run (its config's run tables and scorecards) against the finished run in the folder `other`."""
    return compare(
        read_tables(tables), read_tables(table_files(other)), read_scorecards(cards), read_scorecards(scorecard_files(other)),
        LABELS,
    )


def summary(c: Comparison, other: str) -> dict:
    """What the index shows: the other run, the devices of both, runs matched and the flipped verdicts."""
    return {
        "other": other, "devices": {"this": c.devices[0], "other": c.devices[1]},
        "runs": {"this": c.runs[0], "other": c.runs[1], "matched": c.matched},
        "claims": {"this": c.claims[0], "other": c.claims[1]}, "verdicts_differ": _rows(c.changed),
    }


def write_comparison(c: Comparison, other: str, out_dir: str | Path) -> None:
    """comparison.html, comparison.json (for the index) and comparison_metrics.csv (every study and metric)."""
    out_dir = Path(out_dir)
    facts = summary(c, other)
    html = render("comparison.html", facts=facts, summary=_rows(c.summary), differences=_rows(c.differences))
    io.write_text(html, out_dir / "comparison.html")
    io.write_json(facts, out_dir / "comparison.json")
    io.write_csv(c.differences, out_dir / "comparison_metrics.csv")


def _rows(df: pd.DataFrame) -> list[dict]:
    return [{k: _plain(v) for k, v in row.items()} for row in df.to_dict("records")]


def _plain(value: object) -> object:
    """JSON-ready: numpy scalars as Python numbers, missing values as None."""
    if hasattr(value, "item"):
        value = value.item()
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value
