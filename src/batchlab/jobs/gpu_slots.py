"""GPU slots: several jobs share each GPU; each job takes a free slot, which picks its GPU and bounds its memory.

Snakemake's local executor counts a `gpu` resource but hands out no device IDs. So the workstation
profile's `gpu` is the number of slots in all (slots per GPU x GPUs), and every GPU job locks one slot
file of `SLOT_DIR` (fcntl: the lock goes with the process, also when it is killed), restricts itself to
that slot's GPU (CUDA_VISIBLE_DEVICES, set before CUDA starts, so `cuda` means that GPU) and caps its
share of the GPU's memory at 1 / slots per GPU. On SLURM every job gets its own GPU and takes no slot.
"""

from __future__ import annotations

import fcntl
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

SLOT_DIR = Path(".snakemake/gpu_slots")  # relative to the workflow's working directory, where jobs run


class GpuSlotError(ValueError):
    """A GPU-sharing setting that cannot work on this machine."""


@dataclass(frozen=True)
class SlotPlan:
    """How GPU jobs share the machine: `gpus` GPUs with `slots_per_gpu` jobs on each at once."""

    gpus: int
    slots_per_gpu: int

    @property
    def memory_fraction(self) -> float:
        return 1.0 / self.slots_per_gpu

    def cli_args(self) -> str:
        """The arguments a GPU job's `batchlab` command takes them as."""
        return f"--gpu-slots {self.slots_per_gpu} --gpus {self.gpus}"


def visible_gpus() -> int:
    """GPUs this process may use (all of the machine's, or those CUDA_VISIBLE_DEVICES names)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def plan_slots(total_slots: int | None, gpus_asked: int | None, gpus_visible: int, device: str = "auto") -> SlotPlan | None:
    """The plan from the profile's `gpu` (slots in all) and `gpu_devices` (GPUs to use; default all visible).

    None where nothing is shared: no `gpu` resource (SLURM, or no profile), or no GPU in use.
    Raises GpuSlotError for fewer than one slot, or more GPUs asked for than the machine has.
    """
    if total_slots is not None and total_slots < 1:
        raise GpuSlotError(
            f"GPU slots: resources gpu={total_slots}, but at least 1 is needed (slots per GPU x GPUs; "
            "workflow/profiles/workstation/config.yaml or --resources gpu=N)"
        )
    if gpus_asked is not None and gpus_asked < 1:
        raise GpuSlotError(f"GPU slots: resources gpu_devices={gpus_asked}, but at least 1 GPU is needed (or leave it out)")
    if device == "cpu":
        return None
    if gpus_asked is not None and gpus_asked > gpus_visible:
        raise GpuSlotError(
            f"GPU slots: resources gpu_devices={gpus_asked}, but this machine has {gpus_visible} GPU(s) "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})"
        )
    gpus = gpus_visible if gpus_asked is None else gpus_asked
    if total_slots is None or gpus == 0:
        return None
    if total_slots < gpus:
        raise GpuSlotError(
            f"GPU slots: resources gpu={total_slots} is fewer than the {gpus} GPUs in use, so some would stay idle; "
            f"give at least one slot per GPU, or set gpu_devices={total_slots}"
        )
    return SlotPlan(gpus=gpus, slots_per_gpu=math.ceil(total_slots / gpus))


@dataclass
class Slot:
    """A held slot: its GPU (index among the GPUs in use) and the open, locked file that holds it."""

    gpu: int
    index: int
    plan: SlotPlan
    handle: IO

    def describe(self) -> str:
        return (
            f"GPU slot {self.index} of GPU {self.gpu} (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}), "
            f"{self.plan.memory_fraction:.3g} of its memory"
        )


_held: list[Slot] = []  # the process keeps its slot until it exits


def try_slot(plan: SlotPlan, folder: Path = SLOT_DIR) -> Slot | None:
    """Lock the first free slot, going through the slots level by level across the GPUs (spreading jobs)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(plan.slots_per_gpu):
        for gpu in range(plan.gpus):
            handle = open(folder / f"gpu{gpu}.slot{index}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            return Slot(gpu, index, plan, handle)
    return None


def acquire(plan: SlotPlan, folder: Path = SLOT_DIR, poll_s: float = 0.5) -> Slot:
    """Hold a free slot for the rest of the process and use its GPU with its memory share.

    Snakemake starts no more GPU jobs than there are slots, so one is free; should all be taken
    (another run in the same folder), wait for one.
    """
    waited = 0.0
    while (slot := try_slot(plan, folder)) is None:
        if waited % 60 == 0:
            print(f"all {plan.gpus * plan.slots_per_gpu} GPU slots in {folder} are taken; waiting", file=sys.stderr)
        time.sleep(poll_s)
        waited += poll_s
    _held.append(slot)
    use_gpu(slot)
    return slot


def use_gpu(slot: Slot) -> None:
    """Restrict the process to the slot's GPU and bound its memory; must run before CUDA is initialised."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible else [str(i) for i in range(slot.plan.gpus)]
    os.environ["CUDA_VISIBLE_DEVICES"] = ids[slot.gpu]
    import torch

    if torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(slot.plan.memory_fraction, 0)
