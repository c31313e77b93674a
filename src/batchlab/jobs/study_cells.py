"""The cheap per-cell stages as one job per study: downstream SVMs and gradient noise for every cell.

A process per cell paid its imports (scikit-learn or torch) for seconds of work; one job per study pays
them once. Each cell is still computed on its own by the per-cell functions (`downstream.evaluate_embeddings`,
`noise.measure_cell`), cached by the content of its inputs (batchlab.jobs.cell_cache) and computed on one
thread (batchlab.forked), so its numbers are those of a job of one cell, and adding a batch size computes only the new cell.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from batchlab import io
from batchlab.jobs.cell_cache import Cell, CellCache, cell_key, compute_cells, file_digest
from batchlab.config import Downstream, GradientNoise, Study, study_from_json

if TYPE_CHECKING:
    import pandas as pd


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def downstream_cells(
    study_name: str, spec: Downstream, data_path: str | Path, cells: list[tuple[int, str | Path]],
    cache_dir: str | Path, workers: int = 1,
) -> pd.DataFrame:
    """The downstream table of every cell (batch size, embeddings file), in the order given."""
    from batchlab.analysis.aggregate import read_all

    shared = {"study": study_name, "downstream": spec.model_dump_json(), "data": file_digest(data_path)}
    jobs = [
        Cell(b, cell_key("downstream", {**shared, "batch_size": b}, [emb]), (study_name, spec.model_dump_json(), str(data_path), b, str(emb)))
        for b, emb in cells
    ]
    (tables,) = compute_cells(jobs, downstream_cell, CellCache(cache_dir, "downstream", ("downstream",)), workers, _log)
    return read_all(tables)


def downstream_cell(study_name: str, spec_json: str, data_path: str, batch_size: int, embeddings: str) -> tuple:
    """SVM scores of one cell's embeddings (one row per run)."""
    from batchlab.data import load_dataset
    from batchlab.measure.downstream import evaluate_embeddings

    spec, data = Downstream.model_validate_json(spec_json), load_dataset(data_path)
    emb = io.read_npz(embeddings)
    keys = [
        {"study": study_name, "batch_size": batch_size, "seed": int(s), "lr": float(lr)}
        for s, lr in zip(emb["seed"], emb["lr"])
    ]
    try:
        table = evaluate_embeddings(emb["z"], keys, data.labels[data.target], data.tasks[data.target], spec, data.groups)
    except ValueError as err:
        raise ValueError(f"study {study_name!r}, {data_path}: {err}") from None
    return (table,)


def gradient_cells(
    study_name: str, study: Study, spec: GradientNoise, data_path: str | Path, cells: list[tuple[int, str | Path]],
    device: str, cache_dir: str | Path, workers: int = 1, spread: bool = True, noise: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Noise statistics (none without `noise`) and gradient spread (none without `spread`; the own batch size's
    alone without `noise`) of every cell (batch size, checkpoints file) of a study.

    The initial weights, the same in every cell of a seed, are measured in the smallest batch size's
    cell only. On a GPU the cells run one after another in this process (it holds one GPU slot).
    """
    from batchlab.analysis.aggregate import read_all
    from batchlab.training.device import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda":
        workers = 1
    smallest = min(study.batch_sizes)
    shared = {"study": study_name, "gradients": spec.model_dump_json(), "device": dev.type, "data": file_digest(data_path)}
    jobs = []
    for b, checkpoints in cells:
        cell_json = study.cell_view(b).model_dump_json()
        settings = {**shared, "cell": cell_json, "batch_size": b, "measure_init": b == smallest, "spread": spread,
                    **({} if noise else {"noise": False})}  # the sweep's cache keys stay as they were
        args = (study_name, cell_json, spec.model_dump_json(), str(data_path), b, str(checkpoints), str(dev), b == smallest,
                spread, noise)
        jobs.append(Cell(b, cell_key("gradients", settings, [checkpoints]), args))
    noise, spread = compute_cells(jobs, gradient_cell, CellCache(cache_dir, "gradients", ("noise", "spread")), workers, _log)
    return read_all(noise), read_all(spread)


def gradient_cell(
    study_name: str, cell_json: str, spec_json: str, data_path: str, batch_size: int, checkpoints: str, device: str,
    measure_init: bool, spread: bool = True, noise: bool = True,
) -> tuple:
    """Gradient noise and spread at one cell's checkpoints."""
    import torch

    from batchlab.data import load_dataset
    from batchlab.measure.noise import measure_cell

    stats, spread = measure_cell(
        study_from_json(cell_json),
        GradientNoise.model_validate_json(spec_json),
        load_dataset(data_path),
        batch_size,
        io.read_torch(checkpoints),
        torch.device(device),
        measure_init=measure_init,
        spread=spread,
        noise=noise,
    )
    return stats.assign(study=study_name), spread.assign(study=study_name)
