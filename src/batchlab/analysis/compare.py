"""Two finished runs of one config side by side (for example a GPU run and a CPU run): how far apart
every metric of the run tables is, and which scorecard verdicts differ.

Runs are matched on (study, batch size, learning rate, seed); timings and the columns that say where
and how a run trained are left out. Relative differences are |a - b| / max(|b|, 1e-12).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from batchlab.finished_run import scorecard_files, table_files

KEYS = ["study", "batch_size", "base_lr", "seed"]
NOT_COMPARED = {
    "wall_time_s", "samples_per_s", "peak_mem_mb", "peak_mem_kind", "device", "torch_threads", "engine",
    "runs_together", "micro_batch_size", "accumulation_steps", "cuda_graph", "cuda_graph_fallback", "resumed_at_step",
}
VERDICT_COLUMNS = ["page", "claim", "verdict", "estimate", "low", "high"]


def read_tables(paths: list[Path]) -> pd.DataFrame:
    tables = [pd.read_parquet(p) for p in paths]
    if not tables:
        raise SystemExit("no run tables to compare")
    return pd.concat(tables, ignore_index=True)


def read_scorecards(paths: list[Path]) -> pd.DataFrame:
    """Every claim of the given scorecards, with the report page (the scorecard's folder) it belongs to."""
    cards = [pd.read_csv(p).assign(page=Path(p).parent.name) for p in paths if Path(p).stat().st_size]
    cards = [c for c in cards if not c.empty]
    return pd.concat(cards, ignore_index=True) if cards else pd.DataFrame(columns=["page", "claim", "verdict"])


def run_tables(folder: Path) -> pd.DataFrame:
    tables = table_files(folder)
    if not tables:
        raise SystemExit(f"{folder}: no results/*/table.parquet")
    return read_tables(tables)


def scorecards(folder: Path) -> pd.DataFrame:
    return read_scorecards(scorecard_files(folder))


def devices(table: pd.DataFrame) -> list[str]:
    """The devices a run's cells trained on, as its run tables record them."""
    return sorted(table["device"].astype(str).unique()) if "device" in table else []


def metric_differences(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """One row per (study, metric): runs compared, median and largest relative difference, and where."""
    joined = a.merge(b, on=KEYS, suffixes=("_a", "_b"))
    rows = []
    for col in sorted(set(a.columns) & set(b.columns) - set(KEYS) - NOT_COMPARED):
        if not (pd.api.types.is_numeric_dtype(a[col]) and pd.api.types.is_numeric_dtype(b[col])):
            continue
        if pd.api.types.is_bool_dtype(a[col]):
            continue
        for study, g in joined.groupby("study"):
            x, y = g[f"{col}_a"].astype(float).to_numpy(), g[f"{col}_b"].astype(float).to_numpy()
            both = np.isfinite(x) & np.isfinite(y)
            if not both.any():
                continue
            rel = np.abs(x[both] - y[both]) / np.maximum(np.abs(y[both]), 1e-12)
            at = g[both].iloc[int(np.argmax(rel))]
            rows.append({
                "study": study, "metric": col, "runs": int(both.sum()),
                "finite_in_one_only": int((np.isfinite(x) != np.isfinite(y)).sum()),
                "median_rel_diff": float(np.median(rel)), "max_rel_diff": float(rel.max()),
                "max_at": f"B={int(at['batch_size'])}, seed={int(at['seed'])}",
            })
    return pd.DataFrame(rows)


def metric_summary(diffs: pd.DataFrame) -> pd.DataFrame:
    """One row per metric over all studies, the largest difference first."""
    if diffs.empty:
        return pd.DataFrame(columns=["metric", "studies", "runs", "median_rel_diff", "max_rel_diff"])
    return diffs.groupby("metric").agg(
        studies=("study", "nunique"), runs=("runs", "sum"), median_rel_diff=("median_rel_diff", "median"),
        max_rel_diff=("max_rel_diff", "max"),
    ).reset_index().sort_values("max_rel_diff", ascending=False, kind="stable")


def verdict_changes(a: pd.DataFrame, b: pd.DataFrame, labels: tuple[str, str]) -> pd.DataFrame:
    """Every claim whose verdict is not the same in both runs, a claim scored in one run only included."""
    cols = lambda c: [k for k in VERDICT_COLUMNS if k in c.columns]  # noqa: E731
    joined = a[cols(a)].merge(b[cols(b)], on=["page", "claim"], how="outer", suffixes=(f"_{labels[0]}", f"_{labels[1]}"))
    return joined[joined[f"verdict_{labels[0]}"] != joined[f"verdict_{labels[1]}"]]


@dataclass
class Comparison:
    """Run a against run b: runs matched, each metric's differences and the verdicts that differ."""

    labels: tuple[str, str]
    runs: tuple[int, int]
    matched: int
    claims: tuple[int, int]
    devices: tuple[list[str], list[str]]
    differences: pd.DataFrame
    changed: pd.DataFrame

    @property
    def summary(self) -> pd.DataFrame:
        return metric_summary(self.differences)


def compare(a: pd.DataFrame, b: pd.DataFrame, cards_a: pd.DataFrame, cards_b: pd.DataFrame,
            labels: tuple[str, str]) -> Comparison:
    """Compare two runs' tables and scorecards; b is the reference the relative differences are taken to."""
    return Comparison(
        labels=labels, runs=(len(a), len(b)), matched=len(a.merge(b, on=KEYS)), claims=(len(cards_a), len(cards_b)),
        devices=(devices(a), devices(b)), differences=metric_differences(a, b),
        changed=verdict_changes(cards_a, cards_b, labels),
    )


def compare_folders(a_dir: Path, b_dir: Path, labels: tuple[str, str]) -> Comparison:
    return compare(run_tables(a_dir), run_tables(b_dir), scorecards(a_dir), scorecards(b_dir), labels)


def report(a_dir: Path, b_dir: Path, labels: tuple[str, str]) -> str:
    """The comparison of two working folders as Markdown."""
    return markdown(compare_folders(a_dir, b_dir, labels))


def markdown(c: Comparison) -> str:
    a, b = c.labels
    out = [f"# {a} against {b}", "",
           f"{c.matched} runs matched ({c.runs[0]} in {a}, {c.runs[1]} in {b}); "
           f"{c.claims[0]} scored claims in {a}, {c.claims[1]} in {b}.", "",
           "## Verdicts that differ", ""]
    if c.changed.empty:
        out += ["None: every claim has the same verdict in both runs.", ""]
    else:
        out += [c.changed.to_markdown(index=False), ""]
    out += ["## Differences per metric (relative to " + b + ")", ""]
    if not c.differences.empty:
        out += [_table(c.summary), "", "### Per study", "", _table(c.differences)]
    return "\n".join(out) + "\n"


def _table(df: pd.DataFrame) -> str:
    fmt = df.copy()
    for c in fmt.columns:
        if c.endswith("rel_diff"):
            fmt[c] = fmt[c].map(lambda v: f"{v:.2e}")
    return fmt.to_markdown(index=False)  # tabulate comes with snakemake
