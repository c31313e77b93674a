"""batchlab: reproducible replications of how batch size shapes neural-network training."""

from pathlib import Path

__version__ = "0.1.0"
PACKAGE = Path(__file__).resolve().parent


def source_files(package: Path = PACKAGE) -> list[Path]:
    """Every Python source file of the package, sorted: "the code" to the cell cache's keys
    (batchlab.jobs.cell_cache) and to a warm server's check that its jobs run the code as it is (batchlab.jobs.warm)."""
    return sorted(package.rglob("*.py"))
