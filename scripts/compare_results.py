"""Compare two pipeline runs' results: every non-timing column of every table, and the scorecard verdicts.

Two working folders (or their results/ folders) in; out, per table and column, how many values are
bitwise identical (NaN equal to NaN) and the largest absolute and relative differences, and every claim
whose verdict changed. Per-cell tables (results/{study}/bs{B}/downstream.parquet, ...) and study-wide
ones (results/{study}/downstream.parquet, ...) are compared alike, so runs before and after a change of
layout compare too; so do a CPU and a GPU run (expect differences there, and read their size).

    python scripts/compare_results.py RUN_A RUN_B              # exit 1 if any compared value differs
    python scripts/compare_results.py RUN_A RUN_B --report-only
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd

# Measured, not computed: they differ from run to run (peak_mem_kind: how peak_mem_mb was measured,
# which differs between a job started warm and one started cold).
TIMING = ("wall_time_s", "samples_per_s", "peak_mem_mb", "peak_mem_kind")
KEYS = ("study", "batch_size", "seed", "base_lr", "lr", "embedding", "fraction", "probe_batch_size", "step", "quantity", "fold")


def results_dir(path: Path) -> Path:
    return path / "results" if (path / "results").is_dir() else path


def study_tables(results: Path) -> dict[tuple[str, str], pd.DataFrame]:
    """(study, table name) -> the table, per-cell files of one name concatenated in batch-size order."""
    tables: dict[tuple[str, str], pd.DataFrame] = {}
    for study in sorted(p for p in results.iterdir() if p.is_dir()):
        for path in sorted(study.glob("*.parquet")):
            tables[study.name, path.stem] = pd.read_parquet(path)
        cells = sorted(study.glob("bs*/*.parquet"), key=lambda p: (p.name, int(re.sub(r"\D", "", p.parent.name))))
        by_name: dict[str, list[pd.DataFrame]] = {}
        for path in cells:
            by_name.setdefault(path.stem, []).append(pd.read_parquet(path))
        for name, frames in by_name.items():
            if (study.name, name) not in tables:
                frames = [f for f in frames if not f.empty]
                tables[study.name, name] = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return tables


def aligned(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Both tables sorted by their shared key columns (stable), and those keys."""
    keys = [k for k in KEYS if k in a and k in b]
    if keys:
        a = a.sort_values(keys, kind="stable", ignore_index=True)
        b = b.sort_values(keys, kind="stable", ignore_index=True)
    return a, b, keys


def compare_column(x: pd.Series, y: pd.Series) -> dict:
    same = (x == y) | (x.isna() & y.isna())
    row = {"n": len(x), "identical": int(same.sum()), "max_abs_diff": np.nan, "max_rel_diff": np.nan}
    if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(x):
        xf, yf = x.astype(float).to_numpy(), y.astype(float).to_numpy()
        diff = np.abs(xf - yf)
        finite = np.isfinite(diff)
        if finite.any():
            row["max_abs_diff"] = float(diff[finite].max())
            scale = np.maximum(np.abs(xf), np.abs(yf))[finite]
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.where(scale > 0, diff[finite] / scale, 0.0)
            row["max_rel_diff"] = float(rel.max())
    return row


def compare(a_dir: Path, b_dir: Path, ignore: tuple[str, ...]) -> tuple[pd.DataFrame, list[str]]:
    """One row per compared (study, table, column), and problems that stop a comparison (missing tables, rows)."""
    a_tables, b_tables = study_tables(results_dir(a_dir)), study_tables(results_dir(b_dir))
    rows, problems = [], []
    for key in sorted(set(a_tables) | set(b_tables)):
        if key not in a_tables or key not in b_tables:
            problems.append(f"{key[0]}/{key[1]}: only in {'A' if key in a_tables else 'B'}")
            continue
        a, b, keys = aligned(a_tables[key], b_tables[key])
        if len(a) != len(b):
            problems.append(f"{key[0]}/{key[1]}: {len(a)} rows in A, {len(b)} in B")
            continue
        if keys and not a[keys].equals(b[keys]):
            problems.append(f"{key[0]}/{key[1]}: the rows differ in their keys {keys}")
            continue
        for col in sorted(set(a.columns) ^ set(b.columns)):
            problems.append(f"{key[0]}/{key[1]}: column {col!r} only in {'A' if col in a else 'B'}")
        for col in [c for c in a.columns if c in b.columns and c not in ignore and c not in keys]:
            rows.append({"study": key[0], "table": key[1], "column": col, **compare_column(a[col], b[col])})
    return pd.DataFrame(rows), problems


def verdicts(run: Path) -> pd.DataFrame:
    frames = [pd.read_csv(p).assign(study=p.parent.name) for p in sorted((run / "reports").glob("*/scorecard.csv"))]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True)[["study", "claim", "verdict"]] if frames else pd.DataFrame()


def changed_verdicts(a_dir: Path, b_dir: Path) -> pd.DataFrame:
    a, b = verdicts(a_dir), verdicts(b_dir)
    if a.empty and b.empty:
        return pd.DataFrame()
    both = a.merge(b, on=["study", "claim"], how="outer", suffixes=("_a", "_b"))
    return both[both["verdict_a"].fillna("") != both["verdict_b"].fillna("")]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a", type=Path, help="first run's working folder (or its results/)")
    p.add_argument("b", type=Path, help="second run's working folder (or its results/)")
    p.add_argument("--ignore", nargs="*", default=list(TIMING), help=f"columns not compared (default: {', '.join(TIMING)})")
    p.add_argument("--report-only", action="store_true", help="exit 0 even when values differ")
    args = p.parse_args(argv)

    table, problems = compare(args.a, args.b, tuple(args.ignore))
    verdict_changes = changed_verdicts(args.a, args.b)
    differing = table[table["identical"] < table["n"]] if not table.empty else table
    n_tables = table[["study", "table"]].drop_duplicates().shape[0] if not table.empty else 0
    print(f"compared {len(table)} columns of {n_tables} tables ({int(table['n'].sum()) if not table.empty else 0} values); "
          f"ignored: {', '.join(args.ignore) or 'none'}")
    if differing.empty:
        print("every compared value is identical bit for bit")
    else:
        print(f"{len(differing)} columns differ:")
        print(differing.to_string(index=False))
    for problem in problems:
        print(f"not compared: {problem}")
    if verdict_changes.empty:
        print("scorecard verdicts: none changed" if not verdicts(args.a).empty else "scorecard verdicts: none found")
    else:
        print("scorecard verdicts that changed:")
        print(verdict_changes.to_string(index=False))
    same = differing.empty and not problems and verdict_changes.empty
    return 0 if same or args.report_only else 1


if __name__ == "__main__":
    sys.exit(main())
