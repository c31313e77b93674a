"""Where a result came from: code version, package versions, machine and the config as run."""

from __future__ import annotations

import datetime as dt
import platform
import subprocess
from importlib import metadata

PACKAGES = ("batchlab", "torch", "numpy", "pandas", "scikit-learn", "scipy", "seaborn", "pydantic", "snakemake", "mnist1d")


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
