"""Per-cell results of a study-wide job, reused while what they depend on is unchanged.

A study-wide job (the downstream SVMs, the gradient noise) covers every cell of a study in one
process. Each cell's result is kept under the study's cache folder, named by a hash of the content of
its input files, of the settings it was computed with and of the code, so a rerun (a batch size
added, a cell retrained) computes only the cells whose inputs changed. Cells not in the cache are computed in
separate processes, one cell per process at a time: parallel across cells, never inside a
computation, so the numbers do not depend on the number of workers.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from batchlab import PACKAGE, io, source_files
from batchlab.forked import imap

if TYPE_CHECKING:
    import pandas as pd


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@functools.cache
def code_digest(package: Path = PACKAGE) -> str:
    """SHA-256 of the batchlab package's source and the versions of the libraries that compute.

    A changed measurement (or a new scikit-learn or torch) must not be answered from the cache, even
    when Snakemake is told to rerun a job whose inputs have not changed. The whole package, not the
    modules this process happens to have imported: a job forked from a warm server (batchlab.jobs.warm) has
    imported more than a cold one, and both must find the same cells.
    """
    digest = hashlib.sha256()
    for source in source_files(package):
        digest.update(source.relative_to(package).as_posix().encode() + b"\0" + source.read_bytes())
    for package_name in ("numpy", "scipy", "scikit-learn", "torch"):
        try:
            digest.update(f"{package_name}={metadata.version(package_name)}".encode())
        except metadata.PackageNotFoundError:
            pass
    return digest.hexdigest()


def cell_key(step: str, settings: dict, files: list[str | Path]) -> str:
    """The name of one cell's result: its step, its settings (JSON-able), its input files' content and the code."""
    text = json.dumps(
        {"step": step, "settings": settings, "files": [file_digest(f) for f in files], "code": code_digest()},
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Cell:
    """One cell of a study-wide job: its batch size, cache key and the arguments of the function computing it."""

    batch_size: int
    key: str
    args: tuple


class CellCache:
    """A study's folder of per-cell results: `{step}-{key}.{table}.parquet`, one file per table of a cell."""

    def __init__(self, folder: str | Path, step: str, tables: tuple[str, ...]):
        self.folder, self.step, self.tables = Path(folder), step, tables

    def _path(self, key: str, table: str) -> Path:
        return self.folder / f"{self.step}-{key}.{table}.parquet"

    def paths(self, key: str) -> list[Path]:
        return [self._path(key, t) for t in self.tables]

    def has(self, key: str) -> bool:
        """Whether every table of the cell is there."""
        return all(p.is_file() for p in self.paths(key))

    def save(self, key: str, frames: tuple[pd.DataFrame, ...]) -> None:
        for table, frame in zip(self.tables, frames):
            io.write_parquet(frame, self._path(key, table))

    def prune(self, keep: set[str]) -> None:
        """Remove this step's results of cells no longer in the study (or computed with other inputs)."""
        for path in self.folder.glob(f"{self.step}-*.parquet"):
            if path.name.split("-", 1)[1].split(".", 1)[0] not in keep:
                path.unlink(missing_ok=True)


def compute_cells(
    cells: list[Cell], compute: Callable[..., tuple], cache: CellCache, workers: int = 1, log=print
) -> list[list[Path]]:
    """For each table of the step, its file for every cell (in the order of `cells`), computed where missing.

    A missing cell is computed by `compute(*cell.args)`, which returns one DataFrame per table; with
    workers > 1 in that many forked processes (batchlab.forked), so `compute` must be a module-level
    function. Each result is saved as soon as it is done, so a job
    stopped midway keeps its finished cells. Results are read back from their files, as a job of one
    cell would have written them.
    """
    missing = [cell for cell in cells if not cache.has(cell.key)]
    log(f"{cache.step}: {len(cells) - len(missing)} cells reused, {len(missing)} to compute")

    def save(cell: Cell, frames: tuple) -> None:
        cache.save(cell.key, frames)
        log(f"{cache.step}: batch size {cell.batch_size} computed")

    for cell, frames in zip(missing, imap(compute, (cell.args for cell in missing), workers)):
        save(cell, frames)
    cache.prune({cell.key for cell in cells})
    return [list(column) for column in zip(*(cache.paths(cell.key) for cell in cells))]
