"""Fault tolerance: a training job stopped by SIGTERM or killed by SIGKILL resumes to the same numbers."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from batchlab import io
from batchlab.config import Study
from batchlab.data import make_dataset, save_dataset
from batchlab.training.resume import ResumePoint, StopFlag, TrainingInterrupted, run_identity
from batchlab.training.reference import train_run

CPU = torch.device("cpu")
TIMING = ["wall_time_s", "samples_per_s", "peak_mem_mb", "resumed_at_step"]
STUDY = Study.model_validate(
    {
        "data": {"name": "synthetic_ehr", "n_samples": 120, "n_features": 24, "n_factors": 3},
        "model": {"kind": "dense_ae", "hidden": [16], "latent": 4},
        "budget": {"unit": "epochs", "amount": 20},
        "batch_sizes": [1],
        "seeds": [0, 1],
        "curve_points": 12,
        "gradients": {"checkpoints": [0, 0.5, 1], "eval_samples": 16, "spread_batch_sizes": [1, 2]},
    }
)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "ehr.npz"
    save_dataset(make_dataset(STUDY.data), path)
    return path


def _assert_same_run(a, b):
    assert {k: v for k, v in a.record.items() if k not in TIMING} == {k: v for k, v in b.record.items() if k not in TIMING}
    assert a.curve == b.curve
    assert np.array_equal(a.embeddings, b.embeddings)
    assert a.checkpoints.keys() == b.checkpoints.keys()
    for f in a.checkpoints:
        assert all(torch.equal(a.checkpoints[f][k], b.checkpoints[f][k]) for k in a.checkpoints[f])


def test_stopped_run_resumes_bitwise(data_file, tmp_path):
    from batchlab.data import load_dataset

    data = load_dataset(data_file)
    reference = train_run(STUDY, data, 4, 0, CPU, (0.0, 0.5, 1.0))
    point = ResumePoint(tmp_path / "seed0.pt", run_identity("cell", 0), every_s=3600, stop=StopFlag())

    def sigterm_at_step_100(step):  # the signal lands during step 100; the trainer stops after step 101
        if step == 100:
            point.stop._handle(signal.SIGTERM, None)

    with pytest.raises(TrainingInterrupted, match="stopped by SIGTERM at step 101/"):
        train_run(STUDY, data, 4, 0, CPU, (0.0, 0.5, 1.0), progress=sigterm_at_step_100, resume=point)
    assert point.load()["step"] == 101
    again = ResumePoint(point.path, point.identity, every_s=3600)
    resumed = train_run(STUDY, data, 4, 0, CPU, (0.0, 0.5, 1.0), resume=again)
    assert resumed.record["resumed_at_step"] == 101 and reference.record["resumed_at_step"] == 0
    _assert_same_run(reference, resumed)


def test_state_of_another_run_is_ignored(tmp_path):
    point = ResumePoint(tmp_path / "s.pt", run_identity("cell", 0))
    point.save({"step": 5})
    assert point.load()["step"] == 5
    assert ResumePoint(point.path, run_identity("cell", 1)).load() is None
    assert ResumePoint(point.path, run_identity("edited cell", 0)).load() is None


def _study_as(engine: str) -> Study:
    return STUDY.model_copy(update={"training": STUDY.training.model_copy(update={"engine": engine})})


def _train_command(data_file: Path, out_dir: Path, every_s: float, engine: str = "batched") -> list[str]:
    return [
        sys.executable, "-m", "batchlab", "train", "--study", "s", "--study-json", _study_as(engine).model_dump_json(),
        "--batch-size", "1", "--data", str(data_file), "--device", "cpu",
        "--checkpoint-every-s", str(every_s), "--out-dir", str(out_dir),
    ]


def _outputs(out_dir: Path) -> dict:
    runs = pd.read_parquet(out_dir / "runs.parquet").drop(columns=TIMING)
    return {
        "runs": runs,
        "curves": pd.read_parquet(out_dir / "curves.parquet"),
        "embeddings": io.read_npz(out_dir / "embeddings.npz")["z"],
        "checkpoints": io.read_torch(out_dir / "checkpoints.pt"),
    }


@pytest.fixture(scope="module")
def uninterrupted(data_file, tmp_path_factory) -> dict:
    outputs = {}
    for engine in ("reference", "batched"):
        out = tmp_path_factory.mktemp(f"uninterrupted_{engine}")
        subprocess.run(_train_command(data_file, out, 3600, engine), check=True, capture_output=True)
        outputs[engine] = _outputs(out)
    return outputs


# The reference trainer runs the seeds one after another (kill it while the second seed trains: the first
# is kept whole); the batched engine trains both together in one state file (both resume mid-run).
STATE_FILE = {"reference": "lr0.001_seed1.pt", "batched": "lr0.001_seed0..lr0.001_seed1.pt"}


@pytest.mark.parametrize("engine", ["reference", "batched"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_training_job_resumes_to_the_same_outputs(sig, engine, data_file, uninterrupted, tmp_path):
    out = tmp_path / "cell"
    job = subprocess.Popen(_train_command(data_file, out, 0.05, engine), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / ".resume" / STATE_FILE[engine]).exists():
        assert job.poll() is None, f"the job ended before it could be killed: {job.stderr.read()}"
        assert time.monotonic() < deadline, "no state file appeared"
        time.sleep(0.01)
    os.kill(job.pid, sig)
    code = job.wait(60)
    stderr = job.stderr.read()
    assert code == (143 if sig == signal.SIGTERM else -signal.SIGKILL), stderr
    if sig == signal.SIGTERM:
        assert "stopped by SIGTERM at step" in stderr and "run it again to resume" in stderr
    assert not (out / "runs.parquet").exists(), "an interrupted job left an output behind"
    if engine == "reference":
        assert (out / ".resume" / "lr0.001_seed0.done.pt").exists()

    subprocess.run(_train_command(data_file, out, 0.05, engine), check=True, capture_output=True)
    got, expected = _outputs(out), uninterrupted[engine]
    pd.testing.assert_frame_equal(got["runs"], expected["runs"])
    pd.testing.assert_frame_equal(got["curves"], expected["curves"])
    assert np.array_equal(got["embeddings"], expected["embeddings"])
    assert got["checkpoints"]["steps"] == expected["checkpoints"]["steps"]
    for seed, states in expected["checkpoints"].items():
        if seed == "steps":  # the step of each checkpoint, an int
            continue
        for frac, state in states.items():
            assert all(torch.equal(state[k], got["checkpoints"][seed][frac][k]) for k in state)
    assert not (out / ".resume").exists(), "the resume state outlived the finished cell"
    resumed = pd.read_parquet(out / "runs.parquet")["resumed_at_step"]
    if engine == "reference":
        assert resumed.iloc[0] == 0 and resumed.iloc[1] > 0  # seed 0 was kept whole, seed 1 resumed mid-run
    else:
        assert (resumed > 0).all() and resumed.nunique() == 1  # both runs resumed from the same step


def test_contrastive_run_resumes_with_its_augmentation_stream(tmp_path):
    study = Study.model_validate(
        {
            "data": {"name": "mnist1d", "n_samples": 200},
            "model": {"kind": "contrastive", "channels": [4, 8], "latent": 8, "projection": 4},
            "budget": {"unit": "epochs", "amount": 2}, "batch_sizes": [8], "seeds": [0], "sharpness": {"samples": 16},
        }
    )
    data = make_dataset(study.data)
    reference = train_run(study, data, 8, 0, CPU)
    point = ResumePoint(tmp_path / "c.pt", run_identity("contrastive", 0), every_s=3600, stop=StopFlag())

    def sigterm_at_step_10(step):
        if step == 10:
            point.stop._handle(signal.SIGTERM, None)

    with pytest.raises(TrainingInterrupted):
        train_run(study, data, 8, 0, CPU, progress=sigterm_at_step_10, resume=point)
    resumed = train_run(study, data, 8, 0, CPU, resume=ResumePoint(point.path, point.identity, every_s=3600))
    assert resumed.record["resumed_at_step"] == 11
    _assert_same_run(reference, resumed)
