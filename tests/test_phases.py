"""Phases of a job's work (batchlab.training.phases): nested phases counted once, the log line and its reading."""

import subprocess

import pytest

from batchlab.training import phases
from batchlab.cli import USAGE_LINE
from test_resume import _train_command, data_file  # noqa: F401


@pytest.fixture
def clock(monkeypatch):
    """A clock that moves only when told: phases.perf_counter reads now[0]."""
    now = [100.0]
    monkeypatch.setattr(phases.time, "perf_counter", lambda: now[0])
    phases.reset()
    yield now
    phases.reset()


def test_a_phase_inside_another_is_taken_out_of_it(clock):
    with phases.phase("train"):
        clock[0] += 2.0
        with phases.phase("measure"):
            clock[0] += 0.5
            with phases.phase("capture"):
                clock[0] += 0.25
        clock[0] += 1.0
        with phases.phase("measure"):
            clock[0] += 0.5
    with phases.phase("write"):
        clock[0] += 0.125
    assert phases.recorded() == {"train": 3.0, "measure": 1.0, "capture": 0.25, "write": 0.125}


def test_a_decorated_function_counts_every_call_and_a_raising_block_still_counts(clock):
    @phases.phase("measure")
    def measure(seconds: float) -> float:
        clock[0] += seconds
        return seconds

    assert measure(1.0) + measure(0.5) == 1.5
    with pytest.raises(RuntimeError), phases.phase("capture"):
        clock[0] += 0.75
        raise RuntimeError("capture failed")
    assert phases.recorded() == {"measure": 1.5, "capture": 0.75}


def test_the_line_gives_the_rest_of_the_work_as_other_and_reads_back(clock):
    assert phases.phases_line("train", 5.0) is None
    with phases.phase("device"):
        clock[0] += 1.25
    with phases.phase("train"):
        clock[0] += 2.5
    line = phases.phases_line("train", 5.0)
    assert line == "batchlab train: phases: device 1.25 s, train 2.50 s, other 1.25 s"
    match = phases.PHASES_LINE.search(f"some log\n{line}\nbatchlab train: start-up 1.00 s, ...")
    assert match["step"] == "train"
    assert phases.parse(match["phases"]) == {"device": 1.25, "train": 2.5, "other": 1.25}


@pytest.mark.parametrize("engine", ["reference", "batched"])
def test_a_train_job_logs_where_its_work_went(engine, data_file, tmp_path):
    """A real train job of each trainer: its phases, adding up to its work, in the line before its usage line."""
    job = subprocess.run(_train_command(data_file, tmp_path, 3600, engine), capture_output=True, text=True)
    assert job.returncode == 0, job.stderr
    where_line, usage_line = job.stderr.rstrip().splitlines()[-2:]
    where = phases.parse(phases.PHASES_LINE.fullmatch(where_line)["phases"])
    usage = USAGE_LINE.fullmatch(usage_line)
    assert list(where) == ["device", "data", "train", "measure", "write", "other"]
    assert sum(where.values()) == pytest.approx(float(usage["work"]), abs=0.03)  # two decimals per phase
    assert where["train"] > where["measure"] > 0
