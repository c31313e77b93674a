"""The report steps of the `batchlab` command: a study's page, a scaling grid's page, the comparison with another
run, and the index. Like every step they import what they use when they run (batchlab.cli times it)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from batchlab.config import study_from_json


def _study(args: argparse.Namespace):
    return study_from_json(args.study_json)


def cmd_report(args: argparse.Namespace) -> None:
    import pandas as pd

    from batchlab.analysis.aggregate import read_all
    from batchlab.data import load_dataset
    from batchlab.report.data import describe_data
    from batchlab.report.study import build_study_report

    data = load_dataset(args.data)
    meta = {k: getattr(data, k) for k in ("name", "description", "synthetic", "tasks", "target")}
    section, examples = describe_data(data, args.out_dir)
    study, critical = _study(args), pd.read_parquet(args.critical)
    baseline = float(critical["val_baseline"].iloc[0]) if "val_baseline" in critical and len(critical) else math.nan
    to_target = None
    if args.to_target:
        runs, curves, noise = args.to_target
        to_target = {"runs": pd.read_parquet(runs), "curves": pd.read_parquet(curves), "noise": read_all([noise])}
    equal_steps = pd.read_parquet(args.equal_steps) if args.equal_steps else None
    build_study_report(
        args.study,
        study,
        pd.read_parquet(args.table),
        pd.read_parquet(args.curves),
        pd.read_parquet(args.baselines),
        meta,
        read_all(args.noise),
        read_all(args.spread),
        pd.read_parquet(args.steps),
        critical,
        pd.read_parquet(args.lr_search),
        args.out_dir,
        data_section=section,
        to_target=to_target,
        equal_steps=equal_steps,
        throughput=pd.read_parquet(args.throughput) if args.throughput else None,
        advise=pd.read_parquet(args.advise) if args.advise else None,
        equal_steps_spread=read_all([args.equal_steps_spread]) if args.equal_steps_spread else None,
        more_figures=[examples],
        workers=args.workers,
        baseline=baseline,
    )


def cmd_scaling(args: argparse.Namespace) -> None:
    import pandas as pd

    from batchlab.data import load_dataset
    from batchlab.report.scaling import build_scaling_report

    study = _study(args)
    names = list(study.variants(args.study))
    if not len(names) == len(args.steps) == len(args.tables):
        raise SystemExit(f"scaling {args.study}: {len(names)} cells, but {len(args.steps)} steps and {len(args.tables)} tables")
    cells = pd.DataFrame(
        [
            {"study": name, "train_samples": n, "width_factor": w, "n_params": int(pd.read_parquet(t)["n_params"].iloc[0])}
            for name, (n, w), t in zip(names, study.scaling.cells(), args.tables)
        ]
    )
    data = load_dataset(args.data)
    meta = {"name": data.name, "synthetic": data.synthetic}
    build_scaling_report(args.study, study, cells, [pd.read_parquet(f) for f in args.steps], meta, args.out_dir)


def cmd_compare(args: argparse.Namespace) -> None:
    from batchlab.report.comparison import compare_with, write_comparison

    found = compare_with(args.tables, args.scorecards, Path(args.other))
    write_comparison(found, args.other, args.out_dir)
    print(f"against {args.other}: {found.matched} runs matched, {len(found.changed)} verdicts differ")


def cmd_index(args: argparse.Namespace) -> None:
    from batchlab.report.index import build_index

    build_index(args.summaries, args.out, args.comparison)
    print(f"Report: {Path(args.out).resolve()}")
