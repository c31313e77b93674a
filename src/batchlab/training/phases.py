"""Where a job's work went: named phases timed on the wall clock, summed over the job, printed as one log line.

A phase opened inside another is taken out of the outer one, so the phases never count a second
twice and the job's work minus their sum is time spent in no phase. Device work is asynchronous: a
GPU kernel's time falls in the phase that waits for it, so every phase that ends in a host read
(measurement, a logged step, the loop's last synchronisation) carries its own device time.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

_seconds: dict[str, float] = {}
_open: list[float] = []  # per open phase: seconds spent in the phases opened inside it

# The line a job prints when it recorded phases (phases_line), as benchmarks/pipeline_time.py reads it.
PHASES_LINE = re.compile(r"^batchlab (?P<step>[\w-]+): phases: (?P<phases>.*)$", re.M)
PHASE_ITEM = re.compile(r"(?P<name>[\w-]+) (?P<seconds>[\d.]+) s")


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Count the wall time of the block, less the phases opened inside it, as `name`."""
    _seconds.setdefault(name, 0.0)
    start = time.perf_counter()
    _open.append(0.0)
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        inner = _open.pop()
        _seconds[name] += elapsed - inner
        if _open:
            _open[-1] += elapsed


def recorded() -> dict[str, float]:
    """Seconds per phase so far, in the order the phases were first entered."""
    return dict(_seconds)


def reset() -> None:
    """Forget every phase (a job forked from a warm server starts with none)."""
    _seconds.clear()
    _open.clear()


def phases_line(command: str, work_s: float) -> str | None:
    """`batchlab STEP: phases: NAME S s, ..., other S s`, the rest of the work in `other`; None without phases."""
    if not _seconds:
        return None
    items = [f"{name} {seconds:.2f} s" for name, seconds in _seconds.items()]
    items.append(f"other {max(work_s - sum(_seconds.values()), 0.0):.2f} s")
    return f"batchlab {command}: phases: {', '.join(items)}"


def parse(line_phases: str) -> dict[str, float]:
    """The seconds per phase of a PHASES_LINE match's `phases` group."""
    return {m["name"]: float(m["seconds"]) for m in PHASE_ITEM.finditer(line_phases)}
