"""One (study, batch size) cell of a sweep: every seed trained, results written as tidy files."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from batchlab import io

from batchlab.training import engine, model_check, rate_search
from batchlab.config import RateGrid, Study
from batchlab.data import load_dataset
from batchlab.measure.crossing import steps_to_target
from batchlab.training.phases import phase
from batchlab.training.resume import ResumePoint, StopFlag, run_identity
from batchlab.training.run import RunResult, StopAt
from batchlab.training.device import resolve_device
from batchlab.training.reference import Progress, train_run
from batchlab.training.tuning import rank_learning_rates

log = logging.getLogger(__name__)


def train_cell(
    study: Study,
    study_name: str,
    batch_size: int,
    data_path: str | Path,
    out_dir: str | Path,
    device: str = "auto",
    checkpoint_every_s: float = 300.0,
    stop: StopFlag | None = None,
    cuda_graphs: str | None = None,
    stop_at: StopAt | None = None,
    lr_tuning: RateGrid | None = None,
    rate_check: float | None = None,
) -> pd.DataFrame:
    """Train all runs of the cell and write runs.parquet, curves.parquet, embeddings.npz, checkpoints.pt.

    The runs are trained together by the batched engine (batchlab.training.engine), or one after another by the
    reference trainer when the study's training.engine says so (`auto`: on a CPU).
    A run per (learning rate, seed): one rate unless the study's lr_rule is tuned, in which case every
    rate of the grid is trained and the best on validation loss is kept (batchlab.training.tuning).
    lr_search.parquet holds every run with its rate's rank; the other outputs hold the chosen rate's.
    Every run keeps its final weights; the runs of the seeds whose gradient noise is measured also keep
    the weights at the study's gradient checkpoints. State is kept in out_dir/.resume/ while the cell
    runs (the progress every `checkpoint_every_s` seconds; with the reference trainer also each finished
    run whole), so a killed job started again continues where it stopped; the folder is removed once
    the outputs are written. `cuda_graphs`, when given, replaces the study's training.cuda_graphs (it
    reaches the job apart from the study, since it changes speed and not numbers). With `stop_at` every
    run trains to that validation loss or to the budget, whichever comes first (a train-to-target cell:
    the study is its to_target_view). With `lr_tuning` as well, the rate is tuned first by steps to the target on
    the grid's tuning seeds (batchlab.training.rate_search), and the study's seeds then train at the chosen rate.
    With `rate_check` instead, the seeds also train at that multiple of the rate, and each run's row records where
    its twin crossed the target (rate_check_steps), for the critical-batch analysis's rate-limit check.
    """
    out_dir = Path(out_dir)
    if cuda_graphs is not None:
        study = study.model_copy(update={"training": study.training.model_copy(update={"cuda_graphs": cuda_graphs})})
    resume_dir = out_dir / ".resume"
    cell_json = study.cell_view(batch_size).model_dump_json()
    with phase("device"):
        dev = resolve_device(device)
        torch.use_deterministic_algorithms(True, warn_only=dev.type == "cuda")
        if dev.type == "cuda":
            torch.zeros((), device=dev)  # create the CUDA context here, so that its cost shows as its own phase
    with phase("data"):
        data = load_dataset(data_path)
    measured = set(study.seeds[: study.gradients.seeds])
    fractions = {
        seed: tuple(sorted({1.0, *study.gradients.checkpoints})) if seed in measured else (1.0,) for seed in study.seeds
    }
    runs = [(lr, seed) for lr in study.optim.candidate_lrs() for seed in study.seeds]
    if stop_at is not None:
        cell_json += f"|stop_at={stop_at.value!r}|average={stop_at.average_half_life!r}"
    fallback = model_check.fallback_reason(study, data, dev) if engine.use_batched(study, dev) else ""
    if fallback:
        log.warning("study %r, batch size %d: the reference trainer trains the runs, not the batched engine: %s",
                    study_name, batch_size, fallback)
    train = _train_batched if engine.use_batched(study, dev) and not fallback else _train_one_by_one

    def train_these(these, fractions_of, at):
        results = train(study, study_name, batch_size, data, dev, these, fractions_of, cell_json, resume_dir,
                        checkpoint_every_s, stop or StopFlag(), at)
        for result in results.values():  # why the batched engine was asked for and not used ('' otherwise)
            result.record["engine_fallback_reason"] = fallback
        return results

    if lr_tuning is not None and stop_at is not None:
        with phase("train"):
            search = rate_search.tune(study, batch_size, lr_tuning, stop_at, train_these)
            results = train_these([(search.base_lr, seed) for seed in study.seeds], fractions, stop_at)
        with phase("write"):
            return _write_tuned_outputs(study, study_name, batch_size, data.name, results, search, out_dir, resume_dir)
    checks = []
    if rate_check is not None and stop_at is not None:
        checks = [(study.optim.lr * rate_check, seed) for seed in study.seeds]
    with phase("train"):
        results = train_these(runs + checks, fractions, stop_at)
    with phase("write"):
        checked = {key: results.pop(key) for key in checks}
        return _write_outputs(study, study_name, batch_size, data.name, results, out_dir, resume_dir,
                              _rate_check_rows(study, study_name, data.name, checked, rate_check, stop_at))


def _records(study, study_name, dataset, results) -> pd.DataFrame:
    return pd.DataFrame(
        [{"study": study_name, "dataset": dataset, "model": study.model.kind, **r.record} for r in results.values()]
    )


def _write_outputs(
    study, study_name, batch_size, dataset, results, out_dir: Path, resume_dir: Path, checked: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The cell's files from its finished runs (the chosen learning rate's), and the resume state removed; a rate
    check's runs (`checked`) join lr_search and lend each run the steps its seed's twin took."""
    every_run = _records(study, study_name, dataset, results)
    ranking = rank_learning_rates(every_run)
    best = float(ranking.loc[ranking["selected"], "base_lr"].item())
    lr_search = every_run.merge(ranking[["base_lr", "rank", "selected"]], on="base_lr", how="left")
    chosen = [results[best, seed] for seed in study.seeds]
    runs = lr_search[lr_search["selected"]].drop(columns=["rank", "selected"]).reset_index(drop=True)
    runs["lr_candidates"] = len(ranking)
    if checked is not None and len(checked):
        twin = checked[["seed", "lr", "base_lr", "crossing_steps"]].rename(
            columns={"lr": "rate_check_lr", "base_lr": "rate_check_base_lr", "crossing_steps": "rate_check_steps"})
        runs = runs.merge(twin, on="seed", how="left")
        lr_search = pd.concat([lr_search.assign(role="measured"), checked.assign(role="rate_check")], ignore_index=True)
    _write_chosen(study, study_name, batch_size, chosen, runs, lr_search, out_dir, resume_dir)
    return runs


def _rate_check_rows(study, study_name, dataset, checked: dict, factor, stop_at: StopAt | None) -> pd.DataFrame | None:
    """A rate check's runs as records, with where each crossed the target (NaN where it never reached it)."""
    if not checked:
        return None
    rows = _records(study, study_name, dataset, checked)
    curves = [result.curve for result in checked.values()]
    rows["crossing_steps"] = [
        steps_to_target([c["step"] for c in curve], [c["val_loss"] for c in curve], stop_at.value,
                        study.steps_to_target.interpolate) if reached else np.nan
        for curve, reached in zip(curves, rows["reached_target"].astype(bool))
    ]
    return rows.assign(rate_check=factor)


def _write_tuned_outputs(study, study_name, batch_size, dataset, results, search, out_dir, resume_dir) -> pd.DataFrame:
    """A rate-tuned train-to-target cell's files: the study's seeds at the chosen rate, and every tuning trial."""
    runs = _records(study, study_name, dataset, results).assign(
        lr_candidates=search.n_rates, lr_tuned=True, lr_note=search.note, lr_choice=search.choice,
        tuning_trials=len(search.trials), tuning_trials_stopped=int((search.trials["pruned_step"] >= 0).sum()),
        tuning_steps_skipped=search.steps_skipped,
    )
    lr_search = pd.concat([search.trials.assign(role="tuning"), runs.assign(role="measured")], ignore_index=True)
    chosen = [results[search.base_lr, seed] for seed in study.seeds]
    _write_chosen(study, study_name, batch_size, chosen, runs, lr_search, out_dir, resume_dir)
    return runs


def _write_chosen(study, study_name, batch_size, chosen, runs, lr_search, out_dir: Path, resume_dir: Path) -> None:
    curves = [
        {"study": study_name, "batch_size": batch_size, "seed": seed, **row}
        for seed, result in zip(study.seeds, chosen)
        for row in result.curve
    ]
    io.write_npz(
        out_dir / "embeddings.npz",
        z=np.stack([r.embeddings for r in chosen]),
        seed=np.asarray(study.seeds, dtype=np.int64),
        lr=runs["lr"].to_numpy(),
    )
    checkpoints = {
        f"seed{seed}": {f"{f:g}": state for f, state in result.checkpoints.items()}
        for seed, result in zip(study.seeds, chosen)
    }
    checkpoints["steps"] = {
        f"seed{seed}": {f"{f:g}": step for f, step in result.checkpoint_steps.items()}
        for seed, result in zip(study.seeds, chosen)
    }
    io.write_torch(checkpoints, out_dir / "checkpoints.pt")
    io.write_parquet(pd.DataFrame(curves), out_dir / "curves.parquet")
    io.write_parquet(lr_search, out_dir / "lr_search.parquet")
    io.write_parquet(runs, out_dir / "runs.parquet")
    shutil.rmtree(resume_dir, ignore_errors=True)


def _train_one_by_one(
    study, study_name, batch_size, data, dev, runs, fractions, cell_json, resume_dir, every_s, stop, stop_at
) -> dict[tuple[float, int], RunResult]:
    """Every run of the cell by the reference trainer, one after another; each finished run is kept in
    resume_dir, so a job started again skips it."""
    steps = study.budget.steps(batch_size, len(data.indices("train")))
    results = {}
    for lr, seed in runs:
        tag = f"lr{lr:g}_seed{seed}"
        identity = run_identity(cell_json, seed) + f"|lr={lr!r}"
        finished = ResumePoint(resume_dir / f"{tag}.done.pt", identity)
        result = _finished_run(finished)
        if result is None:
            label = f"{study_name} bs={batch_size} lr={lr:g} seed={seed}"
            progress = ResumePoint(resume_dir / f"{tag}.pt", identity, every_s, stop)
            result = train_run(
                study, data, batch_size, seed, dev, fractions[seed], Progress(label, steps, batch_size), progress, lr,
                stop_at,
            )
            finished.save(_as_tensors(result))
            progress.clear()
        if stop_at is not None and stop_at.pruner is not None:
            stop_at.pruner.finished((lr, seed), result.record["reached_target"], result.curve)
        results[lr, seed] = result
    return results


def _train_batched(
    study, study_name, batch_size, data, dev, runs, fractions, cell_json, resume_dir, every_s, stop, stop_at
) -> dict[tuple[float, int], RunResult]:
    """Every run of the cell in one call of the batched engine, resumable from one state file.

    The file is named after the runs it holds (one run: the reference trainer's name for it).
    """
    tags = [f"lr{lr:g}_seed{seed}" for lr, seed in runs]
    name = tags[0] if len(tags) == 1 else f"{tags[0]}..{tags[-1]}"
    identity = run_identity(cell_json, -1) + f"|batched|runs={runs!r}"
    point = ResumePoint(resume_dir / f"{name}.pt", identity, every_s, stop)
    steps = study.budget.steps(batch_size, len(data.indices("train")))
    label = f"{study_name} bs={batch_size} {len(runs)} runs"
    results = engine.train_runs(
        study, data, batch_size, runs, dev, fractions, Progress(label, steps, batch_size * len(runs)), point, stop_at
    )
    point.clear()
    return dict(zip(runs, results))


def _as_tensors(result: RunResult) -> dict:
    """A finished run in a form torch.load(weights_only=True) reads back."""
    return {
        "record": result.record,
        "curve": result.curve,
        "embeddings": torch.from_numpy(result.embeddings),
        "checkpoints": result.checkpoints,
        "checkpoint_steps": result.checkpoint_steps,
    }


def _finished_run(point: ResumePoint) -> RunResult | None:
    state = point.load()
    if state is None:
        return None
    return RunResult(
        state["record"], state["curve"], state["embeddings"].numpy(), state["checkpoints"], state.get("checkpoint_steps", {})
    )
