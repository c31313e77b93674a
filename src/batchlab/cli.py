"""The `batchlab` command: thin wrappers the Snakemake rules call, one subcommand per step.

A job pays only for what its step uses: this module imports nothing heavy, each step names the
modules it needs (imported before it runs, timed as its start-up), and every job ends its log with
one line of start-up, work and CPU seconds and the heavy libraries it loaded (benchmarks/pipeline_time.py
reads it).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import re
import resource
import sys
import time

from batchlab import io

from batchlab.training import phases
from batchlab.jobs import warm as warm_start
from batchlab.jobs.allocator import keep_freed_memory
from batchlab.config import ConfigError, Downstream, data_from_json, json_schema, load_config, study_from_json
from batchlab.cli_report import cmd_compare, cmd_index, cmd_report, cmd_scaling

HEAVY = ("torch", "sklearn", "scipy", "matplotlib", "seaborn", "pandas")
# The line that ends every job's log (usage_line), as benchmarks/pipeline_time.py and the tests read it.
USAGE_LINE = re.compile(
    r"^batchlab (?P<step>[\w-]+): start-up (?P<startup>[\d.]+) s, work (?P<work>[\d.]+) s, cpu (?P<cpu>[\d.]+) s; "
    r"loaded (?P<loaded>.*); started (?P<started>warm|cold)$",
    re.M,
)


def _study(args: argparse.Namespace):
    return study_from_json(args.study_json)


def cmd_validate(args: argparse.Namespace) -> None:
    from batchlab.data.inspect import inspect_files
    from batchlab.training.cost import print_estimate

    cfg = load_config(args.config, inspect=inspect_files)
    if any(study.model.kind == "python" for study in cfg.studies.values()):
        from batchlab.training.model_check import check_models  # torch, only for a factory model

        cfg = check_models(cfg, args.config, stream=sys.stdout)
    for name, study in cfg.studies.items():
        grid = f", scaling grid of {len(study.variants(name))} cells" if study.scaling else ""
        print(f"{name}: {study.data.name}, {study.model.kind}, batch sizes {study.batch_sizes}, seeds {study.seeds}{grid}")
    print_estimate(cfg, rates_file=args.rates, source=args.config)


def cmd_schema(args: argparse.Namespace) -> None:
    io.write_text(json.dumps(json_schema(), indent=2) + "\n", args.out)


def cmd_data(args: argparse.Namespace) -> None:
    from batchlab.data import make_dataset, save_dataset

    save_dataset(make_dataset(data_from_json(args.data_json)), args.out)


def cmd_train(args: argparse.Namespace) -> None:
    import torch

    from batchlab.config import ToTarget
    from batchlab.training.cell import train_cell
    from batchlab.training.resume import StopFlag

    from batchlab.data import training_size

    n_train = training_size(args.data)
    if args.batch_size > n_train:  # real data sets can leave samples out after the config was checked
        raise ValueError(
            f"study {args.study!r}: batch size {args.batch_size} is larger than the training split of {args.data} "
            f"({n_train} samples, after the data set's exclusions); remove it from batch_sizes"
        )
    study = _study(args)
    to_target = ToTarget.model_validate_json(args.to_target_json) if args.to_target_json else None
    stop_at = _stop_at(args, study, to_target) if to_target is not None else None
    lr_tuning = to_target.lr_tuning if to_target is not None else None
    _take_gpu_slot(args)
    stop = StopFlag()
    stop.install()  # SIGTERM (SLURM's time limit or preemption) saves the state before exiting
    try:
        train_cell(
            study, args.study, args.batch_size, args.data, args.out_dir, device=args.device,
            checkpoint_every_s=args.checkpoint_every_s, stop=stop, cuda_graphs=args.cuda_graphs, stop_at=stop_at,
            lr_tuning=lr_tuning, rate_check=to_target.rate_check if to_target is not None else None,
        )
    except (torch.OutOfMemoryError, MemoryError) as err:
        raise MemoryError(
            f"study {args.study!r}, batch size {args.batch_size} does not fit in {args.device} memory. "
            "Set the study's training.micro_batch_size to split each batch into micro-batches (gradient "
            "accumulation, the same effective batch), lower the batch size, use a device with more memory, "
            f"or set device: cpu. ({str(err).splitlines()[0]})"
        ) from None


def _stop_at(args: argparse.Namespace, study, spec):  # the target of a to-target cell or the advise pilot
    from batchlab.analysis.targets import stop_at

    return stop_at(spec, study, args.study, args.data, args.pilot)


def cmd_throughput(args: argparse.Namespace) -> None:
    from batchlab.data import load_dataset
    from batchlab.training import throughput

    _take_gpu_slot(args)
    table = throughput.measure(_study(args), load_dataset(args.data), args.batch_sizes, args.device)
    io.write_parquet(table, args.out)


def cmd_advise(args: argparse.Namespace) -> None:
    from batchlab.config import Advise, ToTarget
    from batchlab.data import load_dataset
    from batchlab.training.pilot import run_pilot

    study, to_target, started = _study(args), ToTarget.model_validate_json(args.to_target_json), time.perf_counter()
    _take_gpu_slot(args)
    table = run_pilot(study, load_dataset(args.data), Advise.model_validate_json(args.advise_json), to_target,
                      args.batch_sizes, _stop_at(args, study, to_target), args.device, started=started)
    io.write_parquet(table, args.out)


def cmd_collect(args: argparse.Namespace) -> None:
    from batchlab.analysis.aggregate import read_all

    io.write_parquet(read_all(args.runs), args.runs_out)
    io.write_parquet(read_all(args.curves), args.curves_out)


def cmd_downstream(args: argparse.Namespace) -> None:
    from batchlab.jobs.study_cells import downstream_cells

    _same_length(args, "embeddings")
    table = downstream_cells(
        args.study, Downstream.model_validate_json(args.downstream_json), args.data,
        list(zip(args.batch_sizes, args.embeddings)), args.cache, args.workers,
    )
    io.write_parquet(table, args.out)


def cmd_baselines(args: argparse.Namespace) -> None:
    from batchlab.data import load_dataset
    from batchlab.measure.downstream import evaluate_baselines

    spec, data = Downstream.model_validate_json(args.downstream_json), load_dataset(args.data)
    try:
        table = evaluate_baselines(
            data.x, data.labels[data.target], data.tasks[data.target], spec, args.latent, data.groups, args.workers
        )
    except ValueError as err:
        raise ValueError(f"study {args.study!r}, {args.data}: {err}") from None
    io.write_parquet(table.assign(study=args.study), args.out)


def cmd_gradients(args: argparse.Namespace) -> None:
    from batchlab.config import GradientNoise
    from batchlab.jobs.study_cells import gradient_cells

    _take_gpu_slot(args)
    _same_length(args, "checkpoints")
    stats, spread = gradient_cells(
        args.study, _study(args), GradientNoise.model_validate_json(args.gradients_json), args.data,
        list(zip(args.batch_sizes, args.checkpoints)), args.device, args.cache, args.workers, spread=not args.no_spread,
        noise=not args.own_spread_only,
    )
    io.write_parquet(spread, args.spread)
    io.write_parquet(stats, args.out)


def _same_length(args: argparse.Namespace, files: str) -> None:
    if len(args.batch_sizes) != len(getattr(args, files)):
        raise ValueError(f"{len(args.batch_sizes)} batch sizes but {len(getattr(args, files))} --{files} files")


def _take_gpu_slot(args: argparse.Namespace) -> None:
    """With --gpu-slots (a shared GPU), hold a free slot for the job's life: its GPU and a bounded memory share."""
    if args.gpu_slots is None:
        return
    from batchlab.jobs import gpu_slots

    with phases.phase("gpu_slot"):
        slot = gpu_slots.acquire(gpu_slots.SlotPlan(args.gpus, args.gpu_slots))
    print(f"batchlab {args.command}: {slot.describe()}", file=sys.stderr, flush=True)


def cmd_critical(args: argparse.Namespace) -> None:
    import pandas as pd
    from pydantic import TypeAdapter

    from batchlab.analysis.aggregate import read_all
    from batchlab.config import ModelSpec, StepsToTarget
    from batchlab.analysis.critical import analyse
    from batchlab.data import load_dataset
    from batchlab.analysis.targets import SPLITS, constant_prediction_loss

    spec = StepsToTarget.model_validate_json(args.target_json)
    model = TypeAdapter(ModelSpec).validate_json(args.model_json)
    baseline = math.nan
    if args.target_runs:  # a train-to-target analysis: the target its runs trained to
        targets = read_all(args.target_runs)["target"].unique()
        if len(targets) != 1:
            raise ValueError(f"study {args.study!r}: the train-to-target runs trained to {len(targets)} targets: {targets}")
        spec = spec.model_copy(update={"kind": "value", "value": float(targets[0]), "metric": "val_loss"})
        if model.kind != "contrastive":
            baseline = constant_prediction_loss(load_dataset(args.data), model, "val")
    elif spec.kind == "baseline_fraction":  # the data define a baseline: the best constant prediction
        baseline = constant_prediction_loss(load_dataset(args.data), model, SPLITS[spec.metric])
    try:
        steps, table = analyse(pd.read_parquet(args.curves), read_all(args.noise), spec, baseline,
                               read_all(args.target_runs) if args.target_runs else None)
    except ValueError as err:
        raise ValueError(f"study {args.study!r}, field 'steps_to_target': {err}") from None
    # the validation loss a run must beat to count as trained (batchlab.analysis.trained), for the report
    val_baseline = math.nan if model.kind == "contrastive" else constant_prediction_loss(load_dataset(args.data), model, "val")
    io.write_parquet(steps, args.steps)
    io.write_parquet(table.assign(val_baseline=val_baseline), args.out)


def cmd_aggregate(args: argparse.Namespace) -> None:
    from batchlab.analysis.aggregate import join_runs, read_all

    table = join_runs(read_all(args.runs), read_all(args.downstream))
    io.write_parquet(table, args.table)
    io.write_parquet(read_all(args.curves), args.curves_out)
    io.write_parquet(read_all(args.lr_search).sort_values(["batch_size", "base_lr", "seed"]), args.lr_search_out)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="batchlab", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    p.set_defaults(step_imports={})

    def add(name: str, func, help: str, imports: tuple[str, ...], study: bool = True, job: bool = True):
        """A subcommand: `imports` are the modules its step needs; `job` steps end their log with a usage line."""
        sp = sub.add_parser(name, help=help)
        sp.set_defaults(func=func, imports=imports, job=job)
        if job:
            p.get_default("step_imports")[name] = imports
        if study:
            sp.add_argument("--study", required=True, help="study name")
            sp.add_argument("--study-json", required=True, help="the validated study, as JSON")
        return sp

    def cells(sp: argparse.ArgumentParser, files: str, what: str) -> None:
        """The arguments of a step that covers every cell of a study, each cached and reused."""
        sp.add_argument("--batch-sizes", type=int, nargs="+", required=True, help="the cells' batch sizes")
        sp.add_argument(f"--{files}", nargs="+", required=True, help=f"every cell's {what}, in --batch-sizes order")
        sp.add_argument("--cache", required=True, help="folder of the per-cell results, reused when their inputs match")
        sp.add_argument("--workers", type=int, default=1, help="cells computed at once, in separate processes (CPU)")

    def gpu_slots(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--gpu-slots", type=int, help="jobs sharing each GPU: take a free slot and its memory share")
        sp.add_argument("--gpus", type=int, default=1, help="GPUs the slots spread over (with --gpu-slots)")

    sp = add("validate", cmd_validate, "validate a config file, list its studies and estimate their cost",
             ("batchlab.training.cost",), study=False, job=False)
    sp.add_argument("config")
    sp.add_argument("--rates", help="per-model-kind rates (JSON) instead of this machine's calibration")
    sp = add("schema", cmd_schema, "write the config's JSON schema", (), study=False, job=False)
    sp.add_argument("--out", required=True)
    sp = add("data", cmd_data, "make or load a study's data set and save it as .npz", ("batchlab.data",), study=False)
    sp.add_argument("--data-json", required=True, help="the study's validated data block, as JSON")
    sp.add_argument("--out", required=True)
    # torch._inductor.config: torch.use_deterministic_algorithms imports it (0.8 s), in every cell.
    sp = add("train", cmd_train, "train every seed of one (study, batch size) cell",
             ("batchlab.training.cell", "batchlab.training.resume", "torch._inductor.config"))
    sp.add_argument("--batch-size", type=int, required=True)
    sp.add_argument("--data", required=True)
    sp.add_argument("--out-dir", required=True)
    sp.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    sp.add_argument("--checkpoint-every-s", type=float, default=300.0, help="seconds between saves of a run's state")
    sp.add_argument(
        "--cuda-graphs", choices=["auto", "require", "off"], default=None,
        help="the study's training.cuda_graphs (passed apart from --study-json: it changes speed, not numbers)",
    )
    sp.add_argument("--to-target-json", help="train to a target: the study's to_target block, as JSON")
    sp.add_argument("--pilot", help="with a pilot_fraction target: the pilot cell's runs.parquet")
    gpu_slots(sp)
    sp = add(
        "downstream", cmd_downstream, "SVM in k-fold CV on the embeddings of every cell of a study",
        ("batchlab.jobs.study_cells", "batchlab.measure.downstream"), study=False,
    )
    sp.add_argument("--study", required=True, help="study name")
    sp.add_argument("--downstream-json", required=True, help="the study's validated downstream block, as JSON")
    sp.add_argument("--data", required=True)
    cells(sp, "embeddings", "embeddings.npz")
    sp.add_argument("--out", required=True)
    sp = add(
        "baselines", cmd_baselines, "the downstream protocol on raw inputs and PCA",
        ("batchlab.data", "batchlab.measure.downstream"), study=False,
    )
    sp.add_argument("--study", required=True, help="study name")
    sp.add_argument("--downstream-json", required=True, help="the study's validated downstream block, as JSON")
    sp.add_argument("--latent", type=int, required=True, help="latent dimension (the PCA baseline's size)")
    sp.add_argument("--data", required=True)
    sp.add_argument("--workers", type=int, default=1, help="(baseline, fold) fits at once, in separate processes")
    sp.add_argument("--out", required=True)
    sp = add(
        "gradients", cmd_gradients, "gradient noise and spread at the checkpoints of every cell of a study",
        ("batchlab.jobs.study_cells", "batchlab.measure.noise"),
    )
    sp.add_argument("--gradients-json", required=True, help="the study's validated gradients block, as JSON")
    sp.add_argument("--data", required=True)
    cells(sp, "checkpoints", "checkpoints.pt")
    sp.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    gpu_slots(sp)
    sp.add_argument("--out", required=True)
    sp.add_argument("--spread", required=True)
    spread_or_noise = sp.add_mutually_exclusive_group()
    spread_or_noise.add_argument("--no-spread", action="store_true", help="the noise statistics only (the spread table is empty)")
    spread_or_noise.add_argument("--own-spread-only", action="store_true",
                                 help="the spread at each run's own batch size only (the noise table is empty)")
    sp = add(
        "critical", cmd_critical, "steps-to-target, the S(B) fit and the critical batch size",
        ("batchlab.analysis.aggregate", "batchlab.analysis.critical", "batchlab.data", "batchlab.analysis.targets"), study=False,
    )
    sp.add_argument("--study", required=True, help="study name")
    sp.add_argument("--target-json", required=True, help="the study's validated steps_to_target block, as JSON")
    sp.add_argument("--model-json", required=True, help="the study's validated model block, as JSON (its loss)")
    sp.add_argument("--data", required=True, help="the study's data set (for the baseline loss)")
    sp.add_argument("--curves", required=True)
    sp.add_argument("--noise", nargs="+", required=True)
    sp.add_argument("--target-runs", nargs="+", help="train-to-target runs: the analysis uses the target they trained to")
    sp.add_argument("--steps", required=True)
    sp.add_argument("--out", required=True)
    sp = add("collect", cmd_collect, "concatenate a study's train-to-target cells", ("batchlab.analysis.aggregate",), study=False)
    sp.add_argument("--runs", nargs="+", required=True)
    sp.add_argument("--curves", nargs="+", required=True)
    sp.add_argument("--runs-out", required=True)
    sp.add_argument("--curves-out", required=True)
    sp = add("aggregate", cmd_aggregate, "join a study's cells into one tidy table", ("batchlab.analysis.aggregate",), study=False)
    sp.add_argument("--runs", nargs="+", required=True)
    sp.add_argument("--downstream", nargs="+", required=True)
    sp.add_argument("--curves", nargs="+", required=True)
    sp.add_argument("--table", required=True)
    sp.add_argument("--curves-out", required=True)
    sp.add_argument("--lr-search", nargs="+", required=True, help="every cell's lr_search.parquet")
    sp.add_argument("--lr-search-out", required=True)
    sp = add(
        "report", cmd_report, "render one study's report", ("batchlab.analysis.aggregate", "batchlab.data", "batchlab.report.study")
    )
    sp.add_argument("--data", required=True)
    sp.add_argument("--table", required=True)
    sp.add_argument("--curves", required=True)
    sp.add_argument("--baselines", required=True)
    sp.add_argument("--noise", nargs="+", required=True)
    sp.add_argument("--spread", nargs="+", required=True)
    sp.add_argument("--steps", required=True)
    sp.add_argument("--critical", required=True)
    sp.add_argument("--lr-search", required=True)
    sp.add_argument("--to-target", nargs=3, metavar=("RUNS", "CURVES", "NOISE"),
                    help="the train-to-target analysis's runs, curves and gradient noise (its steps and critical "
                    "tables are --steps and --critical)")
    sp.add_argument("--equal-steps", metavar="RUNS", help="the runs of the study's equal-steps arm")
    sp.add_argument("--equal-steps-spread", metavar="SPREAD",
                    help="the gradient spread at the arm's runs' own batch sizes, for claims with arm: equal_steps")
    sp.add_argument("--throughput", help="the study's warm throughput and memory measurement, for the recommendation")
    sp.add_argument("--advise", help="the advise pilot's halving table (advise/pilot.parquet), for the recommendation")
    sp.add_argument("--workers", type=int, default=1, help="figures drawn at once, in separate processes")
    sp.add_argument("--out-dir", required=True)
    sp = add("throughput", cmd_throughput, "measure warm throughput and memory per batch size, for the recommendation",
             ("batchlab.training.throughput",))
    sp.add_argument("--batch-sizes", type=int, nargs="+", required=True)
    sp.add_argument("--data", required=True)
    sp.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    sp.add_argument("--out", required=True)
    gpu_slots(sp)
    sp = add("advise", cmd_advise, "the advise pilot: halving over batch sizes and rates in minutes", ("batchlab.training.pilot",))
    for flag in ("--data", "--to-target-json", "--advise-json", "--out"):
        sp.add_argument(flag, required=True)
    sp.add_argument("--batch-sizes", type=int, nargs="+", required=True)
    sp.add_argument("--pilot", help="with a pilot_fraction target: the sweep's smallest batch size's runs.parquet")
    sp.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    gpu_slots(sp)
    sp = add(
        "scaling", cmd_scaling, "critical batch size across a scaling grid's cells, and its report",
        ("batchlab.data", "batchlab.report.scaling"),
    )
    sp.add_argument("--data", required=True, help="one cell's data set (for its name and whether it is synthetic)")
    sp.add_argument("--steps", nargs="+", required=True, help="every cell's steps_to_target.parquet, in grid order")
    sp.add_argument("--tables", nargs="+", required=True, help="every cell's table.parquet, in grid order")
    sp.add_argument("--out-dir", required=True)
    sp = add(
        "compare", cmd_compare, "this run against another finished run of the config: metrics and verdicts",
        ("batchlab.report.comparison",), study=False,
    )
    sp.add_argument("--tables", nargs="+", required=True, help="this run's table.parquet of every study")
    sp.add_argument("--scorecards", nargs="+", required=True, help="this run's scorecard.csv of every report page")
    sp.add_argument("--other", required=True, help="the other run's working folder (results/, reports/)")
    sp.add_argument("--out-dir", required=True)
    sp = add("index", cmd_index, "render reports/index.html", ("batchlab.report.index",), study=False)
    sp.add_argument("--summaries", nargs="+", required=True)
    sp.add_argument("--comparison", help="comparison.json of `batchlab compare`: the verdicts that differ")
    sp.add_argument("--out", required=True)
    return p


ENTRY = f"{__name__}:main"  # what a warm server's child calls to run a job (batchlab.jobs.warm)


def warm_preload() -> dict[str, list[str]]:
    """What each warm server loads before it serves jobs (batchlab.jobs.warm): the train step's own server just
    what a cold train job loads, so that its process memory (peak_mem_mb on the CPU) holds no other
    step's libraries; the server of every other step what any of them loads, the data step's first."""
    steps = parser().get_default("step_imports")
    preload = {"train": [__name__, *steps["train"]], warm_start.ANY: [__name__]}
    for modules in steps.values():
        preload[warm_start.ANY] += [m for m in modules if m not in preload[warm_start.ANY]]
    return preload


def usage_line(command: str, startup_s: float, work_s: float, warm: bool = False) -> str:
    """What a job cost: start-up (process start to its step's modules imported), work, CPU-seconds, heavy
    libraries, and whether it started warm (forked from a server that had loaded them: batchlab.jobs.warm)."""
    cpu = sum(
        u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )
    loaded = [name for name in HEAVY if name in sys.modules]
    return (
        f"batchlab {command}: start-up {startup_s:.2f} s, work {work_s:.2f} s, cpu {cpu:.2f} s; "
        f"loaded {', '.join(loaded) or 'none'}; started {'warm' if warm else 'cold'}"
    )


def main(argv: list[str] | None = None, started: float | None = None, warm: bool = False) -> int:
    """Run one step. `started`: when the job's process started (warm.boot_time's clock), this one's by default."""
    from batchlab.training.resume import TrainingInterrupted

    args = parser().parse_args(argv)
    phases.reset()
    if args.job:
        keep_freed_memory()
    for module in args.imports:
        importlib.import_module(module)
    startup_s = warm_start.boot_time() - (warm_start.process_started() if started is None else started)
    ready_at = time.perf_counter()
    try:
        args.func(args)
    except TrainingInterrupted as err:
        print(f"batchlab {args.command}: {err}; run it again to resume", file=sys.stderr)
        return 143
    except MemoryError as err:
        print(f"batchlab {args.command}: error: out of memory: {err}", file=sys.stderr)
        return 3
    except (ConfigError, ValueError, FileNotFoundError) as err:
        print(f"batchlab {args.command}: error: {err}", file=sys.stderr)
        return 2
    finally:
        if args.job:
            work_s = time.perf_counter() - ready_at
            where = phases.phases_line(args.command, work_s)
            usage = usage_line(args.command, startup_s, work_s, warm)
            print(usage if where is None else f"{where}\n{usage}", file=sys.stderr, flush=True)
    return 0


def run_job() -> None:
    """`python -m batchlab`, as the workflow's jobs call it: main, then leave without the interpreter's teardown.

    Tearing down an interpreter that loaded torch costs about half a CPU-second, paid by every job of a
    run. By then every output is written whole and closed (batchlab.io) and any worker pool is joined,
    so the process ends as soon as its streams are flushed."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run_job()
