"""The tiny config through a real SLURM (snakemake --executor slurm) gives the local run's results.

Needs a running SLURM whose default partition accepts jobs: `scripts/local-slurm.sh start` makes a
one-node cluster on this machine (.ci/run does so where it runs as root with apt).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import snakemake, tiny_workdir

pytestmark = pytest.mark.e2e
PARTITION = os.environ.get("BATCHLAB_SLURM_PARTITION", "batchlab")
COMPARED = ["tiny_ehr", "tiny_signal"]  # the cluster run makes these two studies' reports, not the whole config
TIMING = ["wall_time_s", "samples_per_s", "peak_mem_mb", "peak_mem_kind", "torch_threads"]


def _slurm_partition_up() -> str | None:
    """Why the test cannot run, or None when SLURM answers and the partition is up."""
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        return "SLURM is not installed (run scripts/local-slurm.sh start as root)"
    probe = subprocess.run(["sinfo", "-h", "-p", PARTITION, "-o", "%a %T"], capture_output=True, text=True)
    if probe.returncode != 0 or not probe.stdout.strip():
        return f"no SLURM controller answers for partition {PARTITION!r}: {probe.stderr.strip()[:200]}"
    if not probe.stdout.startswith("up") or "down" in probe.stdout or "drain" in probe.stdout:
        return f"partition {PARTITION!r} is not accepting jobs: {probe.stdout.strip()}"
    return None


@pytest.fixture(scope="module")
def slurm_run(tmp_path_factory) -> Path:
    reason = _slurm_partition_up()
    if reason:
        pytest.skip(reason)
    work = tiny_workdir(tmp_path_factory.mktemp("slurm_run"))
    # The cluster profile as shipped, with its partitions pointed at the local cluster (no GPU here).
    result = snakemake(
        work,
        "--workflow-profile", str(Path(__file__).resolve().parents[1] / "workflow/profiles/slurm"),
        "--slurm-no-account",
        "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "1",
        "--seconds-between-status-checks", "2",
        "--default-resources", f"slurm_partition={PARTITION}", "mem_mb=1000", "runtime=20",
        "--set-resources", f"train:slurm_partition={PARTITION}", f"gradients:slurm_partition={PARTITION}",
        "--latency-wait", "5",
        "--jobs", "4",
        *[f"reports/{study}/index.html" for study in COMPARED],
        timeout=1500,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return work


def test_slurm_run_matches_the_local_run(slurm_run: Path, local_run: Path):
    for study in COMPARED:
        got = pd.read_parquet(slurm_run / f"results/{study}/table.parquet").drop(columns=TIMING, errors="ignore")
        want = pd.read_parquet(local_run / f"results/{study}/table.parquet").drop(columns=TIMING, errors="ignore")
        pd.testing.assert_frame_equal(got, want)
        for name in ["critical_batch.parquet", "steps_to_target.parquet"]:
            pd.testing.assert_frame_equal(
                pd.read_parquet(slurm_run / f"results/{study}/{name}"), pd.read_parquet(local_run / f"results/{study}/{name}")
            )
    assert all((slurm_run / f"reports/{study}/index.html").is_file() for study in COMPARED)
    log = "\n".join(p.read_text() for p in (slurm_run / ".snakemake/log").glob("*.snakemake.log"))
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", log)
    cluster_jobs = re.findall(r"^rule (\w+):", log, flags=re.M)  # `localrule` jobs run on the submitting host
    assert {"train", "gradients", "downstream"} <= set(cluster_jobs)
    assert len(submitted) == len(cluster_jobs), "every non-local job goes through sbatch"
