"""config/paper_real.yaml as shipped, and the training job's guard against a split shrunk by exclusions."""

from pathlib import Path

import numpy as np

from batchlab.cli import main
from batchlab.config import Split
from batchlab.data import save_dataset, with_split
from conftest import ROOT


def test_validate_names_each_placeholder_path_once(capsys):
    assert main(["validate", str(ROOT / "config/paper_real.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].endswith("invalid configuration (4 problem(s))")
    assert [line.split(": ", 2)[1:] for line in err[1:]] == [
        ["study 'ehr_real', field 'data.codes.path'", "CHANGE/ehr/diagnoses.csv: no such file"],
        ["study 'ehr_real', field 'data.phecode_maps.0.path'", "CHANGE/phecode/phecode_icd9_rolled.csv: no such file"],
        ["study 'ehr_real', field 'data.demographics.path'", "CHANGE/ehr/demographics.csv: no such file"],
        ["study 'brats_real', field 'data.path'", "CHANGE/BraTS2021_Training_Data: no such folder"],
    ]


def test_training_stops_when_the_split_is_smaller_than_the_batch(tmp_path: Path, capsys):
    y = np.arange(10) % 2
    ds = with_split(np.zeros((10, 3)), {"y": y}, {"y": "classification"}, "y", Split(), "t", False, "")
    save_dataset(ds, tmp_path / "d.npz")
    args = ["train", "--study", "s", "--study-json", "{}", "--batch-size", "16", "--data", str(tmp_path / "d.npz"),
            "--out-dir", str(tmp_path / "out")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "study 's': batch size 16 is larger than the training split" in err
    assert "(8 samples, after the data set's exclusions)" in err
    assert not (tmp_path / "out").exists()
