"""The report of a scaling grid: B_crit per (training-set size, width) cell, its figure and the grid's claims."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from batchlab import io, provenance
from batchlab.analysis.verdict_rules import STATISTICS
from batchlab.config import Study
from batchlab.report import figures
from batchlab.report.html import render
from batchlab.analysis.scaling import analyse_grid, evaluate_scaling_claims, grid_protocol

CAPTION = (
    "Critical batch size B_crit of every cell of the grid, from the S(B) = S_min(1 + B_crit/B) fit to its seed-mean "
    "steps to target (target: {target}); bars: {level:.0%} bootstrap interval over seeds. Left: "
    "against training-set size, one line per width; right: against model parameters, one line per training-set "
    "size. Grey markers: cells whose B_crit is flagged (not a measurement), drawn at the edge of the batch sizes "
    "that reached the target; a bar ends at that edge too, with a grey caret where its interval goes beyond it. Zhang et al. (2025) claim B_crit grows with the amount of data and hardly with model "
    "size; B_20 = B_crit/5 (their 20% rule) has the same slopes."
)


def build_scaling_report(
    name: str, study: Study, cells: pd.DataFrame, steps: list[pd.DataFrame], dataset_meta: dict, out_dir: str | Path
) -> dict:
    """Write reports/<name>/: the cells' B_crit table, the figure, the grid's scorecard, provenance, index.html."""
    out = Path(out_dir)
    level = 0.95
    measured = study if study.to_target is None else study.to_target_view()  # the runs the cells' B_crit comes from
    table, slopes = analyse_grid(cells, steps, n_boot=max(study.steps_to_target.bootstrap, 100))
    scorecard = evaluate_scaling_claims(study.claims, table, slopes, level, grid_protocol(study))
    if not scorecard.empty:
        scorecard = scorecard.assign(study=name, figure="critical_vs_scale")
    title = f"{name}: {dataset_meta['name']}, {study.model.kind}, {len(table)} cells"
    figures.critical_vs_scale(table, out / "critical_vs_scale.png", title)
    io.write_csv(table, out / "scaling.csv")
    io.write_csv(scorecard, out / "scorecard.csv")
    study_yaml = yaml.safe_dump({name: study.model_dump(mode="json")}, sort_keys=False)
    io.write_text(study_yaml, out / "config.yaml")
    prov = provenance.collect([])
    io.write_json(prov, out / "provenance.json")
    t = study.to_target
    target = f"each cell's own {study.steps_to_target.describe()}" if t is None else (
        f"the train-to-target runs' {t.describe()}" + ("" if t.kind == "pilot_fraction" else ", the same loss in every cell"))
    records = scorecard.to_dict("records")
    meta = {
        "name": name,
        "kind": "scaling",
        "description": study.description,
        "dataset": dataset_meta["name"],
        "synthetic": bool(dataset_meta["synthetic"]),
        "model": study.model.kind,
        "n_runs": int(len(table) * len(measured.seeds) * len(measured.batch_sizes) * len(measured.optim.candidate_lrs())),
        "batch_sizes": list(measured.batch_sizes),
        "seeds": list(measured.seeds),
        "cells": table["study"].tolist(),
        "best_batch_size": "–",
        "metric": "B_crit",
        "scorecard": records,
        "statistics": {k: STATISTICS[k] for k in dict.fromkeys(r["statistic"] for r in records)},
    }
    html = render(
        "scaling.html",
        meta=meta,
        study=study,
        table=table,
        slopes={k: slopes[k]["estimate"] for k in ("data", "width")},
        caption=CAPTION.format(target=target, level=level),
        scorecard=records,
        statistics=meta["statistics"],
        provenance=prov,
        study_yaml=study_yaml,
    )
    io.write_text(html, out / "index.html")
    io.write_json(meta, out / "summary.json")
    return meta
