"""reports/index.html: one page that links every study."""

from __future__ import annotations

import json
from pathlib import Path

from batchlab import io
from batchlab.report.html import render


def build_index(summary_paths: list[str | Path], out: str | Path) -> None:
    studies = [json.loads(Path(p).read_text()) for p in summary_paths]
    html = render("index.html", studies=studies, any_synthetic=any(s["synthetic"] for s in studies))
    io.write_text(html, out)
