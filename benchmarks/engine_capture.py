"""On a GPU: does every step variant of the batched engine capture as a CUDA graph, without host syncs,
and give the CPU's numbers?

For every model kind the engine captures (dense AE, conv AE, MLP, CNN), both optimizers, and the step
variants (plain; masked, with one run diverging and frozen; micro-batched; bf16), it trains 3 runs on
the GPU with `training.cuda_graphs: require` (a failed capture fails the row) and checks the run table
says `cuda_graph` True. It trains the same runs with graphs off under
`torch.cuda.set_sync_debug_mode("error")` around every step (a host sync in an eager step raises), and
on the CPU, and prints the largest relative difference of the final validation losses. Contrastive
runs are not captured by design (their views are drawn on the host at every step and copied to the
device, a synchronising copy): their rows run with `cuda_graphs: auto`, pass when the run table says
`cuda_graph` False with that reason, and skip the sync check. Exit code 1 if any row failed.

    python benchmarks/engine_capture.py --json capture.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time

import torch

from batchlab.training import engine
from batchlab.config import Study
from batchlab.data import make_dataset

EHR = {"name": "synthetic_ehr", "n_samples": 400, "n_features": 64, "n_factors": 4}
MODELS = {
    "dense_ae": (EHR, {"kind": "dense_ae", "hidden": [32], "latent": 8}),
    "conv_ae": ({"name": "phantom_mri", "n_samples": 200, "size": 16}, {"kind": "conv_ae", "channels": [4, 8], "latent": 8}),
    "mlp": ({"name": "digits"}, {"kind": "mlp", "hidden": [32], "latent": 16}),
    "cnn": ({"name": "mnist1d", "n_samples": 400}, {"kind": "cnn", "channels": [8, 16], "latent": 16}),
    "contrastive": (
        {"name": "mnist1d", "n_samples": 400}, {"kind": "contrastive", "channels": [8, 16], "latent": 16, "projection": 8}
    ),
}
CAPTURED = {model: model != "contrastive" for model in MODELS}  # whether a model's steps are meant to be graphs
OPTIMS = {"adam": {"name": "adam", "lr": 1e-3, "weight_decay": 1e-4, "warmup": 0.2},
          "sgd": {"name": "sgd", "lr": 1e-2, "momentum": 0.9}}
VARIANTS = {"plain": {}, "masked": {}, "micro-batched": {"micro_batch_size": 4}, "bf16": {"precision": "bf16"}}
BATCH, STEPS = 8, 40


def study(model: str, optim: str, variant: str, graphs: str) -> Study:
    data, spec = MODELS[model]
    return Study.model_validate(
        {"data": data, "model": spec, "optim": {**OPTIMS[optim], "lr_rule": "fixed"},
         "training": {**VARIANTS[variant], "engine": "batched", "cuda_graphs": graphs},
         "budget": {"unit": "steps", "amount": STEPS}, "batch_sizes": [BATCH], "seeds": [0, 1],
         "curve_points": 6, "sharpness": {"samples": 0}}
    )


def runs_for(s: Study, variant: str) -> list[tuple[float, int]]:
    lr = s.optim.lr
    return [(lr, 0), (lr, 1), (lr * 1e30, 0)] if variant == "masked" else [(lr, 0), (lr, 1), (lr * 3, 0)]


class SyncErrorInSteps:
    """set_sync_debug_mode('error') around every engine step, 'default' outside (log steps read losses)."""

    def __enter__(self):
        self.original = engine._Step.step

        def guarded(step_self, *args, **kwargs):
            torch.cuda.set_sync_debug_mode("error")
            try:
                return self.original(step_self, *args, **kwargs)
            finally:
                torch.cuda.set_sync_debug_mode("default")

        engine._Step.step = guarded

    def __exit__(self, *exc):
        engine._Step.step = self.original


def check(model, optim, variant, data_cache) -> dict:
    row = {"model": model, "optim": optim, "variant": variant}
    graphed = study(model, optim, variant, "require" if CAPTURED[model] else "auto")
    key = graphed.data.model_dump_json()
    data = data_cache.setdefault(key, make_dataset(graphed.data))
    runs = runs_for(graphed, variant)
    cuda = torch.device("cuda")
    try:
        start = time.perf_counter()
        on_gpu = engine.train_runs(graphed, data, BATCH, runs, cuda, {})
        row["graph_s"] = time.perf_counter() - start
        row["cuda_graph"] = all(r.record["cuda_graph"] is True for r in on_gpu)
        row["cuda_graph_fallback"] = on_gpu[0].record["cuda_graph_fallback"]
        with SyncErrorInSteps() if CAPTURED[model] else contextlib.nullcontext():
            eager = engine.train_runs(study(model, optim, variant, "off"), data, BATCH, runs, cuda, {})
        row["eager_no_sync"] = CAPTURED[model] or "not checked"
        on_cpu = engine.train_runs(graphed, data, BATCH, runs, torch.device("cpu"), {})
    except Exception as err:  # noqa: BLE001 - report the row and go on
        row["error"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        return row
    row["diverged"] = [r.record["diverged"] for r in on_gpu]
    row["diverged_cpu"] = [r.record["diverged"] for r in on_cpu]
    diffs = [abs(g.record["val_loss"] - c.record["val_loss"]) / abs(c.record["val_loss"])
             for g, c in zip(on_gpu, on_cpu) if math.isfinite(c.record["val_loss"])]
    row["max_rel_diff_vs_cpu"] = max(diffs) if diffs else float("nan")
    row["graph_vs_eager_max_rel_diff"] = max(
        abs(g.record["val_loss"] - e.record["val_loss"]) / abs(e.record["val_loss"])
        for g, e in zip(on_gpu, eager) if math.isfinite(e.record["val_loss"])
    )
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("no GPU: nothing to check", file=sys.stderr)
        return 2
    rows, cache = [], {}
    print(f"{'model':11} {'optim':5} {'variant':13} {'graph':6} {'eager ok':8} {'vs CPU':>9} {'graph-eager':>11}  note")
    for model in MODELS:
        for optim in OPTIMS:
            for variant in VARIANTS:
                r = check(model, optim, variant, cache)
                rows.append(r)
                note = r.get("error", "") or ("diverged " + str(r["diverged"]) if variant == "masked" else "")
                print(f"{model:11} {optim:5} {variant:13} {str(r.get('cuda_graph', '-')):6} {str(r.get('eager_no_sync', '-')):8} "
                      f"{r.get('max_rel_diff_vs_cpu', float('nan')):9.2e} {r.get('graph_vs_eager_max_rel_diff', float('nan')):11.2e}  {note}",
                      flush=True)
    failed = [r for r in rows if "error" in r or r.get("cuda_graph") != CAPTURED[r["model"]]
              or r.get("diverged") != r.get("diverged_cpu")]
    print(f"{len(rows) - len(failed)} passed, {len(failed)} failed")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "rows": rows}, f, indent=1)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
