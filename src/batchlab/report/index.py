"""reports/index.html: one page that links every study.

It reads only the studies' summary.json files, which carry their scorecard rows and the rules of
the statistics behind them, and with `compare_with` the comparison's comparison.json (the verdicts
that differ from the other run's), so this step needs neither pandas nor scipy.
"""

from __future__ import annotations

import json
from pathlib import Path

from collections import Counter

from batchlab import io
from batchlab.report.html import render


def build_index(summary_paths: list[str | Path], out: str | Path, comparison: str | Path | None = None) -> None:
    studies = [json.loads(Path(p).read_text()) for p in summary_paths]
    scorecard = [row for s in studies for row in s.get("scorecard", [])]
    counts = Counter(row["verdict"] for row in scorecard)
    html = render(
        "index.html",
        studies=studies,
        any_synthetic=any(s["synthetic"] for s in studies),
        scorecard=scorecard,
        counts=counts,
        statistics={k: s["statistics"][k] for s in studies for k in s.get("statistics", {})},
        comparison=json.loads(Path(comparison).read_text()) if comparison else None,
    )
    io.write_text(html, out)
