"""GPU slots on a CPU: the plan and its errors (the GPU count mocked), locks that spread jobs and die with them."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from batchlab.jobs import gpu_slots
from batchlab.jobs.gpu_slots import GpuSlotError, SlotPlan, plan_slots, try_slot
from conftest import ROOT, snakemake, tiny_workdir


@pytest.mark.parametrize(
    "total, asked, visible, plan",
    [
        (16, None, 1, SlotPlan(gpus=1, slots_per_gpu=16)),
        (16, None, 2, SlotPlan(gpus=2, slots_per_gpu=8)),
        (5, None, 2, SlotPlan(gpus=2, slots_per_gpu=3)),  # rounded up: every slot has a lock file
        (16, 1, 4, SlotPlan(gpus=1, slots_per_gpu=16)),  # fewer GPUs than the machine has
        (None, None, 2, None),  # no `gpu` resource (SLURM, or no profile): a GPU per job, nothing shared
        (16, None, 0, None),  # no GPU: nothing to share
    ],
)
def test_plan(total, asked, visible, plan):
    assert plan_slots(total, asked, visible) == plan


@pytest.mark.parametrize(
    "total, asked, visible, words",
    [
        (0, None, 1, "resources gpu=0, but at least 1 is needed"),
        (-2, None, 0, "resources gpu=-2, but at least 1 is needed"),
        (16, 2, 1, "gpu_devices=2, but this machine has 1 GPU(s)"),
        (16, 1, 0, "gpu_devices=1, but this machine has 0 GPU(s)"),
        (16, 0, 1, "gpu_devices=0, but at least 1 GPU is needed"),
        (2, None, 4, "resources gpu=2 is fewer than the 4 GPUs in use"),
    ],
)
def test_bad_plan_is_a_clear_error(total, asked, visible, words):
    with pytest.raises(GpuSlotError, match=words.replace("(", r"\(").replace(")", r"\)")):
        plan_slots(total, asked, visible)


def test_cpu_device_shares_nothing_but_still_checks_the_slot_count():
    assert plan_slots(16, 8, 0, device="cpu") is None
    with pytest.raises(GpuSlotError):
        plan_slots(0, None, 0, device="cpu")


def test_slots_spread_over_the_gpus_and_run_out(tmp_path: Path):
    plan = SlotPlan(gpus=2, slots_per_gpu=2)
    held = [try_slot(plan, tmp_path) for _ in range(4)]  # each open file is its own lock holder, like a job
    assert [(s.gpu, s.index) for s in held] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert try_slot(plan, tmp_path) is None
    held[1].handle.close()  # the job on GPU 1 ends: its slot is the one free
    again = try_slot(plan, tmp_path)
    assert (again.gpu, again.index) == (1, 0)


def test_a_killed_job_frees_its_slot(tmp_path: Path):
    plan = SlotPlan(gpus=1, slots_per_gpu=1)
    code = (
        "import sys, time; from pathlib import Path; from batchlab.jobs.gpu_slots import SlotPlan, try_slot\n"
        f"slot = try_slot(SlotPlan(1, 1), Path({str(tmp_path)!r})); print('held', flush=True); time.sleep(600)"
    )
    job = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert job.stdout.readline().strip() == "held"
        assert try_slot(plan, tmp_path) is None
    finally:
        job.send_signal(signal.SIGKILL)
        job.wait()
    assert try_slot(plan, tmp_path) is not None


def test_a_job_uses_its_slots_gpu_and_memory_share(monkeypatch):
    torch = pytest.importorskip("torch")
    fractions = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda f, device=None: fractions.append((f, device)))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # the machine's GPUs this run may use
    gpu_slots.use_gpu(gpu_slots.Slot(gpu=1, index=0, plan=SlotPlan(gpus=2, slots_per_gpu=4), handle=None))
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "5"
    assert fractions == [(0.25, 0)]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    gpu_slots.use_gpu(gpu_slots.Slot(gpu=1, index=0, plan=SlotPlan(gpus=2, slots_per_gpu=4), handle=None))
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"


def test_acquire_waits_for_a_free_slot(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(gpu_slots, "use_gpu", lambda slot: None)
    plan = SlotPlan(gpus=1, slots_per_gpu=1)
    first = try_slot(plan, tmp_path)
    started = time.monotonic()
    import threading

    threading.Timer(0.3, first.handle.close).start()
    slot = gpu_slots.acquire(plan, tmp_path, poll_s=0.05)
    assert slot.gpu == 0 and time.monotonic() - started >= 0.25


@pytest.mark.e2e
@pytest.mark.parametrize(
    "resources, words",
    [
        (["gpu=0"], "resources gpu=0, but at least 1 is needed"),
        (["gpu=4", "gpu_devices=1"], "gpu_devices=1, but this machine has 0 GPU(s)"),  # device auto, no GPU here
    ],
)
def test_bad_gpu_slots_stop_before_any_job(tmp_path: Path, resources, words):
    work = tiny_workdir(tmp_path)
    cfg = yaml.safe_load((work / "config/config.yaml").read_text())
    cfg["device"] = "auto"
    (work / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    result = snakemake(work, "--cores", "2", "--resources", *resources)
    assert result.returncode != 0
    assert words in result.stderr, result.stderr[-2000:]
    assert not (work / "results").exists() and not (work / "data").exists()


def test_workstation_profile_has_slots():
    profile = yaml.safe_load((ROOT / "workflow/profiles/workstation/config.yaml").read_text())
    assert plan_slots(profile["resources"]["gpu"], None, 1) == SlotPlan(gpus=1, slots_per_gpu=profile["resources"]["gpu"])
