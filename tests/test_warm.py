"""Warm start (batchlab.jobs.warm): a job forked from a server computes what it computes started cold, bit for
bit, passes on its status, streams and signals, resumes when killed, and starts cold, saying so, when
no server answers."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from batchlab import PACKAGE
from batchlab.jobs import warm
from batchlab.cli import ENTRY, warm_preload
from test_resume import STATE_FILE, _outputs, _train_command, data_file, uninterrupted  # noqa: F401

pytestmark = pytest.mark.skipif(warm.supported() is not None, reason="warm start is Linux only")


def _env(**changes) -> dict:
    env = {k: v for k, v in os.environ.items() if k != warm.ENV and "NUM_THREADS" not in k}
    env.update({k: v for k, v in changes.items() if v is not None})
    return env


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """The train step's server as the workflow starts it, and a lean one for every other step."""
    log = tmp_path_factory.mktemp("warm") / "warm.log"
    started = warm.Servers.start({"train": warm_preload()["train"], warm.ANY: ["batchlab.cli"]}, log, ENTRY)
    os.environ.pop(warm.ENV)  # each test passes it on to its jobs itself
    yield started
    started.stop()
    assert not started.folder.exists()


def test_warm_job_computes_what_a_cold_job_does(servers, data_file, tmp_path):
    """The same cell trained cold and warm, each with the one thread Snakemake gives a train job (a server
    that kept its own thread count would train with the machine's): the same numbers, bit for bit."""
    outputs, logs = {}, {}
    for start, folder in (("cold", None), ("warm", str(servers.folder))):
        out = tmp_path / start
        env = _env(**{warm.ENV: folder, "OMP_NUM_THREADS": "1"})
        job = subprocess.run(_train_command(data_file, out, 3600), env=env, capture_output=True, text=True)
        assert job.returncode == 0, job.stderr
        outputs[start], logs[start] = _outputs(out), job.stderr
    assert logs["cold"].rstrip().endswith("started cold") and logs["warm"].rstrip().endswith("started warm")
    cold, hot = outputs["cold"], outputs["warm"]
    assert (hot["runs"]["torch_threads"] == 1).all()
    assert (cold["runs"].pop("peak_mem_kind") == "process_max_rss").all()
    assert (hot["runs"].pop("peak_mem_kind") == "process_max_rss_forked").all()  # library pages shared with the server
    pd.testing.assert_frame_equal(hot["runs"], cold["runs"])
    pd.testing.assert_frame_equal(hot["curves"], cold["curves"])
    assert np.array_equal(hot["embeddings"], cold["embeddings"])
    for seed, states in cold["checkpoints"].items():
        if seed != "steps":
            for frac, state in states.items():
                assert all(torch.equal(state[k], hot["checkpoints"][seed][frac][k]) for k in state)


def test_warm_job_passes_on_its_status_and_streams(servers, tmp_path):
    env = _env(**{warm.ENV: str(servers.folder)})
    bad = subprocess.run([sys.executable, "-m", "batchlab", "index", "--summaries", "missing.json", "--out", "x.html"],
                         env=env, cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 2 and "missing.json" in bad.stderr and "started warm" in bad.stderr
    usage = subprocess.run([sys.executable, "-m", "batchlab", "train", "--bogus"], env=env, capture_output=True, text=True)
    assert usage.returncode == 2 and "the following arguments are required: --study" in usage.stderr
    schema = subprocess.run([sys.executable, "-m", "batchlab", "schema", "--out", "schema.json"], env=env, cwd=tmp_path)
    assert schema.returncode == 0 and (tmp_path / "schema.json").stat().st_size > 0  # written in the job's folder


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killed_warm_job_resumes_to_the_same_outputs(sig, servers, data_file, uninterrupted, tmp_path):
    """SIGTERM reaches the forked job through its client (it saves its state and stops); SIGKILL ends the
    client at once, and the server then kills its job. Run again, the cell resumes to the same numbers."""
    out, env = tmp_path / "cell", _env(**{warm.ENV: str(servers.folder)})
    server = servers.processes["train"].pid
    job = subprocess.Popen(_train_command(data_file, out, 0.05), env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / ".resume" / STATE_FILE["batched"]).exists():
        assert job.poll() is None, f"the job ended before it could be killed: {job.stderr.read()}"
        assert time.monotonic() < deadline, "no state file appeared"
        time.sleep(0.01)
    os.kill(job.pid, sig)
    code, stderr = job.wait(60), job.stderr.read()
    if sig == signal.SIGTERM:
        assert code == 143 and "stopped by SIGTERM at step" in stderr, stderr
    else:
        assert code == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while _children(server):
        assert time.monotonic() < deadline, "the killed client's job still runs"
        time.sleep(0.01)
    assert not (out / "runs.parquet").exists(), "an interrupted job left an output behind"

    subprocess.run(_train_command(data_file, out, 0.05), env=env, check=True, capture_output=True)
    got, expected = _outputs(out), uninterrupted["batched"]  # the uninterrupted run started cold
    pd.testing.assert_frame_equal(got["runs"].drop(columns="peak_mem_kind"), expected["runs"].drop(columns="peak_mem_kind"))
    assert np.array_equal(got["embeddings"], expected["embeddings"])
    assert (pd.read_parquet(out / "runs.parquet")["resumed_at_step"] > 0).all()


def test_without_a_server_the_job_starts_cold_and_says_so(tmp_path):
    env = _env(**{warm.ENV: str(tmp_path / "no-servers-here")})
    job = subprocess.run([sys.executable, "-m", "batchlab", "schema", "--out", "s.json"], env=env, cwd=tmp_path,
                         capture_output=True, text=True)
    assert job.returncode == 0 and (tmp_path / "s.json").exists()
    assert "warm start unavailable" in job.stderr and "this job starts cold" in job.stderr


def test_servers_stop_when_snakemake_is_gone(tmp_path):
    """A run killed outright (no onsuccess or onerror hook) leaves no server behind."""
    code = (
        "import sys; from pathlib import Path; from batchlab.jobs import warm; from batchlab.cli import ENTRY\n"
        f"s = warm.Servers.start({{warm.ANY: []}}, Path({str(tmp_path / 'log')!r}), ENTRY)\n"
        "print(s.processes[warm.ANY].pid, s.folder, flush=True)\n"
        "import os; os._exit(0)\n"
    )
    pid, folder = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]:
        assert time.monotonic() < deadline, "the server outlived its parent"
        time.sleep(0.05)
    assert not Path(folder).exists(), "the server left its socket's folder behind"


def test_a_server_that_cannot_start_is_reported(tmp_path):
    with pytest.raises(OSError, match="warm server no/such failed"):
        warm.Servers.start({"no/such": []}, tmp_path / "log", ENTRY)  # no folder for its socket
    assert warm.ENV not in os.environ


def test_a_module_the_server_cannot_load_is_logged_and_left_to_the_job(tmp_path):
    log = tmp_path / "log"
    started = warm.Servers.start({warm.ANY: ["batchlab.no_such_module", "batchlab.cli"]}, log, ENTRY)
    os.environ.pop(warm.ENV)
    try:
        env = _env(**{warm.ENV: str(started.folder)})
        job = subprocess.run([sys.executable, "-m", "batchlab", "schema", "--out", "s.json"], env=env, cwd=tmp_path,
                             capture_output=True, text=True)
        assert job.returncode == 0 and (tmp_path / "s.json").exists()
    finally:
        started.stop()
    assert "batchlab.no_such_module" in log.read_text()


def test_a_job_whose_server_dies_fails_and_is_stopped(data_file, tmp_path):
    """The server killed under a running job: the client says so and fails at once (it cannot wait for
    a process that is not its child), and stops the orphaned job, which saves its state as on SIGTERM."""
    started = warm.Servers.start({"train": warm_preload()["train"]}, tmp_path / "log", ENTRY)
    os.environ.pop(warm.ENV)
    out = tmp_path / "cell"
    try:
        env = _env(**{warm.ENV: str(started.folder)})
        job = subprocess.Popen(_train_command(data_file, out, 0.05), env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not (out / ".resume" / STATE_FILE["batched"]).exists():
            assert job.poll() is None and time.monotonic() < deadline, "the job ended before the server was killed"
            time.sleep(0.01)
        started.processes["train"].kill()
        code, stderr = job.wait(30), job.stderr.read()
    finally:
        started.stop()
    assert code == 1 and "stopped before job" in stderr, stderr
    orphan = int(re.search(r"before job (\d+) ended", stderr)[1])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{orphan}").exists() and " Z " not in Path(f"/proc/{orphan}/stat").read_text():
        assert time.monotonic() < deadline, "the orphaned job still runs"
        time.sleep(0.05)
    assert not (out / "runs.parquet").exists()


def test_after_the_source_changes_jobs_start_cold_and_say_why(servers, tmp_path):
    """A server runs the code it loaded; once batchlab's source changes, jobs start cold, running it as it is."""
    source = PACKAGE / "seeding.py"
    times = source.stat()
    env = _env(**{warm.ENV: str(servers.folder)})
    command = [sys.executable, "-m", "batchlab", "schema", "--out", "s.json"]
    try:
        os.utime(source, ns=(times.st_atime_ns, times.st_mtime_ns + 1_000_000_000))
        job = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
    finally:
        os.utime(source, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert job.returncode == 0 and "source under" in job.stderr and "changed since the server loaded it" in job.stderr
    assert "this job starts cold" in job.stderr
    again = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0 and "warm start unavailable" not in again.stderr  # the same source: warm again


CUDA_PROBE = """
import importlib, json, sys
import torch, torch.cuda
calls = []
def recorded(name, original):
    def call(*args, **kwargs):
        calls.append(name)
        return original(*args, **kwargs)
    return call
for name in ("is_available", "device_count", "init", "_lazy_init", "current_device", "set_device",
             "get_device_properties", "mem_get_info", "synchronize", "set_per_process_memory_fraction"):
    setattr(torch.cuda, name, recorded(name, getattr(torch.cuda, name)))
from batchlab.cli import warm_preload
for modules in warm_preload().values():
    for module in modules:
        importlib.import_module(module)
print(json.dumps({"calls": calls, "initialized": torch.cuda.is_initialized()}))
"""


def test_a_server_loads_its_libraries_without_touching_cuda():
    """A process that has asked CUDA anything (even how many devices there are) cannot hand CUDA to the
    children it forks, so a warm server must load every step's modules without a call into torch.cuda:
    else every GPU job forked from it fails. The probe records those calls while the modules load."""
    out = subprocess.run([sys.executable, "-c", CUDA_PROBE], capture_output=True, text=True, env=_env(), check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"calls": [], "initialized": False}
    broken = CUDA_PROBE.replace("from batchlab.cli", "torch.cuda.is_available()\nfrom batchlab.cli")
    out = subprocess.run([sys.executable, "-c", broken], capture_output=True, text=True, env=_env(), check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1])["calls"] == ["is_available"]  # the probe sees a call


def test_a_server_that_initialised_cuda_refuses_jobs_which_start_cold_and_say_why(tmp_path, monkeypatch):
    """A server whose modules initialised CUDA cannot give its forked jobs CUDA: they start cold, saying why
    (CUDA's state is pretended here, with no GPU). The servers run with torch's NVML device check, whose
    answer to `is_available()` leaves the driver uninitialised."""
    (tmp_path / "pretend_cuda.py").write_text("import torch.cuda\ntorch.cuda._initialized = True\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])))
    log = tmp_path / "log"
    started = warm.Servers.start({warm.ANY: ["batchlab.cli", "pretend_cuda"]}, log, ENTRY)
    os.environ.pop(warm.ENV)
    try:
        deadline = time.monotonic() + 60
        while "loaded 2 modules" not in log.read_text():  # a job that came earlier would be forked before the pretence
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        env = _env(**{warm.ENV: str(started.folder)})
        job = subprocess.run([sys.executable, "-m", "batchlab", "schema", "--out", "s.json"], env=env, cwd=tmp_path,
                             capture_output=True, text=True)
        server_env = Path(f"/proc/{started.processes[warm.ANY].pid}/environ").read_bytes().split(b"\0")
    finally:
        started.stop()
    assert job.returncode == 0 and (tmp_path / "s.json").exists(), job.stderr
    assert "the server initialised CUDA" in job.stderr and "this job starts cold" in job.stderr
    assert b"PYTORCH_NVML_BASED_CUDA_CHECK=1" in server_env


def test_a_message_sent_whole_to_a_server_that_then_answers_and_closes_is_not_an_error():
    """A refusing server reads the request, answers and closes at once; the client, having sent it all, must
    not send again (an empty send to a closed peer fails with EPIPE, which once made such a job start cold
    without the server's reason)."""
    import socket

    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    class AnsweredAtOnce:
        """The client's end, whose peer reads each message whole and closes before the client's next call."""

        def sendmsg(self, *args):
            sent = client.sendmsg(*args)
            server.recv(1 << 16)
            server.close()
            return sent

        def sendall(self, data):
            client.sendall(data)

    try:
        warm._send(AnsweredAtOnce(), {"argv": ["schema"]}, [0, 1, 2])
    finally:
        client.close()
