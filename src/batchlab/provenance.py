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


def how_cells_trained(table) -> list[dict]:
    """One row per batch size of a run table: the engine, runs trained together, CUDA graph
    (captured, eager with the reason, or not applicable), precision and micro-batching, so a
    fallback shows in the report and not only in a job's log."""
    rows = []
    for batch_size, cell in table.groupby("batch_size", sort=True):
        graph = cell["cuda_graph"] if "cuda_graph" in cell else None
        reasons = sorted({r for r in cell.get("cuda_graph_fallback", []) if isinstance(r, str) and r})
        if graph is None or graph.isna().all():
            cuda_graph = "not applicable"
        elif graph.astype(bool).all():
            cuda_graph = "captured"
        else:
            cuda_graph = "eager: " + ("; ".join(reasons) or "not captured")
        rows.append({
            "batch_size": int(batch_size),
            "devices": ", ".join(sorted(set(cell["device"].astype(str)))),
            "engine": ", ".join(sorted(set(cell["engine"].astype(str)))),
            "runs_together": int(cell["runs_together"].max()),
            "cuda_graph": cuda_graph,
            "precision": ", ".join(sorted(set(cell["precision"].astype(str)))),
            "micro_batch_size": int(cell["micro_batch_size"].min()),
        })
    return rows


def collect(devices: list[str], training: list[dict] | None = None) -> dict:
    """Provenance of a report: the devices the runs used, and how each cell trained, from the run table."""
    return {
        "training": training or [],
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
