"""The timing tool: its chain of waited-on jobs, from job timestamps with a known answer, and the phases read from
job logs."""

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

SPEC = importlib.util.spec_from_file_location("pipeline_time", Path(__file__).parents[1] / "benchmarks/pipeline_time.py")
pipeline_time = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(pipeline_time)


def test_the_waited_on_chain_follows_the_latest_end_before_each_start():
    jobs = pd.DataFrame(
        [
            {"job": "data", "rule": "make_data", "start_s": 0.0, "end_s": 5.0},
            {"job": "short", "rule": "train", "start_s": 0.0, "end_s": 2.0},
            {"job": "side", "rule": "train", "start_s": 3.0, "end_s": 8.0},  # overlaps the last job: not waited on
            {"job": "report", "rule": "report", "start_s": 5.5, "end_s": 9.0},
        ]
    )
    jobs["job_s"] = jobs["end_s"] - jobs["start_s"]
    chain = pipeline_time.waited_chain(jobs)
    assert list(chain["job"]) == ["data", "report"]
    assert chain["gap_s"].tolist() == pytest.approx([0.0, 0.5])
    text = "\n".join(pipeline_time.chain_lines(chain, 9.0))
    assert "2 jobs in a chain, 8.5 s in jobs, 0.5 s between them, of the 9.0 s wall time" in text


def test_phases_are_read_from_each_jobs_log_and_summed_per_rule(tmp_path):
    """Two train jobs and a gradients job, their logs as the jobs write them: each rule's phases summed, 'other' last."""
    logs = tmp_path / "logs/s"
    logs.mkdir(parents=True)
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\trule_name\tthreads\n"
    jobs = {
        "gradients": ("gradients", 5.0, "batchlab gradients: phases: gpu_slot 1.00 s, other 3.50 s"),
        "train_bs1": ("train", 4.0, "batchlab train: phases: device 0.50 s, data 0.25 s, train 2.00 s, measure 0.75 s, "
                                    "write 0.25 s, other 0.00 s"),
        "train_bs2": ("train", 3.0, "batchlab train: phases: device 0.50 s, data 0.25 s, train 1.00 s, measure 0.75 s, "
                                    "write 0.25 s, other 0.00 s"),
    }
    for name, (rule, seconds, where) in jobs.items():
        (logs / f"{name}.benchmark.tsv").write_text(header + f"{seconds}\t0:00:0{seconds:.0f}\t1\t1\t1\t1\t0\t0\t90\t1\t{rule}\t1\n")
        (logs / f"{name}.log").write_text(
            f"progress\n{where}\nbatchlab {rule}: start-up 0.25 s, work {seconds - 0.5:.2f} s, cpu 1.00 s; loaded torch; "
            "started warm\n"
        )
    table = pipeline_time.phase_table(pipeline_time.job_table(tmp_path, 0.0))
    assert list(table.columns) == [
        "job_s", "startup_s", "gpu_slot", "device", "data", "train", "measure", "write", "other", "outside"
    ]
    assert table.loc["train"].to_dict() == pytest.approx(
        {"job_s": 7.0, "startup_s": 0.5, "gpu_slot": float("nan"), "device": 1.0, "data": 0.5, "train": 3.0, "measure": 1.5,
         "write": 0.5, "other": 0.0, "outside": 0.5}, nan_ok=True)
    assert table.loc["gradients", "gpu_slot"] == 1.0 and table.loc["gradients", "other"] == 3.5
    text = pipeline_time.phase_markdown(table)
    assert "| train | 7.0 | 0.5 (7%) | – | 1.0 (14%) | 0.5 (7%) | 3.0 (43%) | 1.5 (21%) | 0.5 (7%) | 0.0 (0%) | 0.5 (7%) |" in text
