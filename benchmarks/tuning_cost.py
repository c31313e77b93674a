"""CPU cost of a study's train-to-target cells with the learning rate tuned per batch size, against the same cells
at the study's fixed rate, on the data and pilot of a finished default run. Sizes the default config: on a CPU the
rate grid's trials run one after another.

    python benchmarks/tuning_cost.py RUN_DIR [--study ehr_autoencoder] [--grid '{"points": 3, "extensions": 2}']

RUN_DIR is a finished `make run` (its data/ and results/<study>/bs<smallest>/runs.parquet, the pilot). Prints one
line per batch size and arm: CPU seconds, the chosen rate, steps, trials and trials stopped; then the ratio.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

from batchlab.analysis.targets import constant_prediction_loss, pilot_loss, stop_target
from batchlab.config import RateGrid, load_config
from batchlab.data import load_dataset
from batchlab.training.cell import train_cell
from batchlab.training.run import StopAt


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--config", default="config/config.yaml")
    ap.add_argument("--study", default="ehr_autoencoder")
    ap.add_argument("--grid", default='{"points": 3, "extensions": 2}', help="the to_target.lr_tuning block, as JSON")
    args = ap.parse_args()
    torch.set_num_threads(1)  # as the pipeline's training jobs run (threads: 1); spinning threads would bill CPU-s
    study = load_config(args.config).studies[args.study]
    grid = RateGrid(**json.loads(args.grid))
    data = args.run_dir / "data" / f"{args.study}.npz"
    baseline = constant_prediction_loss(load_dataset(data), study.model, "val")
    smallest = min(study.batch_sizes)
    pilot = pilot_loss(pd.read_parquet(args.run_dir / "results" / args.study / f"bs{smallest}" / "runs.parquet"))
    target = StopAt(stop_target(study.to_target.kind, study.to_target.value, baseline, pilot))
    arms = {"fixed": (study, None),
            "tuned": (study.model_copy(update={"to_target": study.to_target.model_copy(update={"lr_tuning": grid})}), grid)}
    totals = {}
    print(f"{args.study}: target {target.value:.6g}; grid {grid.model_dump()}")
    with tempfile.TemporaryDirectory() as scratch:
        for arm, (arm_study, tuning) in arms.items():
            view, totals[arm] = arm_study.to_target_view(), 0.0
            for b in view.batch_sizes:
                before = cpu_s()
                runs = train_cell(view, args.study, b, data, Path(scratch) / arm / f"bs{b}", device="cpu", stop_at=target,
                                  lr_tuning=tuning)
                spent = cpu_s() - before
                totals[arm] += spent
                trials = int(runs["tuning_trials"].iloc[0]) if "tuning_trials" in runs else 0
                stopped = int(runs["tuning_trials_stopped"].iloc[0]) if "tuning_trials_stopped" in runs else 0
                print(f"{arm:5s} bs {b:5d}: {spent:7.1f} CPU-s, lr {runs['lr'].iloc[0]:.3g}, steps "
                      f"{list(runs['steps'])}, reached {list(runs['reached_target'])}, trials {trials} "
                      f"({stopped} stopped)", flush=True)
    print(f"all: fixed {totals['fixed']:.0f} CPU-s, tuned {totals['tuned']:.0f} CPU-s, "
          f"ratio {totals['tuned'] / totals['fixed']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
