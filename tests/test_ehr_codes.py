"""The ehr_codes source on a small code table, map and demographics with a known answer; and its bad input."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import TypeAdapter

from batchlab.config import ConfigError, DataSpec, load_config
from batchlab.data import make_dataset
from batchlab.data.ehr_codes import canonical_codes, phecode_matrix, phecode_order
from batchlab.data.inspect import inspect_files
from realdata import ehr_spec, write_ehr


def build(paths, **overrides):
    return make_dataset(TypeAdapter(DataSpec).validate_python(ehr_spec(paths, **overrides)))


def counts(ds) -> dict:
    return dict(map(tuple, ds.source["counts"]))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_matrix_is_right(tmp_path: Path, fmt: str):
    paths = write_ehr(tmp_path, n_persons=40, fmt=fmt)
    ds = build(paths)
    assert ds.source["features"] == ["008", "250", "250.2", "401.1", "999"]  # every PheCode of the map, numeric order
    women = np.arange(40) % 2 == 1
    expected = np.zeros((40, 5), dtype=np.float32)
    expected[women, 0] = 1  # 001.1 -> 008
    expected[:, 1:3] = 1  # 250.00 (ICD-9-CM) and E11.9 (ICD-10-CM) -> 250.2 and its parent 250
    np.testing.assert_array_equal(ds.x, expected)  # E11.9 as ICD-10-CM never reaches the ICD-9 entry's 999
    assert ds.labels["sex"].tolist() == women.astype(int).__rsub__(1).tolist()  # F = 0, M = 1 (sorted)
    assert ds.source["classes"] == ["F", "M"]
    np.testing.assert_array_equal(ds.labels["age"], 20.0 + np.arange(40))
    assert ds.tasks == {"sex": "classification", "age": "regression"}


def test_csv_and_parquet_agree(tmp_path: Path):
    a, b = build(write_ehr(tmp_path / "a", fmt="csv")), build(write_ehr(tmp_path / "b", fmt="parquet"))
    np.testing.assert_array_equal(a.x, b.x)
    assert a.source["counts"] == b.source["counts"]


def test_unmapped_codes_and_dropped_persons_are_counted(tmp_path: Path):
    paths = write_ehr(tmp_path, n_persons=40)
    table = pd.read_csv(paths["codes"], dtype=str)
    n_routine = int((table["icd"] == "V70.0").sum())
    ds = build(paths)
    c = counts(ds)
    assert c["code rows read"] == len(table)
    assert c["code rows that matched no PheCode"] == n_routine + 1
    assert c["distinct codes that matched no PheCode"] == 2
    assert ds.source["unmapped"] == [
        {"code": "V70.0", "vocabulary": "ICD-9-CM", "rows": n_routine, "persons": n_routine},
        {"code": "999.99", "vocabulary": "ICD-9-CM", "rows": 1, "persons": 1},
    ]
    assert c["persons in the code table without demographics (dropped)"] == 1  # 'ghost'
    assert c["persons used"] == 40 and c["first and last event date"] == "2001-01-01 to 2005-05-05"


def test_persons_without_a_label_are_dropped_and_counted(tmp_path: Path):
    paths = write_ehr(tmp_path, n_persons=40)
    demo = pd.read_csv(paths["demographics"])
    demo.loc[[3, 4], "gender"] = None
    demo.loc[5, "age"] = None
    demo.to_csv(paths["demographics"], index=False)
    ds = build(paths)
    c = counts(ds)
    assert c["persons dropped: no sex recorded"] == 2 and c["persons dropped: no age recorded"] == 1
    assert c["persons used"] == 37 and len(ds.x) == 37


@pytest.mark.parametrize("prevalence, columns", [(0.5, ["008", "250", "250.2"]), (0.51, ["250", "250.2"]), (1.0 - 1e-9, ["250", "250.2"])])
def test_prevalence_filter(tmp_path: Path, prevalence: float, columns: list[str]):
    ds = build(write_ehr(tmp_path, n_persons=40), min_prevalence=prevalence)  # 20 of 40 carry 008
    assert ds.source["features"] == columns and ds.x.shape == (40, len(columns))
    assert counts(ds)[f"PheCodes kept (prevalence at least {prevalence:g})"] == len(columns)


def test_phecode_matrix_on_a_hand_made_case():
    rows = pd.DataFrame(
        {"person": ["a", "a", "b", "c", "z"], "code": ["4011", "4011", "E119", "XX", "4011"],
         "written": ["401.1", "401.1", "E11.9", "XX", "401.1"], "vocabulary": ["ICD-9-CM"] * 2 + ["ICD-10-CM"] * 3}
    )
    maps = pd.DataFrame({"vocabulary": ["ICD-9-CM", "ICD-10-CM", "ICD-10-CM"], "code": ["4011", "E119", "E119"],
                         "phecode": ["401.1", "250.2", "250"]})
    x, columns, unmapped = phecode_matrix(rows, maps, pd.Index(["a", "b", "c"]), 0.0)
    assert columns == ["250", "250.2", "401.1"]
    np.testing.assert_array_equal(x, [[0, 0, 1], [1, 1, 0], [0, 0, 0]])
    assert unmapped["written"].tolist() == ["XX", "401.1"]  # every row read counts, also those of non-persons ('z')
    x, columns, _ = phecode_matrix(rows, maps, pd.Index(["a", "b", "c"]), 0.5)
    assert columns == [] and x.shape == (3, 0)


def test_codes_match_with_or_without_dots():
    assert canonical_codes(pd.Series([" 250.00", "25000", "e11.9", 401])).tolist() == ["25000", "25000", "E119", "401"]
    assert phecode_order(["1000", "250.2", "008", "250", "x"]) == ["008", "250", "250.2", "1000", "x"]


def test_map_with_a_vocabulary_per_file(tmp_path: Path):
    paths = write_ehr(tmp_path, n_persons=40)
    full = pd.read_csv(paths["map"], dtype=str)
    full[full["flag"] == "9"].drop(columns="flag").rename(columns={"ICD": "ICD9", "phecode": "PheCode"}).to_csv(
        tmp_path / "icd9.csv", index=False
    )
    full[full["flag"] == "10"].drop(columns="flag").to_csv(tmp_path / "icd10.csv", index=False)
    maps = [
        {"path": str(tmp_path / "icd9.csv"), "code": "ICD9", "phecode": "PheCode", "vocabulary": "ICD-9-CM"},
        {"path": str(tmp_path / "icd10.csv"), "code": "ICD", "phecode": "phecode", "vocabulary": "ICD-10-CM"},
    ]
    np.testing.assert_array_equal(build(paths, phecode_maps=maps).x, build(paths).x)


# ------------------------------------------------------------------ bad input


def _config(tmp_path: Path, paths: dict, **overrides) -> Path:
    cfg = {
        "device": "cpu",
        "studies": {
            "ehr": {
                "data": ehr_spec(paths, **overrides),
                "model": {"kind": "dense_ae", "hidden": [4], "latent": 2},
                "budget": {"unit": "epochs", "amount": 1},
                "batch_sizes": "powers_of_two",
                "downstream": {"folds": 3},
            }
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_batch_sizes_powers_of_two_up_to_the_training_split(tmp_path: Path):
    study = load_config(_config(tmp_path, write_ehr(tmp_path, n_persons=40)), inspect=inspect_files).studies["ehr"]
    assert study.data.n_train() == 32 and study.batch_sizes == [1, 2, 4, 8, 16, 32]


def _rewrite(path: Path, edit) -> None:
    edit(pd.read_csv(path)).to_csv(path, index=False)


@pytest.mark.parametrize(
    "table, edit, expected",
    [
        ("codes", lambda t: t.drop(columns="pid"), "no column 'pid' (data.codes.person)"),
        (
            "map",
            lambda t: t.rename(columns={"ICD": "icd9cm", "phecode": "jd_code"}),
            "no column 'ICD' (data.phecode_maps[0].code), 'phecode' (data.phecode_maps[0].phecode); "
            "the file's columns are ['icd9cm', 'jd_code', 'flag']",
        ),
        (
            "demographics",
            lambda t: t.assign(gender="F"),
            "label column 'gender' has one class ('F') among the persons kept (data.demographics.sex)",
        ),
    ],
    ids=["code-table-without-person-column", "map-with-unexpected-columns", "label-with-one-class"],
)
def test_bad_tables_stop_validation_naming_file_and_field(tmp_path: Path, table: str, edit, expected: str):
    paths = write_ehr(tmp_path)
    _rewrite(paths[table], edit)
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, paths), inspect=inspect_files)
    assert f"study 'ehr', field 'data': {paths[table]}: {expected}" in str(err.value)


def test_missing_and_malformed_paths_one_line_each(tmp_path: Path):
    paths = write_ehr(tmp_path)
    paths = {**paths, "codes": tmp_path / "nowhere/codes.csv", "map": tmp_path / "map.xlsx"}
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, paths), inspect=inspect_files)
    lines = str(err.value).splitlines()
    assert len(lines) == 3, lines
    assert f"field 'data.codes.path': {tmp_path / 'nowhere/codes.csv'}: no such file" in lines[1]
    assert f"field 'data.phecode_maps.0.path': {tmp_path / 'map.xlsx'}: unsupported file type (use .csv or .parquet or .pq)" in lines[2]


@pytest.mark.parametrize("problem", ["unknown-vocabulary", "unknown-map-vocabulary", "bad-date"])
def test_bad_values_stop_the_data_job_naming_file_and_field_and_write_nothing(tmp_path: Path, problem: str):
    paths = write_ehr(tmp_path / "in")
    if problem == "unknown-vocabulary":
        codes = pd.read_csv(paths["codes"], dtype=str)
        codes.loc[5, "vocab"] = "SNOMED"
        codes.to_csv(paths["codes"], index=False)
        expected = f"{paths['codes']}: 1 row(s) with an unknown vocabulary value ['SNOMED'] (data.codes.vocabulary)"
    elif problem == "unknown-map-vocabulary":
        mapping = pd.read_csv(paths["map"], dtype=str)
        mapping.loc[0, "flag"] = "ICD-10"
        mapping.to_csv(paths["map"], index=False)
        expected = f"{paths['map']}: 1 row(s) with an unknown vocabulary value ['ICD-10'] (data.phecode_maps[0].vocabulary_column)"
    else:
        codes = pd.read_csv(paths["codes"], dtype=str)
        codes.loc[2, "event_date"] = "yesterday"
        codes.to_csv(paths["codes"], index=False)
        expected = f"{paths['codes']}: 1 date(s) that do not parse, first 'yesterday' (data.codes.date)"
    data_json = TypeAdapter(DataSpec).dump_json(TypeAdapter(DataSpec).validate_python(ehr_spec(paths))).decode()
    out = tmp_path / "out/data.npz"
    result = subprocess.run(
        [sys.executable, "-m", "batchlab", "data", "--data-json", data_json, "--out", str(out)], capture_output=True, text=True
    )
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    assert not out.parent.exists() or not any(out.parent.iterdir())
