"""Where a result came from: code version, package versions, machine and the config as run."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("batchlab", "torch", "numpy", "pandas", "scikit-learn", "scipy", "seaborn", "pydantic", "snakemake", "mnist1d", "nibabel")


def git_commit(cwd: str = ".") -> str:
    """HEAD's commit, suffixed '+dirty' when the work tree has uncommitted changes; 'unknown' outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def collect(devices: list[str]) -> dict:
    """Provenance of a report: the devices the runs used are passed in from the run table."""
    return {
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "devices": sorted(set(devices)),
        "packages": package_versions(),
        "rendered_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def inputs_manifest(rows: list[dict], root: str | Path | None = None) -> tuple[str, str]:
    """A data set's input files as CSV text (each row plus bytes and sha256) and the SHA-256 of that text.

    Each row's `path` is read relative to `root` when given. The report writes the text unchanged, so its
    checksum can be verified against the recorded one.
    """
    import pandas as pd

    base = Path(root) if root is not None else Path()
    table = pd.DataFrame(
        [{**row, "bytes": (base / row["path"]).stat().st_size, "sha256": file_sha256(base / row["path"])} for row in rows]
    )
    buffer = io.StringIO()
    table.to_csv(buffer, index=False, lineterminator="\n")
    text = buffer.getvalue()
    return text, hashlib.sha256(text.encode()).hexdigest()
