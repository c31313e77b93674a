"""Time the whole pipeline on a config: wall time, and per rule its jobs, job-seconds, CPU-seconds and start-up share.

The config runs in a scratch copy of the repository (tracked and untracked, not ignored, files), so
nothing of the working tree's results is reused or touched, with this interpreter's Snakemake and the
copy's `src/` first on the path. Afterwards every job's `benchmark:` file (`--benchmark-extended`, which
names the rule) gives its wall seconds and Snakemake's sampled CPU-seconds; the job's log, beside it,
holds the line `batchlab <step>: start-up ... s, work ... s, cpu ... s` with its start-up (interpreter and
imports), its work and its exact CPU-seconds; `wall_time_s` of every run (lr_search.parquet, else
runs.parquet) gives the training loops' share.

    python benchmarks/pipeline_time.py                                   # config/config.yaml, workstation profile
    python benchmarks/pipeline_time.py --config tests/config/tiny.yaml --cores 2 --json tiny.json

Snakemake samples a job's CPU time every 0.5 s for 30 s, then every 30 s, so its `cpu_time` misses up to
one interval at the end of a job; `cpu_s` (the job's own getrusage, itself and its children) is exact.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import pandas as pd

from batchlab.cli import USAGE_LINE
from batchlab.training.phases import PHASES_LINE, parse
from batchlab.jobs.warm import STOPPED_LINE

ROOT = Path(__file__).resolve().parents[1]


# Outside a git checkout (an unpacked release, a copied tree): what the copy leaves out.
PHASE = "phase_"  # a job table's column prefix for the seconds of one phase of a job's work

NOT_COPIED = (".git", ".venv", ".snakemake", "data", "results", "logs", "reports", "__pycache__", "*.egg-info", ".*")


def scratch_copy(source: Path, dest: Path, config: Path) -> None:
    """The repository's files (as git sees them, ignored ones left out; outside git, all but NOT_COPIED)
    under dest, with `config` as its config."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=source, capture_output=True,
    )
    if listed.returncode != 0:
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns(*NOT_COPIED), dirs_exist_ok=True)
    else:
        for rel in filter(None, listed.stdout.decode().split("\0")):
            src = source / rel
            if src.is_file():
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / rel)
    shutil.copy2(config, dest / "config/config.yaml")


# Snakemake's own process, which records its CPU-seconds as it exits (its jobs and solver are its children).
SNAKEMAKE = """
import atexit, json, resource, sys
def record():
    own = resource.getrusage(resource.RUSAGE_SELF)
    with open("pipeline_time.snakemake.json", "w") as f:
        json.dump({"cpu_s": own.ru_utime + own.ru_stime}, f)
atexit.register(record)
from snakemake.cli import main
sys.argv[0] = "snakemake"
main()
"""


def run_pipeline(work: Path, cores: str, profile: str | None, extra: list[str]) -> dict:
    """Run Snakemake in `work`; its wall time, the CPU-seconds of it and every job it ran, and of Snakemake alone."""
    cmd = [sys.executable, "-c", SNAKEMAKE, "--cores", cores, "--benchmark-extended", *extra]
    if profile:
        cmd += ["--workflow-profile", f"workflow/profiles/{profile}"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(work / "src"), os.environ.get("PYTHONPATH")]))}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.time()
    start = time.perf_counter()
    with open(work / "pipeline_time.log", "w") as log:
        done = subprocess.run(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        tail = (work / "pipeline_time.log").read_text()[-3000:]
        raise SystemExit(f"snakemake failed (exit {done.returncode}); its output ends:\n{tail}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    own = json.loads((work / "pipeline_time.snakemake.json").read_text())["cpu_s"]
    return {"command": "snakemake " + " ".join(cmd[3:]), "wall_s": wall, "cpu_s": cpu, "snakemake_cpu_s": own,
            "started": started}


def job_table(work: Path, started: float) -> pd.DataFrame:
    """One row per job: its rule, wall and sampled CPU seconds (benchmark), and start-up, work, exact CPU (log);
    when it ended (its benchmark file is written as it ends) and began, in seconds from the run's start."""
    rows = []
    for bench in sorted((work / "logs").rglob("*.benchmark.tsv")):
        record = pd.read_csv(bench, sep="\t").iloc[-1]  # a retried job appends a line; the last attempt counts
        end = bench.stat().st_mtime - started
        row = {
            "job": str(bench.relative_to(work / "logs")).removesuffix(".benchmark.tsv"),
            "end_s": end,
            "start_s": end - float(record["s"]),
            "rule": record["rule_name"],
            "job_s": float(record["s"]),
            "bench_cpu_s": pd.to_numeric(record["cpu_time"], errors="coerce"),
            "threads": int(record["threads"]),
        }
        log = bench.with_name(bench.name.removesuffix(".benchmark.tsv") + ".log")
        text = log.read_text(errors="replace") if log.is_file() else ""
        lines = list(USAGE_LINE.finditer(text))
        if lines:
            last = lines[-1]
            row.update(startup_s=float(last["startup"]), work_s=float(last["work"]), cpu_s=float(last["cpu"]),
                       warm=last["started"] == "warm")
        where = list(PHASES_LINE.finditer(text))
        if where:
            row.update({f"{PHASE}{name}": seconds for name, seconds in parse(where[-1]["phases"]).items()})
        rows.append(row)
    return pd.DataFrame(rows)


def rule_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule: jobs, job-seconds (sum, median), CPU-seconds, start-up seconds and their share of the job-seconds."""
    for col in ("startup_s", "work_s", "cpu_s"):
        if col not in jobs:
            jobs[col] = float("nan")
    if "warm" not in jobs:
        jobs["warm"] = False
    table = jobs.groupby("rule").agg(
        jobs=("job_s", "size"),
        warm=("warm", lambda s: int(s.fillna(False).astype(bool).sum())),
        job_s=("job_s", "sum"),
        median_job_s=("job_s", "median"),
        bench_cpu_s=("bench_cpu_s", "sum"),
        cpu_s=("cpu_s", lambda s: s.sum(min_count=1)),
        startup_s=("startup_s", lambda s: s.sum(min_count=1)),
    )
    table["startup_share"] = table["startup_s"] / table["job_s"]
    table = table.sort_values("job_s", ascending=False)
    total = table.sum(numeric_only=True, min_count=1)
    total["median_job_s"] = jobs["job_s"].median()
    total["startup_share"] = total["startup_s"] / total["job_s"]
    table.loc["total"] = total
    table["jobs"] = table["jobs"].astype(int)
    return table


def phase_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule whose jobs log phases (batchlab.training.phases): job-seconds, start-up, each phase's seconds, and the time
    outside the step (the shell, the warm client or the interpreter's own start, Snakemake's benchmark), summed."""
    columns = sorted((c for c in jobs.columns if c.startswith(PHASE)), key=lambda c: c == f"{PHASE}other")
    if not columns:
        return pd.DataFrame()
    timed = jobs[jobs[columns].notna().any(axis=1)]
    sums = timed.groupby("rule")[["job_s", "startup_s", "work_s", *columns]].sum(min_count=1)
    table = sums[["job_s", "startup_s", *columns]].copy()
    table["outside"] = sums["job_s"] - sums["startup_s"] - sums["work_s"]
    table.columns = [c.removeprefix(PHASE) for c in table.columns]
    return table.sort_values("job_s", ascending=False)


HEADINGS = {"startup_s": "start-up s", "outside": "outside the step s"}


def phase_markdown(table: pd.DataFrame) -> str:
    """The phase table with each phase's share of the rule's job-seconds."""
    names = [c for c in table.columns if c != "job_s"]
    lines = [
        "| rule | job-s | " + " | ".join(HEADINGS.get(n, f"{n} s") for n in names) + " |",
        "|---|---:|" + "---:|" * len(names),
    ]
    for rule, r in table.iterrows():
        cells = [f"{fmt(r[n])} ({100 * r[n] / r['job_s']:.0f}%)" if pd.notna(r[n]) else "–" for n in names]
        lines.append(f"| {rule} | {fmt(r['job_s'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def waited_chain(jobs: pd.DataFrame, slack_s: float = 0.25) -> pd.DataFrame:
    """The jobs the run waited on, from the last to end backwards: before each, the job that ended last
    before it began (within `slack_s`, the files' timestamps' grain). An approximation of the critical
    path from timestamps alone; `gap_s` is the wait between that job's end and the next one's start
    (Snakemake's scheduling and the job's process start before its benchmark clock)."""
    chain, current = [], jobs.loc[jobs["end_s"].idxmax()]
    while True:
        before = jobs[(jobs["end_s"] <= current["start_s"] + slack_s) & (jobs["end_s"] < current["end_s"])]
        previous = None if before.empty else before.loc[before["end_s"].idxmax()]
        gap = current["start_s"] - (0.0 if previous is None else previous["end_s"])
        chain.append({"job": current["job"], "rule": current["rule"], "start_s": current["start_s"],
                      "end_s": current["end_s"], "job_s": current["job_s"], "gap_s": max(gap, 0.0)})
        if previous is None:
            return pd.DataFrame(chain[::-1])
        current = previous


def chain_lines(chain: pd.DataFrame, wall_s: float) -> list[str]:
    """The waited-on chain as text: each job's span and the wait before it, and the totals."""
    lines = [f"waited on ({len(chain)} jobs in a chain, {chain['job_s'].sum():,.1f} s in jobs, "
             f"{chain['gap_s'].sum():,.1f} s between them, of the {wall_s:,.1f} s wall time; before each job, the "
             "one that ended last before it began: a dependency, or the core or GPU slot it waited for; before "
             "the first, Snakemake's own start):"]
    lines += [f"  {r.start_s:7.1f} -> {r.end_s:7.1f} s  {r.job_s:6.1f} s (+{r.gap_s:4.1f} s before)  {r.rule}: {r.job}"
              for r in chain.itertuples()]
    return lines


def warm_servers(work: Path) -> dict:
    """The warm servers' own CPU-seconds (loading the libraries) and the jobs forked, from their log."""
    log = work / "logs/warm_start.log"
    found = list(STOPPED_LINE.finditer(log.read_text(errors="replace"))) if log.is_file() else []
    return {"servers": len(found), "cpu_s": sum(float(m["cpu"]) for m in found), "jobs": sum(int(m["jobs"]) for m in found)}


def training_loops(work: Path) -> float:
    """Seconds spent in the training loops: wall_time_s of every run of every cell, where runs trained
    together by the batched engine (each recording the loop they shared) count once."""
    total = 0.0
    for runs in (work / "results").glob("*/bs*/runs.parquet"):
        every = runs.with_name("lr_search.parquet")
        table = pd.read_parquet(every if every.is_file() else runs)
        together = table["runs_together"] if "runs_together" in table else 1
        total += float((table["wall_time_s"] / together).sum())
    return total


def device_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        names = [ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    line = f"{cpu}, {os.cpu_count()} cores"
    try:
        import torch

        if torch.cuda.is_available():
            line += "; " + ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        else:
            line += "; no GPU"
    except ImportError:
        pass
    return line


def versions() -> str:
    names = ("torch", "snakemake", "scikit-learn", "pandas", "numpy")
    found = []
    for name in names:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return f"Python {platform.python_version()}, " + ", ".join(found)


def fmt(value: float, digits: int = 1) -> str:
    return "–" if pd.isna(value) else f"{value:,.{digits}f}"


def markdown(table: pd.DataFrame) -> str:
    lines = [
        "| rule | jobs | started warm | job-s | median job-s | CPU-s | CPU-s (sampled) | start-up s | start-up share |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rule, r in table.iterrows():
        share = "–" if pd.isna(r["startup_share"]) else f"{100 * r['startup_share']:.0f}%"
        lines.append(
            f"| {rule} | {int(r['jobs'])} | {int(r['warm'])} | {fmt(r['job_s'])} | {fmt(r['median_job_s'])} | {fmt(r['cpu_s'])} | "
            f"{fmt(r['bench_cpu_s'])} | {fmt(r['startup_s'])} | {share} |"
        )
    return "\n".join(lines)


def report(
    run: dict, table: pd.DataFrame, loops: float, config: str, chain: pd.DataFrame, servers: dict, phases: pd.DataFrame
) -> str:
    train_s = table.loc["train", "job_s"] if "train" in table.index else float("nan")
    all_s = table.loc["total", "job_s"]
    rest = run["cpu_s"] - run["snakemake_cpu_s"] - table.loc["total", "cpu_s"] - servers["cpu_s"]
    return "\n".join(
        [
            f"config: {config}; {run['command']}",
            f"device: {device_line()}",
            f"versions: {versions()}",
            f"date: {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}",
            f"wall time: {run['wall_s']:.1f} s ({run['wall_s'] / 60:.1f} min); "
            f"CPU-seconds of Snakemake and every job: {run['cpu_s']:,.1f} (Snakemake's own process "
            f"{run['snakemake_cpu_s']:,.1f}, the jobs' steps {table.loc['total', 'cpu_s']:,.1f}, "
            f"{servers['servers']} warm servers loading libraries {servers['cpu_s']:,.1f} ({servers['jobs']} jobs forked), "
            f"the rest {rest:,.1f}: shells, clients, interpreter exits, the scheduler's solver)",
            f"training loops (wall_time_s of every run, shared loops once): {loops:,.1f} s = {100 * loops / train_s:.0f}% of the train "
            f"jobs' {train_s:,.1f} job-s, {100 * loops / all_s:.0f}% of all {all_s:,.1f} job-s",
            f"jobs running at once, on average: {all_s / run['wall_s']:.1f}",
            "",
            markdown(table),
            "",
            *([] if phases.empty else ["where the work went, by phase (the jobs' logs; 'other': work in no phase):",
                                       phase_markdown(phases), ""]),
            *chain_lines(chain, run["wall_s"]),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="config/config.yaml", help="the config to run (copied in as config/config.yaml)")
    p.add_argument("--profile", default="workstation", help="workflow profile under workflow/profiles ('' for none)")
    p.add_argument("--cores", default="all")
    p.add_argument("--source", default=str(ROOT), help="repository to copy (default: this one)")
    p.add_argument("--scratch", help="folder for the copy (default: a new temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the scratch copy (always kept with --scratch)")
    p.add_argument("--json", help="also write the per-job and per-rule tables and totals here")
    p.add_argument("snakemake_args", nargs="*", help="more arguments for snakemake (after --)")
    args = p.parse_args(argv)

    work = Path(args.scratch or tempfile.mkdtemp(prefix="batchlab-time-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        scratch_copy(Path(args.source).resolve(), work, Path(args.config).resolve())
        run = run_pipeline(work, args.cores, args.profile or None, args.snakemake_args)
        jobs = job_table(work, run["started"])
        table = rule_table(jobs)
        loops = training_loops(work)
        chain = waited_chain(jobs)
        servers = warm_servers(work)
        phases = phase_table(jobs)
        print(report(run, table, loops, args.config, chain, servers, phases))
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {"run": run, "training_loops_s": loops, "warm_servers": servers, "rules": table.reset_index().to_dict("records"),
                     "phases": phases.reset_index().to_dict("records"),
                     "jobs": jobs.to_dict("records"), "waited_on": chain.to_dict("records")},
                    indent=2, default=float,
                )
            )
    finally:
        if args.scratch or args.keep:
            print(f"scratch copy: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
