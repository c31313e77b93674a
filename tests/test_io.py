"""Outputs are written whole or not at all, with the permissions any file written there would get."""

import os
import stat
import subprocess
import sys

import pandas as pd
import pytest

from batchlab import io
from conftest import ROOT


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), io.atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("stopped")
    assert list(tmp_path.iterdir()) == []


def test_outputs_get_the_umask_permissions_not_mkstemps_private_ones(tmp_path):
    old = os.umask(0o022)
    try:
        io.write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "t.parquet")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "t.parquet").stat().st_mode) == 0o644


def test_a_job_ends_without_teardown_with_its_output_whole_and_its_exit_code(tmp_path):
    """`python -m batchlab` leaves with os._exit after flushing: the file and the messages are all there."""
    ok = subprocess.run([sys.executable, "-m", "batchlab", "schema", "--out", str(tmp_path / "s.json")],
                        capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0 and (tmp_path / "s.json").read_text().endswith("}\n")
    bad = subprocess.run([sys.executable, "-m", "batchlab", "validate", str(tmp_path / "missing.yaml")],
                         capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "no such config file" in bad.stderr
