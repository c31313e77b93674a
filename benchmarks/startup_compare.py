"""Cold start-up of two source trees, interleaved: seconds to import batchlab.cli, and to load every module the
warm servers preload (batchlab.cli.warm_preload), with the CPU-seconds of the whole process. A job's wall time
includes its start-up, so a restructure must not add to it.

    python benchmarks/startup_compare.py BEFORE_SRC AFTER_SRC [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

PROBE = r'''
import importlib, json, resource, time
t0 = time.perf_counter()
import batchlab.cli as cli
t1 = time.perf_counter()
modules = sorted({m for ms in cli.warm_preload().values() for m in ms})
for m in modules:
    importlib.import_module(m)
t2 = time.perf_counter()
r = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"cli_s": t1 - t0, "preload_s": t2 - t0, "cpu_s": r.ru_utime + r.ru_stime, "modules": len(modules)}))
'''


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--runs", type=int, default=10)
    args = p.parse_args()
    trees = {"before": args.before, "after": args.after}
    found = {k: [] for k in trees}
    for i in range(args.runs):
        order = list(trees.items()) if i % 2 == 0 else list(trees.items())[::-1]
        for name, src in order:
            env = {**os.environ, "PYTHONPATH": src}
            out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
            found[name].append(json.loads(out.stdout))
    medians = {name: {k: statistics.median(r[k] for r in rows) for k in ("cli_s", "preload_s", "cpu_s")}
               for name, rows in found.items()}
    for name in trees:
        m = medians[name]
        print(f"{name}: {found[name][0]['modules']} modules; median import of batchlab.cli {m['cli_s']:.3f} s, "
              f"with the preload {m['preload_s']:.3f} s, {m['cpu_s']:.3f} CPU-s ({args.runs} runs)")
    print(f"after / before, median CPU-s: {medians['after']['cpu_s'] / medians['before']['cpu_s']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
