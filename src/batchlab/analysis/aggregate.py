"""Join the cells of a study into one tidy table: a row per run, a column per variable."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

RUN_KEY = ["study", "batch_size", "seed"]


def read_all(paths: list[str | Path]) -> pd.DataFrame:
    frames = [pd.read_parquet(p) for p in paths]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def join_runs(runs: pd.DataFrame, downstream: pd.DataFrame) -> pd.DataFrame:
    """Runs with their downstream metrics (prefixed `svm_`), sorted by batch size and seed."""
    if downstream.empty:
        return runs.sort_values(["batch_size", "seed"], ignore_index=True)
    metrics = downstream[downstream["embedding"] == "autoencoder"].drop(columns=["embedding", "lr"], errors="ignore")
    metrics = metrics.rename(columns={c: f"svm_{c}" for c in metrics.columns if c not in RUN_KEY})
    table = runs.merge(metrics, on=RUN_KEY, how="left", validate="one_to_one")
    return table.sort_values(["batch_size", "seed"], ignore_index=True)


def summary_by_batch_size(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Mean, standard deviation and count over seeds of each column, per batch size (diverged runs excluded)."""
    ok = table[~table["diverged"]] if "diverged" in table else table
    cols = [c for c in columns if c in ok]
    stats = ok.groupby("batch_size")[cols].agg(["mean", "std", "count"])
    stats.columns = [f"{c}_{s}" for c, s in stats.columns]
    diverged = table.groupby("batch_size")["diverged"].sum().rename("n_diverged") if "diverged" in table else None
    out = stats.reset_index()
    if diverged is not None:
        out = out.merge(diverged.reset_index(), on="batch_size", how="right")
    return out
