"""Shared fixtures: one local end-to-end run of the tiny config, reused by the tests that read it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# Cost estimates in tests come from fixed rates, not a calibration of the machine (batchlab.training.cost).
os.environ["BATCHLAB_RATES"] = str(ROOT / "tests/config/rates.json")


def snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the project's Snakefile in `workdir` (which holds config/config.yaml)."""
    cmd = [*SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def tiny_workdir(path: Path) -> Path:
    (path / "config").mkdir(parents=True)
    shutil.copy(ROOT / "tests/config/tiny.yaml", path / "config/config.yaml")
    return path


@pytest.fixture(scope="session")
def local_run(tmp_path_factory) -> Path:
    """The tiny config run to the end on this machine."""
    work = tiny_workdir(tmp_path_factory.mktemp("local_run"))
    result = snakemake(work, "--cores", "2")
    assert result.returncode == 0, result.stderr[-4000:]
    return work
