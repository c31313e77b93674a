"""batchlab: reproducible replications of how batch size shapes neural-network training."""

__version__ = "0.1.0"
