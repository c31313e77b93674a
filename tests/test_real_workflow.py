"""End to end on the real-data sources: synthetic NIfTI cases and EHR tables through Snakemake to the report."""

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from batchlab.data import load_dataset
from conftest import ROOT, snakemake
from realdata import write_brats, write_case, write_ehr

pytestmark = pytest.mark.e2e


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("real_run")
    (work / "config").mkdir()
    shutil.copy(ROOT / "tests/config/tiny_real.yaml", work / "config/config.yaml")
    write_brats(work / "inputs/brats", n_cases=10)
    write_case(work / "inputs/brats", "BraTS_near", "right", offset=1)  # 2 mm from the midline: left out
    write_ehr(work / "inputs/ehr", n_persons=40, fmt="parquet")
    result = snakemake(work, "--cores", "2")
    assert result.returncode == 0, result.stderr[-4000:]
    return work


def test_brats_report_says_what_was_read_and_left_out(real_run: Path):
    page = (real_run / "reports/tiny_brats/index.html").read_text()
    assert "Grouped by case." in page and "folds drawn over cases" in page
    assert "<th class=\"l\">case folders read</th><td>11</td>" in page
    assert "cases left out: tumour within 5 mm of the midline</th><td>1</td>" in page
    assert "<td class=\"l\">BraTS_near</td><td class=\"l\">tumour within 5 mm of the midline</td>" in page
    assert (real_run / "reports/tiny_brats/data_examples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'src="data_examples.png"' in page
    ds = load_dataset(real_run / "data/tiny_brats.npz")
    assert ds.x.shape == (20, 2, 16, 16)
    for g in np.unique(ds.groups):
        assert len(set(ds.split[ds.groups == g])) == 1
    table = pd.read_parquet(real_run / "results/tiny_brats/table.parquet")
    assert sorted(table["batch_size"]) == [2, 8] and table["svm_roc_auc_mean"].between(0, 1).all()


def test_case_manifest_and_its_checksum_are_recorded(real_run: Path):
    manifest = real_run / "reports/tiny_brats/data_inputs.csv"
    rows = pd.read_csv(manifest)
    assert len(rows) == 11 * 3 and set(rows["role"]) == {"flair", "t2", "seg"}
    for row in rows.itertuples():
        file = real_run / "inputs/brats" / row.path
        assert row.sha256 == sha256(file) and row.bytes == file.stat().st_size
    prov = json.loads((real_run / "reports/tiny_brats/provenance.json").read_text())["data"]
    assert prov["inputs_sha256"] == sha256(manifest) and prov["inputs_kind"] == "case manifest"
    assert prov["counts"]["cases used"] == 10 and "inputs" not in prov  # 33 files: the manifest alone


def test_ehr_report_counts_and_map_checksum(real_run: Path):
    page = (real_run / "reports/tiny_ehr_codes/index.html").read_text()
    assert "Most frequent codes that matched no PheCode" in page and '<td class="l">V70.0</td>' in page
    assert "persons in the code table without demographics (dropped)</th><td>1</td>" in page
    prov = json.loads((real_run / "reports/tiny_ehr_codes/provenance.json").read_text())["data"]
    by_role = {row["role"]: row for row in prov["inputs"]}
    mapping = real_run / "inputs/ehr/map.parquet"
    assert by_role["PheCode map 0"]["path"] == "inputs/ehr/map.parquet"
    assert by_role["PheCode map 0"]["sha256"] == sha256(mapping)
    assert by_role["code table"]["sha256"] == sha256(real_run / "inputs/ehr/codes.parquet")
    assert prov["counts"]["persons used"] == 40


def test_a_new_case_reruns_only_that_study(real_run: Path, tmp_path: Path):
    work = tmp_path / "copy"
    shutil.copytree(real_run, work, symlinks=True)
    dry = snakemake(work, "--cores", "2", "--dry-run", "--quiet", "rules")
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout
    write_case(work / "inputs/brats", "BraTS_new", "left", seed=99)
    dry = snakemake(work, "--cores", "2", "--dry-run", "--quiet", "rules")
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", dry.stdout + dry.stderr, flags=re.M))
    assert jobs.get("make_data") == "1" and jobs.get("report_study") == "1", dry.stdout


def test_paper_real_config_stops_before_any_job(tmp_path: Path):
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config/paper_real.yaml", tmp_path / "config/config.yaml")
    result = snakemake(tmp_path, "--cores", "1", "--dry-run")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    problems = [line.strip() for line in output.splitlines() if "CHANGE/" in line]
    assert len(problems) == 4, output[-3000:]
    assert "study 'brats_real', field 'data.path': CHANGE/BraTS2021_Training_Data: no such folder" in output
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()
