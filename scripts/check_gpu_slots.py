"""Check GPU slots on a real machine: jobs spread over the GPUs, each capped at its memory share.

Starts as many processes as there are slots (each like a Snakemake GPU job: batchlab.jobs.gpu_slots.acquire),
in a temporary slot folder. Each reports the slot and GPU it got, and on a GPU allocates half its
memory share, then 1.1 times it: the first must succeed and the second fail with out-of-memory. On a
machine without a GPU it checks the slot assignment only.

    python scripts/check_gpu_slots.py --slots 16              # one GPU, 16 slots
    python scripts/check_gpu_slots.py --slots 8 --gpus 2      # two GPUs, 8 each
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter

JOB = r"""
import json, sys
from pathlib import Path
from batchlab.jobs.gpu_slots import SlotPlan, acquire
plan = SlotPlan(gpus={gpus}, slots_per_gpu={slots})
slot = acquire(plan, Path({folder!r}))
import os, torch
out = {{"slot": slot.index, "gpu": slot.gpu, "visible": os.environ["CUDA_VISIBLE_DEVICES"], "cuda": torch.cuda.is_available()}}
if out["cuda"]:
    total = torch.cuda.get_device_properties(0).total_memory
    share = plan.memory_fraction * total
    under = torch.empty(int(0.5 * share), dtype=torch.uint8, device="cuda")
    out["under_share_ok"] = True
    del under
    torch.cuda.empty_cache()
    try:
        over = torch.empty(int(1.1 * share), dtype=torch.uint8, device="cuda")
        out["over_share_refused"] = False
    except torch.OutOfMemoryError:
        out["over_share_refused"] = True
    out["device"] = torch.cuda.get_device_name(0)
print(json.dumps(out), flush=True)
sys.stdin.read()  # hold the slot until the parent has heard from every job
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--slots", type=int, default=16, help="slots per GPU")
    p.add_argument("--gpus", type=int, default=1)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        code = JOB.format(gpus=args.gpus, slots=args.slots, folder=folder)
        jobs = [
            subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for _ in range(args.gpus * args.slots)
        ]
        reports = [json.loads(job.stdout.readline()) for job in jobs]
        for job in jobs:
            job.communicate("")
    per_gpu = Counter(r["visible"] for r in reports)
    print(f"{len(reports)} jobs: per GPU (CUDA_VISIBLE_DEVICES) {dict(per_gpu)}")
    ok = sorted((r["gpu"], r["slot"]) for r in reports) == sorted((g, s) for g in range(args.gpus) for s in range(args.slots))
    if reports[0]["cuda"]:
        under = all(r["under_share_ok"] for r in reports)
        over = all(r["over_share_refused"] for r in reports)
        print(f"{reports[0]['device']}: every job allocated half its share: {under}; refused 1.1 of it: {over}")
        ok = ok and under and over
    else:
        print("no GPU: slot assignment checked, memory shares not")
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
