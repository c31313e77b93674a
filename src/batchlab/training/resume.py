"""Resumable training: a run's whole state saved at an interval and on SIGTERM, restored on restart.

A long sweep meets time limits, preemption and crashes. The state holds everything the next step
depends on (weights, optimizer state, the running loss sum, the curve so far, the kept checkpoints and
the step), so a resumed run ends with bitwise the same numbers as one that was never stopped. The file
is written atomically and read with weights_only=True; it carries the run's identity and is ignored
when the run it belongs to has changed.
"""

from __future__ import annotations

import hashlib
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from batchlab import io


class TrainingInterrupted(RuntimeError):
    """Raised after the state was saved because a stop was asked for (SIGTERM, SIGINT)."""


@dataclass
class StopFlag:
    """Set by a signal handler; the trainer polls it between steps (a bool read, no syscall)."""

    requested: bool = False
    signal_name: str = ""

    def install(self, signals=(signal.SIGTERM, signal.SIGINT)) -> None:
        for sig in signals:
            signal.signal(sig, self._handle)

    def _handle(self, signum, _frame) -> None:
        self.requested, self.signal_name = True, signal.Signals(signum).name


def run_identity(cell_json: str, seed: int) -> str:
    """What a saved state must match to be resumed: the cell's study as run, and the seed."""
    return hashlib.sha256(f"{cell_json}|seed={seed}".encode()).hexdigest()


@dataclass
class ResumePoint:
    """Where one run's state lives, how often it is saved, and who may ask it to stop."""

    path: Path
    identity: str
    every_s: float = 300.0
    stop: StopFlag = field(default_factory=StopFlag)
    _last_save: float = field(default_factory=time.monotonic)

    def due(self) -> bool:
        return self.stop.requested or time.monotonic() - self._last_save >= self.every_s

    def save(self, state: dict) -> None:
        io.write_torch({"identity": self.identity, **state}, self.path)
        self._last_save = time.monotonic()

    def save_or_stop(self, state: dict, step: int, steps: int) -> None:
        """Save the state at this step; then, if a stop was asked for, raise TrainingInterrupted."""
        self.save(state)
        if self.stop.requested:
            raise TrainingInterrupted(
                f"stopped by {self.stop.signal_name} at step {step}/{steps}; state saved to {self.path}"
            )

    def load(self) -> dict | None:
        """The saved state of this very run, or None (no file, or a file of another run)."""
        if not self.path.is_file():
            return None
        state = io.read_torch(self.path)
        if not isinstance(state, dict) or state.get("identity") != self.identity:
            return None
        return state

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
