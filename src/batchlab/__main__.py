"""`python -m batchlab` runs the command line."""

import sys

from batchlab.cli import main

sys.exit(main())
