"""Two finished runs of one config side by side (for example a GPU run and a CPU run): how far apart
every metric of the run tables is, and which scorecard verdicts differ.

Runs are matched on (study, batch size, learning rate, seed); timings and the columns that say where
and how a run trained are left out. Relative differences are |a - b| / max(|b|, 1e-12).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

KEYS = ["study", "batch_size", "base_lr", "seed"]
NOT_COMPARED = {
    "wall_time_s", "samples_per_s", "peak_mem_mb", "peak_mem_kind", "device", "torch_threads", "engine",
    "runs_together", "micro_batch_size", "accumulation_steps", "cuda_graph", "cuda_graph_fallback", "resumed_at_step",
}


def run_tables(folder: Path) -> pd.DataFrame:
    tables = [pd.read_parquet(p) for p in sorted(folder.glob("results/*/table.parquet"))]
    if not tables:
        raise SystemExit(f"{folder}: no results/*/table.parquet")
    return pd.concat(tables, ignore_index=True)


def scorecards(folder: Path) -> pd.DataFrame:
    cards = [pd.read_csv(p).assign(page=p.parent.name) for p in sorted(folder.glob("reports/*/scorecard.csv")) if p.stat().st_size]
    cards = [c for c in cards if not c.empty]
    return pd.concat(cards, ignore_index=True) if cards else pd.DataFrame(columns=["page", "claim", "verdict"])


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


def verdict_changes(a: pd.DataFrame, b: pd.DataFrame, labels: tuple[str, str]) -> pd.DataFrame:
    keep = ["page", "claim", "verdict", "estimate", "low", "high"]
    cols = lambda c: [k for k in keep if k in c.columns]  # noqa: E731
    joined = a[cols(a)].merge(b[cols(b)], on=["page", "claim"], how="outer", suffixes=(f"_{labels[0]}", f"_{labels[1]}"))
    return joined[joined[f"verdict_{labels[0]}"] != joined[f"verdict_{labels[1]}"]]


def report(a_dir: Path, b_dir: Path, labels: tuple[str, str]) -> str:
    a, b = run_tables(a_dir), run_tables(b_dir)
    diffs = metric_differences(a, b)
    ca, cb = scorecards(a_dir), scorecards(b_dir)
    changed = verdict_changes(ca, cb, labels)
    matched = len(a.merge(b, on=KEYS))
    out = [f"# {labels[0]} against {labels[1]}", "",
           f"{matched} runs matched ({len(a)} in {labels[0]}, {len(b)} in {labels[1]}); "
           f"{len(ca)} scored claims in {labels[0]}, {len(cb)} in {labels[1]}.", "",
           "## Verdicts that differ", ""]
    if changed.empty:
        out += ["None: every claim has the same verdict in both runs.", ""]
    else:
        out += [changed.to_markdown(index=False), ""]
    out += ["## Differences per metric (relative to " + labels[1] + ")", ""]
    if not diffs.empty:
        summary = diffs.groupby("metric").agg(
            studies=("study", "nunique"), runs=("runs", "sum"), median_rel_diff=("median_rel_diff", "median"),
            max_rel_diff=("max_rel_diff", "max"),
        ).reset_index().sort_values("max_rel_diff", ascending=False)
        out += [_table(summary), "", "### Per study", "", _table(diffs)]
    return "\n".join(out) + "\n"


def _table(df: pd.DataFrame) -> str:
    fmt = df.copy()
    for c in fmt.columns:
        if c.endswith("rel_diff"):
            fmt[c] = fmt[c].map(lambda v: f"{v:.2e}")
    return fmt.to_markdown(index=False)  # tabulate comes with snakemake
