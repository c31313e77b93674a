"""Where a finished run keeps what another run is compared with, relative to its working folder.

Imports nothing heavy: the config's check of `compare_with` and the workflow's inputs use it.
"""

from __future__ import annotations

from pathlib import Path

RUN_TABLES = "results/*/table.parquet"  # one per study
SCORECARDS = "reports/*/scorecard.csv"  # one per report page


def table_files(folder: str | Path) -> list[Path]:
    """A finished run's run tables, in name order."""
    return sorted(Path(folder).glob(RUN_TABLES))


def scorecard_files(folder: str | Path) -> list[Path]:
    """A finished run's scorecards, in name order."""
    return sorted(Path(folder).glob(SCORECARDS))
