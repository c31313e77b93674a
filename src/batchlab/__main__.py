"""`python -m batchlab` runs the command line (batchlab.cli.run_job: no interpreter teardown after the job)."""

from batchlab.cli import run_job

run_job()
