"""The timing tool's chain of waited-on jobs, from job timestamps with a known answer."""

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
