"""Compare two finished runs of the same config, for example on a GPU and on a CPU: how far apart the
numbers in every run table are, per metric, and which scorecard verdicts differ (batchlab.analysis.compare).

Each argument is a pipeline working folder (holding results/ and reports/). The output is a Markdown
report: per study and metric the median and largest relative difference and where the largest lies,
then every claim whose verdict is not the same in both, with both estimates.

    python benchmarks/compare_runs.py GPU_RUN CPU_RUN --labels gpu cpu --out comparison.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from batchlab.analysis.compare import report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", type=Path, help="a finished run's working folder (results/, reports/)")
    p.add_argument("b", type=Path, help="the run to compare it with (the reference, e.g. the CPU run)")
    p.add_argument("--labels", nargs=2, default=["a", "b"])
    p.add_argument("--out", type=Path, help="also write the report here")
    args = p.parse_args(argv)
    text = report(args.a, args.b, tuple(args.labels))
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
