"""`python -m batchlab`, as the workflow's jobs call it: in a child of the run's warm server when there is
one (batchlab.jobs.warm: the libraries already loaded), else here (batchlab.cli.run_job)."""

import sys

from batchlab.jobs.warm import delegate

status = delegate(sys.argv[1:])
if status is not None:
    sys.exit(status)

from batchlab.cli import run_job  # noqa: E402  (only when starting cold)

run_job()
