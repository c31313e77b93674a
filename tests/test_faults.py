"""A training job killed while Snakemake runs it is retried (`--retries`) and resumes from its saved state."""

import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT, SNAKEMAKE

pytestmark = pytest.mark.e2e
CONFIG = {
    "device": "cpu",
    "checkpoint_every_s": 0.2,
    "studies": {
        "fault_study": {
            "data": {"name": "synthetic_ehr", "n_samples": 240, "n_features": 60, "n_factors": 4},
            "model": {"kind": "dense_ae", "hidden": [32], "latent": 8},
            "budget": {"unit": "epochs", "amount": 60},
            "batch_sizes": [1, 4],
            "seeds": [0],
            "downstream": {"folds": 3},
            "gradients": {"checkpoints": [1], "eval_samples": 16, "spread_batch_sizes": [1, 2]},
        }
    },
}


def test_killed_job_is_retried_and_resumes(tmp_path: Path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(CONFIG))
    target = "results/fault_study/bs1/runs.parquet"
    cmd = [*SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path), "--cores", "1", "--retries", "1", target]
    run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    state = tmp_path / "results/fault_study/bs1/.resume/lr0.001_seed0.pt"
    deadline = time.monotonic() + 300
    while not state.exists():
        assert run.poll() is None, run.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "the training job saved no state"
        time.sleep(0.05)
    killed = subprocess.run(["pkill", f"-{signal.SIGKILL.value}", "-f", "batchlab train --study fault_study"])
    assert killed.returncode == 0, "no training process to kill"
    output = run.communicate(timeout=600)[0]
    assert run.returncode == 0, output[-3000:]
    assert "Trying to restart job" in output or "attempt 2" in output.lower(), output[-3000:]
    runs = pd.read_parquet(tmp_path / target)
    assert runs.loc[0, "resumed_at_step"] > 0 and runs.loc[0, "steps"] == 192 * 60
    assert not (tmp_path / "results/fault_study/bs1/.resume").exists()
