"""A study page's report job with its figures drawn by 1, 2, ... processes: the job's wall time, and
whether every file it writes is the same byte for byte as with one process.

Reads a finished run (its working folder) and renders the study's page again into a scratch folder,
each worker count `--repeats` times, interleaved so that drift on a shared machine falls on all alike.
Run from the finished run's folder when the page's recorded git commit should match it.

    python benchmarks/report_workers.py RUN ehr_autoencoder --workers 1 2 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from batchlab.cli import main as batchlab
from batchlab.config import load_config
from batchlab.data.inspect import inspect_files


def report_args(run: Path, name: str) -> list[str]:
    """The arguments the workflow's report rule passes for this study of the finished run."""
    study = load_config(run / "config/config.yaml", inspect=inspect_files).runnable_studies()[name]
    r = run / "results" / name
    args = ["report", "--study", name, "--study-json", study.model_dump_json(), "--data", str(run / f"data/{name}.npz")]
    for flag, file in [("--table", "table"), ("--curves", "curves"), ("--baselines", "baselines"), ("--noise", "gradients"),
                       ("--spread", "spread"), ("--steps", "steps_to_target"), ("--critical", "critical_batch"),
                       ("--lr-search", "lr_search")]:
        args += [flag, str(r / f"{file}.parquet")]
    if study.to_target is not None:
        args += ["--to-target", *(str(r / f"to_target/{f}.parquet") for f in ("runs", "curves", "gradients"))]
        args += ["--throughput", str(r / "to_target/throughput.parquet")]
    return args


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a finished run's working folder")
    p.add_argument("study")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    base = report_args(a.run.resolve(), a.study)
    times: dict[int, list[float]] = {w: [] for w in a.workers}
    with tempfile.TemporaryDirectory() as scratch:
        if batchlab([*base, "--out-dir", str(Path(scratch) / "imports")]) != 0:  # not timed: loads the libraries
            return 1
        for i in range(a.repeats):
            for w in a.workers:
                out = Path(scratch) / f"w{w}-{i}"
                start = time.perf_counter()
                if batchlab([*base, "--workers", str(w), "--out-dir", str(out)]) != 0:
                    return 1
                times[w].append(time.perf_counter() - start)
        first = Path(scratch) / f"w{a.workers[0]}-0"
        differ = sorted({f.name for w in a.workers for f in first.iterdir()
                         if f.read_bytes() != (Path(scratch) / f"w{w}-0" / f.name).read_bytes()})
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; "
          f"{a.study} report, {a.repeats} repeats, median seconds (libraries already loaded)")
    print("| workers | report s | vs 1 process |\n|---:|---:|---:|")
    ref = statistics.median(times[a.workers[0]])
    for w in a.workers:
        med = statistics.median(times[w])
        print(f"| {w} | {med:.2f} | {ref / med:.2f}× |")
    print("files that differ from the first worker count's:", ", ".join(differ) or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
