"""Study-wide jobs: each cell's numbers are those of its own per-cell function, whatever the workers; cells are reused."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from batchlab import io
from batchlab.jobs.cell_cache import Cell, CellCache, cell_key, compute_cells
from batchlab.config import Downstream, GradientNoise, validate_config
from batchlab.data import load_dataset, make_dataset, save_dataset
from batchlab.measure.downstream import evaluate_embeddings
from batchlab.nets.models import build_model
from batchlab.measure.noise import measure_cell
from batchlab.forked import one_thread
from batchlab.jobs.study_cells import downstream_cells, gradient_cells

STUDY = {
    "data": {"name": "synthetic_ehr", "n_samples": 120, "n_features": 24, "n_factors": 3},
    "model": {"kind": "dense_ae", "hidden": [8], "latent": 4},
    "budget": {"unit": "epochs", "amount": 1},
    "batch_sizes": [1, 4, 16],
    "seeds": [0, 1],
    "downstream": {"folds": 3},
    "gradients": {"checkpoints": [0, 1], "eval_samples": 32, "spread_batch_sizes": [1, 4, 8], "seeds": 2},
}


@pytest.fixture(scope="module")
def cells(tmp_path_factory) -> dict:
    """A study's data, and for each batch size embeddings and checkpoints as a training job leaves them."""
    root = tmp_path_factory.mktemp("cells")
    study = validate_config({"studies": {"s": STUDY}}).studies["s"]
    data_path = root / "data.npz"
    save_dataset(make_dataset(study.data), data_path)
    data = load_dataset(data_path)
    rng = np.random.default_rng(0)
    embeddings, checkpoints = {}, {}
    for b in study.batch_sizes:
        embeddings[b] = root / f"bs{b}/embeddings.npz"
        io.write_npz(embeddings[b], z=rng.normal(size=(2, len(data.x), 4)), seed=np.array([0, 1]), lr=np.array([1e-3, 1e-3]))
        states = {}
        for seed in study.seeds:
            torch.manual_seed(100 * b + seed)
            states[f"seed{seed}"] = {f: build_model(study.model, (24,)).state_dict() for f in ("0", "1")}
        checkpoints[b] = root / f"bs{b}/checkpoints.pt"
        io.write_torch(states, checkpoints[b])
    return {"study": study, "data": data_path, "embeddings": embeddings, "checkpoints": checkpoints, "root": root}


@pytest.mark.parametrize("workers", [1, 3])
def test_downstream_cells_equal_the_per_cell_function(cells, tmp_path: Path, workers):
    spec = Downstream(folds=3)
    table = downstream_cells("s", spec, cells["data"], list(cells["embeddings"].items()), tmp_path, workers)
    data = load_dataset(cells["data"])
    expected = []
    for b, path in cells["embeddings"].items():
        emb = io.read_npz(path)
        keys = [{"study": "s", "batch_size": b, "seed": int(s), "lr": float(lr)} for s, lr in zip(emb["seed"], emb["lr"])]
        with one_thread():
            expected.append(evaluate_embeddings(emb["z"], keys, data.labels[data.target], data.tasks[data.target], spec))
    pd.testing.assert_frame_equal(table, pd.concat(expected, ignore_index=True), check_exact=True)


@pytest.mark.parametrize("workers", [1, 3])
def test_gradient_cells_equal_the_per_cell_function(cells, tmp_path: Path, workers):
    study, spec = cells["study"], cells["study"].gradients
    view = study.cell_view(1).model_copy(update={"batch_sizes": study.batch_sizes})
    noise, spread = gradient_cells("s", view, spec, cells["data"], list(cells["checkpoints"].items()), "cpu", tmp_path, workers)
    data = load_dataset(cells["data"])
    with one_thread():  # as a job of one cell ran: one thread
        expected = [
            measure_cell(study.cell_view(b), spec, data, b, io.read_torch(path), torch.device("cpu"), measure_init=b == 1)
            for b, path in cells["checkpoints"].items()
        ]
    pd.testing.assert_frame_equal(noise, pd.concat([e[0].assign(study="s") for e in expected], ignore_index=True), check_exact=True)
    pd.testing.assert_frame_equal(spread, pd.concat([e[1].assign(study="s") for e in expected], ignore_index=True), check_exact=True)
    assert sorted(noise.loc[noise["fraction"] == 0, "batch_size"].unique()) == [1], "initial weights measured once"


def _frame(x: float) -> tuple:
    return (pd.DataFrame({"x": [x]}),)


def test_cells_are_reused_until_their_inputs_change(tmp_path: Path):
    inputs = {b: tmp_path / f"in{b}.txt" for b in (1, 2, 3)}
    for b, path in inputs.items():
        path.write_text(str(b))
    cache = CellCache(tmp_path / "cache", "step", ("t",))
    computed = []

    def compute(b):
        computed.append(b)
        return _frame(float(b))

    def run(sizes, settings="a"):
        jobs = [Cell(b, cell_key("step", {"b": b, "settings": settings}, [inputs[b]]), (b,)) for b in sizes]
        (paths,) = compute_cells(jobs, compute, cache, log=lambda msg: None)
        return [float(pd.read_parquet(p)["x"].iloc[0]) for p in paths]

    assert run([1, 2]) == [1.0, 2.0] and computed == [1, 2]
    assert run([1, 2, 3]) == [1.0, 2.0, 3.0] and computed == [1, 2, 3], "only the new cell"
    inputs[2].write_text("changed")
    run([1, 2, 3])
    assert computed == [1, 2, 3, 2], "only the cell whose input changed"
    run([1, 2, 3], settings="b")
    assert computed == [1, 2, 3, 2, 1, 2, 3], "new settings: every cell"
    assert len(list((tmp_path / "cache").iterdir())) == 3, "results of cells no longer asked for are removed"


def test_a_cell_missing_one_table_is_computed_again(tmp_path: Path):
    cache = CellCache(tmp_path, "step", ("a", "b"))
    cache.save("k", (pd.DataFrame({"x": [1]}), pd.DataFrame({"y": [2]})))
    assert cache.has("k")
    cache.paths("k")[1].unlink()
    assert not cache.has("k")


def test_changed_code_is_not_answered_from_the_cache(tmp_path: Path):
    """The key covers the package's source: edit any module of it and the code's digest changes."""
    from batchlab.jobs.cell_cache import code_digest

    package = tmp_path / "batchlab"
    (package / "report").mkdir(parents=True)
    (package / "measure.py").write_text("VERSION = 1\n")
    (package / "report" / "page.py").write_text("TITLE = 'a'\n")
    first = code_digest(package)
    (package / "report" / "page.py").write_text("TITLE = 'b'\n")
    code_digest.cache_clear()
    assert code_digest(package) != first
    assert code_digest() != code_digest(package)


def test_the_code_digest_does_not_depend_on_what_the_process_imported():
    """A job forked from a warm server has imported every step's modules, a cold one only its own: both
    must name a cell the same."""
    probe = "from batchlab.jobs.cell_cache import code_digest\n{}print(code_digest())"
    lean, loaded = (
        subprocess.run([sys.executable, "-c", probe.format(extra)], capture_output=True, text=True, check=True).stdout
        for extra in ("", "import batchlab.cli, batchlab.measure.noise, batchlab.report.study\n")
    )
    assert lean == loaded and len(lean.strip()) == 64