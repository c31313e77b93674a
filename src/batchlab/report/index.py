"""reports/index.html: one page that links every study."""

from __future__ import annotations

import json
from pathlib import Path

from collections import Counter

from batchlab import io
from batchlab.claims import STATISTICS
from batchlab.report.html import render


def build_index(summary_paths: list[str | Path], out: str | Path) -> None:
    studies = [json.loads(Path(p).read_text()) for p in summary_paths]
    scorecard = [row for s in studies for row in s.get("scorecard", [])]
    counts = Counter(row["verdict"] for row in scorecard)
    html = render(
        "index.html",
        studies=studies,
        any_synthetic=any(s["synthetic"] for s in studies),
        scorecard=scorecard,
        counts=counts,
        statistics={k: STATISTICS[k] for k in dict.fromkeys(row["statistic"] for row in scorecard)},
    )
    io.write_text(html, out)
