"""batchlab.config as a package: refusals unchanged by the split, no file read in a job, no import of batchlab.data.

The expected messages below were recorded from the single-module config (the commit before the split), with
the test's temporary folder written as {tmp}: every bad config must be refused with the same text.
"""

import ast
import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from batchlab.config import ConfigError, FilesNotChecked, load_config, study_from_json, validate_config
from batchlab.data.inspect import inspect_files
from conftest import ROOT
from realdata import ehr_spec, write_brats, write_ehr
from test_to_target import BASE as TO_TARGET_BASE

TINY = yaml.safe_load((ROOT / "tests/config/tiny.yaml").read_text())
EHR = TINY["studies"]["tiny_ehr"]
CLAIM = {"id": "g", "source": "M"}


def _one(study: dict) -> dict:
    return {"device": "cpu", "studies": {"s": study}}


def _ehr(edit):
    """A builder: the tiny EHR study with `edit` applied to it."""

    def build(tmp: Path) -> dict:
        study = copy.deepcopy(EHR)
        edit(study)
        return _one(study)

    return build


def _cohort(n=60, regression=False) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    label = rng.normal(size=n) if regression else np.tile(["F", "M"], n // 2)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "sex": label})


def _file(write=lambda p: _cohort().to_csv(p, index=False), name="cohort.csv", data=None, **study):
    """A builder: a file-backed study on a table `write` makes (60 rows, two balanced classes by default)."""

    def build(tmp: Path) -> dict:
        path = tmp / name
        write(path)
        s = copy.deepcopy(EHR)
        s["data"] = {"name": "file", "path": str(path), "label": "sex", **(data or {})}
        s["batch_sizes"], s["gradients"] = [1, 4], {"eval_samples": 16, "spread_batch_sizes": [1, 2], "seeds": 2}
        s.update(study)
        return _one(s)

    return build


def _brats(n_cases=4, edit_folder=lambda folder: None, **data):
    def build(tmp: Path) -> dict:
        folder = tmp / "brats"
        if n_cases:
            write_brats(folder, n_cases=n_cases)
        edit_folder(folder)
        study = {
            "data": {"name": "brats", "path": str(folder), **data},
            "model": {"kind": "conv_ae", "channels": [4], "latent": 4},
            "budget": {"unit": "epochs", "amount": 1},
            "batch_sizes": [1],
            "downstream": {"folds": 2},
        }
        return _one(study)

    return build


def _ehr_codes(table=None, edit=None, batch_sizes="powers_of_two", folds=3, paths=None, **overrides):
    def build(tmp: Path) -> dict:
        written = write_ehr(tmp)
        if table is not None:
            edit(pd.read_csv(written[table])).to_csv(written[table], index=False)
        files = {**written, **{k: tmp / v for k, v in (paths or {}).items()}}
        return _one(
            {
                "data": ehr_spec(files, **overrides),
                "model": {"kind": "dense_ae", "hidden": [4], "latent": 2},
                "budget": {"unit": "epochs", "amount": 1},
                "batch_sizes": batch_sizes,
                "downstream": {"folds": folds},
            }
        )

    return build


def _to_target(**block):
    def build(tmp: Path) -> dict:
        return _one({**TO_TARGET_BASE, "to_target": {"cap": {"unit": "epochs", "amount": 3}, **block}})

    return build


def _drop_t1ce(folder: Path) -> None:
    next((folder / "BraTS_00002").glob("*_t1ce.nii.gz")).unlink()


def _mha_t2(folder: Path) -> None:
    (folder / "BraTS_00001/BraTS_00001_t2.nii.gz").unlink()
    (folder / "BraTS_00001/BraTS_00001_t2.mha").write_bytes(b"not nifti")


def _claims(*claims) -> list[dict]:
    return [{**CLAIM, "id": f"c{i}", **c} for i, c in enumerate(claims)]


GRID_CLAIM = {"metric": "critical_batch_size", "expect": "increases_with_data_size"}
NOISE_CLAIM = {"metric": "gradient_noise_scale", "expect": "predicts_critical_batch"}

# Bad configs, from the tests of config, data, brats, ehr_codes and to_target, and with several problems at
# once (the first one reported must not change when the cross-field checks are separate validators).
BAD = {
    # tests/test_config.py
    "misspelled-key": _ehr(lambda s: s.update(batch_size=[1])),
    "nested-typo": _ehr(lambda s: s["model"].update(hiden=[3])),
    "wrong-type": _ehr(lambda s: s.update(seeds="zero")),
    "batch-size-zero": _ehr(lambda s: s.update(batch_sizes=[0, 4])),
    "no-batch-sizes": _ehr(lambda s: s.update(batch_sizes=[])),
    "batch-too-big": _ehr(lambda s: s.update(batch_sizes=[1, 4096])),
    "repeated-batch-size": _ehr(lambda s: s.update(batch_sizes=[4, 4])),
    "unknown-dataset": _ehr(lambda s: s["data"].update(name="blsa")),
    "unknown-model": _ehr(lambda s: s["model"].update(kind="transformer")),
    "missing-file": _ehr(lambda s: s.update(data={"name": "file", "path": "nowhere.csv", "label": "sex"})),
    "negative-budget": _ehr(lambda s: s["budget"].update(amount=-1)),
    "bce-without-sigmoid": _ehr(lambda s: s["model"].update(output="linear", loss="bce")),
    "eval-subset-too-big": _ehr(lambda s: s["gradients"].update(eval_samples=500)),
    "spread-size-too-big": _ehr(lambda s: s["gradients"].update(spread_batch_sizes=[1, 128])),
    "spread-size-above-quarter": _ehr(lambda s: s["gradients"].update(spread_batch_sizes=[1, 32])),
    "gradient-claims-one-seed": _ehr(lambda s: s["gradients"].update(seeds=1)),
    "noise-claim-wrong-metric": _ehr(
        lambda s: s["claims"].append({**CLAIM, "metric": "val_loss", "expect": "predicts_critical_batch"})
    ),
    "noise-metric-wrong-claim": _ehr(
        lambda s: s["claims"].append({**CLAIM, "metric": "gradient_noise_scale", "expect": "increases_with_batch_size"})
    ),
    "noise-factor-below-one": _ehr(lambda s: s["claims"].append({**CLAIM, **NOISE_CLAIM, "tolerance": 0.5})),
    "fraction-above-one": _ehr(lambda s: s["steps_to_target"].update(value=2)),
    "negative-seed": _ehr(lambda s: s.update(seeds=[-1])),
    "train-samples-too-many": _ehr(lambda s: s["data"].update(train_samples=500)),
    "grid-size-too-big": _ehr(lambda s: s.update(scaling={"train_samples": [50, 400]})),
    "grid-size-below-batch": _ehr(lambda s: s.update(scaling={"train_samples": [8, 100]})),
    "grid-of-one-cell": _ehr(lambda s: s.update(scaling={"train_samples": [100]})),
    "grid-claim-without-grid": _ehr(lambda s: s["claims"].append({**CLAIM, "id": "z", **GRID_CLAIM})),
    "width-claim-without-widths": _ehr(
        lambda s: s.update(
            scaling={"train_samples": [50, 100]},
            claims=_claims({"metric": "critical_batch_size", "expect": "flat_with_model_size"}),
        )
    ),
    "contrastive-graphs-required": _ehr(
        lambda s: s.update(
            model={"kind": "contrastive"},
            training={"cuda_graphs": "require"},
            claims=[],
            steps_to_target={"kind": "fraction", "value": 0.5},
        )
    ),
    "no-seeds": _ehr(lambda s: s.update(seeds=[])),
    "zero-budget": _ehr(lambda s: s["budget"].update(amount=0)),
    "negative-batch-size": _ehr(lambda s: s.update(batch_sizes=[-4])),
    "batch-sizes-not-a-list": _ehr(lambda s: s.update(batch_sizes="16")),
    "claim-ids-repeat": _ehr(lambda s: s["claims"].append(dict(s["claims"][0]))),
    "classifier-on-regression": _ehr(
        lambda s: s.update(
            data={"name": "phantom_mri", "n_samples": 200, "label": "position"}, model={"kind": "mlp"}, batch_sizes=[4]
        )
    ),
    "baseline-fraction-contrastive": _ehr(
        lambda s: s.update(
            model={"kind": "contrastive"}, claims=[], steps_to_target={"kind": "baseline_fraction", "value": 0.5}
        )
    ),
    "gradient-seeds-above-seeds": _ehr(lambda s: s["gradients"].update(seeds=3)),
    "gradient-claims-at-init": _ehr(lambda s: s["gradients"].update(checkpoints=[0])),
    "noise-claim-contrastive": _ehr(
        lambda s: s.update(
            model={"kind": "contrastive"},
            claims=_claims(NOISE_CLAIM),
            steps_to_target={"kind": "fraction", "value": 0.5},
        )
    ),
    "grid-claim-one-size": _ehr(
        lambda s: s.update(scaling={"train_samples": [50], "width_factors": [1, 2]}, claims=_claims(GRID_CLAIM))
    ),
    # several problems: the first cross-field check to fail is the one reported
    "bce-and-eval-subset": _ehr(
        lambda s: (s["model"].update(output="linear", loss="bce"), s["gradients"].update(eval_samples=500))
    ),
    "eval-subset-and-claim-ids": _ehr(
        lambda s: (s["gradients"].update(eval_samples=500), s["claims"].append(dict(s["claims"][0])))
    ),
    "claim-ids-and-grid": _ehr(
        lambda s: (s["claims"].append(dict(s["claims"][0])), s.update(scaling={"train_samples": [50, 400]}))
    ),
    "grid-and-to-target": _ehr(
        lambda s: s.update(
            scaling={"train_samples": [8, 100]}, to_target={"cap": {"unit": "epochs", "amount": 2}, "seeds": [0, 1]}
        )
    ),
    "to-target-and-gradient-seeds": _ehr(
        lambda s: (
            s["gradients"].update(seeds=3),
            s.update(seeds=[0], to_target={"cap": {"unit": "epochs", "amount": 2}}, steps_to_target={}),
        )
    ),
    "gradient-seeds-and-contrastive": _ehr(
        lambda s: (
            s["gradients"].update(seeds=3),
            s.update(model={"kind": "contrastive"}, training={"cuda_graphs": "require"}, steps_to_target={}),
        )
    ),
    "field-and-cross-field": _ehr(
        lambda s: (s.update(batch_sizes=[4, 4]), s["model"].update(output="linear", loss="bce"))
    ),
    "two-studies-two-problems": lambda tmp: {
        "studies": {
            "a": {**copy.deepcopy(EHR), "seeds": [-1]},
            "b": {**copy.deepcopy(EHR), "model": {**EHR["model"], "output": "linear", "loss": "bce"}},
        }
    },
    # a user's table (tests/test_config.py, tests/test_data.py)
    "file-missing-column": _file(data={"features": ["a", "nope"]}, downstream={"folds": 10}),
    "file-unreadable": _file(lambda p: p.write_bytes(b"\x00\xff not a table \x00" * 10), downstream={"folds": 10}),
    "file-non-numeric": _file(lambda p: _cohort().assign(a="text").to_csv(p, index=False), downstream={"folds": 10}),
    "file-non-finite": _file(
        lambda p: _cohort().assign(b=np.r_[np.nan, np.ones(59)]).to_csv(p, index=False), downstream={"folds": 10}
    ),
    "file-one-class": _file(lambda p: _cohort().assign(sex="F").to_csv(p, index=False), downstream={"folds": 10}),
    "file-too-few-for-folds": _file(
        lambda p: _cohort(40).assign(sex=["F"] * 35 + ["M"] * 5).to_csv(p, index=False), downstream={"folds": 10}
    ),
    "file-too-few-rows": _file(lambda p: _cohort(10).to_csv(p, index=False), downstream={"folds": 10}),
    "file-missing-label-values": _file(
        lambda p: _cohort().assign(sex=[None] + ["F", "M"] * 29 + ["F"]).to_csv(p, index=False)
    ),
    "file-bad-suffix": _file(lambda p: p.write_text("a\n"), name="cohort.xlsx"),
    "file-no-features": _file(data={"features": []}),
    "file-train-samples-too-many": _file(data={"train_samples": 100}),
    "file-train-samples-and-bad-column": _file(data={"train_samples": 100, "features": ["nope"]}),
    "file-batch-too-big": _file(batch_sizes=[1, 64]),
    "file-eval-subset-too-big": _file(gradients={"eval_samples": 100, "seeds": 2}),
    "file-grid-too-big": _file(scaling={"train_samples": [10, 100]}),
    "file-to-target-batch-too-big": _file(
        to_target={"cap": {"unit": "epochs", "amount": 2}, "batch_sizes": [64]}, steps_to_target={}
    ),
    "file-regression-fewer-rows-than-folds": _file(
        lambda p: _cohort(20, regression=True).to_csv(p, index=False),
        data={"task": "regression"},
        downstream={"folds": 30},
        batch_sizes=[1],
        gradients={"eval_samples": 8, "spread_batch_sizes": [1, 2], "seeds": 2},
    ),
    "file-classifier-on-regression": _file(
        lambda p: _cohort(regression=True).to_csv(p, index=False), data={"task": "regression"}, model={"kind": "mlp"}
    ),
    "file-folds-and-grid-claim": _file(
        lambda p: _cohort(40).assign(sex=["F"] * 35 + ["M"] * 5).to_csv(p, index=False),
        downstream={"folds": 10},
        claims=_claims(GRID_CLAIM),
    ),
    "file-powers-of-two-and-eval": _file(batch_sizes="powers_of_two", gradients={"eval_samples": 100}),
    # BraTS folders (tests/test_brats.py)
    "brats-missing-modality": _brats(edit_folder=_drop_t1ce),
    "brats-not-nifti": _brats(edit_folder=_mha_t2),
    "brats-no-folder": _brats(n_cases=0),
    "brats-no-cases": _brats(n_cases=0, edit_folder=lambda f: f.mkdir()),
    "brats-train-samples-not-whole-cases": _brats(slices=2, train_samples=3),
    "brats-train-samples-too-many": _brats(train_samples=100),
    "brats-missing-modality-and-train-samples": _brats(edit_folder=_drop_t1ce, train_samples=100),
    "brats-repeated-modality": _brats(modalities=["t1", "t1"]),
    # EHR code tables (tests/test_ehr_codes.py)
    "ehr-code-table-without-person-column": _ehr_codes("codes", lambda t: t.drop(columns="pid")),
    "ehr-map-with-unexpected-columns": _ehr_codes(
        "map", lambda t: t.rename(columns={"ICD": "icd9cm", "phecode": "jd_code"})
    ),
    "ehr-label-with-one-class": _ehr_codes("demographics", lambda t: t.assign(gender="F")),
    "ehr-missing-and-malformed-paths": _ehr_codes(paths={"codes": "nowhere/codes.csv", "map": "map.xlsx"}),
    "ehr-unknown-label": _ehr_codes(label="weight"),
    "ehr-rarest-class-below-folds": _ehr_codes(folds=30),
    "ehr-fewer-persons-than-folds": _ehr_codes(label="age", folds=45),
    "ehr-train-samples-too-many": _ehr_codes(train_samples=100),
    "ehr-batch-too-big": _ehr_codes(batch_sizes=[1, 64]),
    "ehr-two-vocabulary-sources": lambda tmp: _one(
        {
            **_ehr_codes()(tmp)["studies"]["s"],
            "data": ehr_spec(
                write_ehr(tmp),
                phecode_maps=[
                    {
                        "path": str(tmp / "map.csv"),
                        "code": "ICD",
                        "phecode": "phecode",
                        "vocabulary": "ICD-9-CM",
                        "vocabulary_column": "flag",
                    }
                ],
            ),
        }
    ),
    # to_target (tests/test_to_target.py)
    "to-target-pilot-above-one": _to_target(kind="pilot_fraction", value=1.5),
    "to-target-cap-in-steps": _to_target(cap={"unit": "steps", "amount": 100}),
    "to-target-one-seed": _to_target(seeds=[0]),
    "to-target-repeated-batch-size": _to_target(batch_sizes=[4, 4]),
    "to-target-batch-too-big": _to_target(batch_sizes=[4096]),
    "to-target-gradient-seeds": _to_target(gradient_seeds=3, seeds=[0, 1]),
    "to-target-overridden-steps-to-target": lambda tmp: _one(
        {
            **TO_TARGET_BASE,
            "steps_to_target": {"kind": "within_best", "value": 0.2},
            "to_target": {"cap": {"unit": "epochs", "amount": 3}},
        }
    ),
    "to-target-contrastive-baseline": lambda tmp: _one(
        {**TO_TARGET_BASE, "model": {"kind": "contrastive"}, "to_target": {"cap": {"unit": "epochs", "amount": 3}}}
    ),
    "to-target-gradient-claims": lambda tmp: _one(
        {
            **TO_TARGET_BASE,
            "gradients": {"seeds": 2},
            "claims": _claims({"metric": "gradient_spread", "expect": "flattens_with_batch_size"}),
            "to_target": {"cap": {"unit": "epochs", "amount": 3}, "gradient_seeds": 1},
        }
    ),
}

VALID = {
    "tiny": lambda tmp: copy.deepcopy(TINY),
    "default": lambda tmp: yaml.safe_load((ROOT / "config/config.yaml").read_text()),
    "paper": lambda tmp: yaml.safe_load((ROOT / "config/paper.yaml").read_text()),
    "file-csv": _file(),
    "file-parquet-powers-of-two": _file(
        lambda p: _cohort().to_parquet(p), name="cohort.parquet", batch_sizes="powers_of_two"
    ),
    "file-npz": _file(
        lambda p: np.savez(p, x=np.random.default_rng(0).random((40, 1, 8, 8)), sex=np.repeat([0, 1], 20)),
        name="scans.npz",
        data={"train_samples": 24},
        downstream={"folds": 5},
    ),
    "file-grid-and-to-target": _file(
        scaling={"train_samples": [8, 16]},
        claims=[],
        to_target={"cap": {"unit": "epochs", "amount": 2}, "batch_sizes": [2, 8]},
        steps_to_target={},
    ),
    "brats": _brats(n_cases=6, slices=2, train_samples=4),
    "ehr-codes-powers-of-two": _ehr_codes(train_samples=20),
}

EXPECTED = {  # recorded from the single-module batchlab/config.py
    "baseline-fraction-contrastive": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': steps_to_target.kind 'baseline_fraction' needs a baseline the data define (a "
        "constant prediction), which a contrastive loss has not; use fraction, within_best or value"
    ),
    "batch-size-zero": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'batch_sizes.0': Input should be greater than 0"
    ),
    "batch-sizes-not-a-list": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'batch_sizes': Input should be a valid list"
    ),
    "batch-too-big": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'batch_sizes': batch size 4096 is larger than the training set (192 "
        "samples)"
    ),
    "bce-and-eval-subset": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': model.loss 'bce' needs model.output 'sigmoid'"
    ),
    "bce-without-sigmoid": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': model.loss 'bce' needs model.output 'sigmoid'"
    ),
    "brats-missing-modality": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': {tmp}/brats/BraTS_00002: case 'BraTS_00002' has no *_t1ce.nii or "
        ".nii.gz file (data.modalities)"
    ),
    "brats-missing-modality-and-train-samples": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': {tmp}/brats/BraTS_00002: case 'BraTS_00002' has no *_t1ce.nii or "
        ".nii.gz file (data.modalities)"
    ),
    "brats-no-cases": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': {tmp}/brats: no case folders (one subfolder per case is "
        "expected) (data.path)"
    ),
    "brats-no-folder": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data.path': {tmp}/brats: no such folder"
    ),
    "brats-not-nifti": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': 2 problems with the case files: "
        "{tmp}/brats/BraTS_00001/BraTS_00001_t2.mha: not a NIfTI file (.nii or .nii.gz) (data.path); "
        "{tmp}/brats/BraTS_00001: case 'BraTS_00001' has no *_t2.nii or .nii.gz file (data.modalities)"
    ),
    "brats-repeated-modality": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data.modalities': modalities repeat: ['t1', 't1']"
    ),
    "brats-train-samples-not-whole-cases": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': train_samples (3) must be a multiple of slices (2): cases are "
        "kept whole"
    ),
    "brats-train-samples-too-many": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': train_samples (100) exceeds the training split (4 samples)"
    ),
    "claim-ids-and-grid": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': claims: ids repeat: ['smaller-batches-lower-ae-loss', "
        "'gradient-spread-flattens', 'samples-seen-predict-loss', 'noise-scale-predicts-bcrit', "
        "'smaller-batches-lower-ae-loss']"
    ),
    "claim-ids-repeat": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': claims: ids repeat: ['smaller-batches-lower-ae-loss', "
        "'gradient-spread-flattens', 'samples-seen-predict-loss', 'noise-scale-predicts-bcrit', "
        "'smaller-batches-lower-ae-loss']"
    ),
    "classifier-on-regression": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': model.kind 'mlp' is a classifier, but the data's label is a regression target"
    ),
    "contrastive-graphs-required": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': training.cuda_graphs: require cannot be met by a contrastive model, whose "
        "views are drawn on the host at every step (a graph would replay one step's views); use auto or off"
    ),
    "ehr-batch-too-big": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'batch_sizes': batch size 64 is larger than the training set (32 samples)"
    ),
    "ehr-code-table-without-person-column": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': {tmp}/codes.csv: no column 'pid' (data.codes.person); the file's "
        "columns are ['icd', 'vocab', 'event_date']"
    ),
    "ehr-fewer-persons-than-folds": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': data: {tmp}/demographics.csv: fewer samples than downstream.folds (45)"
    ),
    "ehr-label-with-one-class": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': {tmp}/demographics.csv: label column 'gender' has one class "
        "('F') among the persons kept (data.demographics.sex)"
    ),
    "ehr-map-with-unexpected-columns": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': {tmp}/map.csv: no column 'ICD' (data.phecode_maps[0].code), "
        "'phecode' (data.phecode_maps[0].phecode); the file's columns are ['icd9cm', 'jd_code', 'flag']"
    ),
    "ehr-missing-and-malformed-paths": (
        "c.yaml: invalid configuration (2 problem(s))\n"
        "  c.yaml: study 's', field 'data.codes.path': {tmp}/nowhere/codes.csv: no such file\n"
        "  c.yaml: study 's', field 'data.phecode_maps.0.path': {tmp}/map.xlsx: unsupported file type (use "
        ".csv or .parquet or .pq)"
    ),
    "ehr-rarest-class-below-folds": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': data: {tmp}/demographics.csv: the rarest class of 'sex' has 20 samples, fewer "
        "than downstream.folds (30); lower the folds or add samples"
    ),
    "ehr-train-samples-too-many": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': train_samples (100) exceeds the training split (32 samples)"
    ),
    "ehr-two-vocabulary-sources": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data.phecode_maps.0': {tmp}/map.csv: give exactly one of vocabulary and "
        "vocabulary_column"
    ),
    "ehr-unknown-label": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': label 'weight' is neither sex nor a demographics.labels column "
        "['age']"
    ),
    "eval-subset-and-claim-ids": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': gradients.eval_samples (500) exceeds the training set (192)"
    ),
    "eval-subset-too-big": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': gradients.eval_samples (500) exceeds the training set (192)"
    ),
    "field-and-cross-field": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'batch_sizes': batch sizes repeat: [4, 4]"
    ),
    "file-bad-suffix": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data.path': {tmp}/cohort.xlsx: unsupported file type '.xlsx' (use .csv, "
        ".parquet or .npz)"
    ),
    "file-batch-too-big": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'batch_sizes': batch size 64 is larger than the training set (48 samples)"
    ),
    "file-classifier-on-regression": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': model.kind 'mlp' is a classifier, but the data's label is a regression target"
    ),
    "file-eval-subset-too-big": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': gradients.eval_samples (100) exceeds the training set (48)"
    ),
    "file-folds-and-grid-claim": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': data: {tmp}/cohort.csv: the rarest class of 'sex' has 5 samples, fewer than "
        "downstream.folds (10); lower the folds or add samples"
    ),
    "file-grid-too-big": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': scaling.train_samples [100] exceed the training split (48 samples)"
    ),
    "file-missing-column": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': {tmp}/cohort.csv: missing column(s) ['nope'] (data.features / "
        "data.label)"
    ),
    "file-missing-label-values": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': {tmp}/cohort.csv: label column 'sex' has missing values "
        "(data.label)"
    ),
    "file-no-features": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data.features': features must name at least one column (or be left out)"
    ),
    "file-non-finite": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': {tmp}/cohort.csv: 1 non-finite feature value(s), first in column "
        "#1 (data.features)"
    ),
    "file-non-numeric": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': {tmp}/cohort.csv: non-numeric feature column(s) ['a'] "
        "(data.features)"
    ),
    "file-one-class": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': {tmp}/cohort.csv: label column 'sex' has one class ('F') "
        "(data.label)"
    ),
    "file-powers-of-two-and-eval": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': gradients.eval_samples (100) exceeds the training set (48)"
    ),
    "file-regression-fewer-rows-than-folds": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': data: {tmp}/cohort.csv: fewer samples than downstream.folds (30)"
    ),
    "file-to-target-batch-too-big": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': to_target.batch_sizes [64] exceed the training set (48 samples)"
    ),
    "file-too-few-for-folds": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': data: {tmp}/cohort.csv: the rarest class of 'sex' has 5 samples, fewer than "
        "downstream.folds (10); lower the folds or add samples"
    ),
    "file-too-few-rows": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': {tmp}/cohort.csv: 10 rows; at least 20 are needed"
    ),
    "file-train-samples-and-bad-column": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': {tmp}/cohort.csv: missing column(s) ['nope'] (data.features / "
        "data.label)"
    ),
    "file-train-samples-too-many": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': train_samples (100) exceeds the training split (48 samples)"
    ),
    "file-unreadable": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': {tmp}/cohort.csv: unreadable: 'utf-8' codec can't decode byte "
        "0xff in position 1: invalid start byte"
    ),
    "fraction-above-one": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'steps_to_target': a fraction target must be in (0, 1], got 2.0"
    ),
    "gradient-claims-at-init": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': claims ['gradient-spread-flattens', 'noise-scale-predicts-bcrit'] need a "
        "gradients.checkpoints fraction above 0 (a trained model)"
    ),
    "gradient-claims-one-seed": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': claims ['gradient-spread-flattens', 'noise-scale-predicts-bcrit'] resample the "
        "seeds whose gradients were measured: set gradients.seeds to at least 2"
    ),
    "gradient-seeds-above-seeds": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': gradients.seeds (3) exceeds the number of seeds (2)"
    ),
    "gradient-seeds-and-contrastive": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': gradients.seeds (3) exceeds the number of seeds (2)"
    ),
    "grid-and-to-target": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': batch size 16 is larger than scaling.train_samples 8"
    ),
    "grid-claim-one-size": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': a claim about data size needs at least two scaling.train_samples"
    ),
    "grid-claim-without-grid": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': claims ['z'] are about a scaling grid, but the study has no `scaling` block"
    ),
    "grid-of-one-cell": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'scaling': a scaling grid needs at least two cells (two train_samples or "
        "two width_factors)"
    ),
    "grid-size-below-batch": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': batch size 16 is larger than scaling.train_samples 8"
    ),
    "grid-size-too-big": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': scaling.train_samples [400] exceed the training split (192 samples)"
    ),
    "missing-file": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data.path': nowhere.csv: no such file"
    ),
    "misspelled-key": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'batch_size': Extra inputs are not permitted"
    ),
    "negative-batch-size": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'batch_sizes.0': Input should be greater than 0"
    ),
    "negative-budget": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'budget.amount': Input should be greater than 0"
    ),
    "negative-seed": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'seeds.0': Input should be greater than or equal to 0"
    ),
    "nested-typo": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'model.hiden': Extra inputs are not permitted"
    ),
    "no-batch-sizes": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'batch_sizes': List should have at least 1 item after validation, not 0"
    ),
    "no-seeds": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'seeds': List should have at least 1 item after validation, not 0"
    ),
    "noise-claim-contrastive": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': claims ['c0']: the gradient noise scale is not defined for an in-batch "
        "(contrastive) loss"
    ),
    "noise-claim-wrong-metric": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'claims.4': claim 'g': expect predicts_critical_batch goes with metric "
        "gradient_noise_scale"
    ),
    "noise-factor-below-one": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'claims.4': claim 'g': the factor of predicts_critical_batch must exceed "
        "1, got 0.5"
    ),
    "noise-metric-wrong-claim": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'claims.4': claim 'g': metric gradient_noise_scale goes with expect "
        "predicts_critical_batch"
    ),
    "repeated-batch-size": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'batch_sizes': batch sizes repeat: [4, 4]"
    ),
    "spread-size-above-quarter": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': gradients.spread_batch_sizes [32] exceed a quarter of gradients.eval_samples "
        "(64): minibatches drawn without replacement from the subset would overlap so much that their spread "
        "shrinks by construction (to 0 at the subset's size); lower them or raise eval_samples"
    ),
    "spread-size-too-big": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': gradients.spread_batch_sizes [128] exceed a quarter of gradients.eval_samples "
        "(64): minibatches drawn without replacement from the subset would overlap so much that their spread "
        "shrinks by construction (to 0 at the subset's size); lower them or raise eval_samples"
    ),
    "to-target-and-gradient-seeds": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': to_target needs at least 2 seeds: set to_target.seeds or add study seeds"
    ),
    "to-target-batch-too-big": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': to_target.batch_sizes [4096] exceed the training set (96 samples)"
    ),
    "to-target-cap-in-steps": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'to_target.cap': the cap must be in epochs or samples, the same data for "
        "every batch size"
    ),
    "to-target-contrastive-baseline": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': to_target.kind 'pilot_fraction' needs the data's baseline (a constant "
        "prediction), which a contrastive loss has not; use kind: value"
    ),
    "to-target-gradient-claims": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': claims ['c0'] resample the seeds measured at the target: set "
        "to_target.gradient_seeds to at least 2"
    ),
    "to-target-gradient-seeds": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'to_target': gradient_seeds (3) exceeds the number of seeds"
    ),
    "to-target-one-seed": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'to_target.seeds': List should have at least 2 items after validation, "
        "not 1"
    ),
    "to-target-overridden-steps-to-target": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': steps_to_target.kind, steps_to_target.value would not be used: with to_target "
        "the critical batch size is measured at to_target's target; remove them (interpolate and bootstrap "
        "still apply)"
    ),
    "to-target-pilot-above-one": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'to_target': a pilot_fraction target must be in (0, 1], got 1.5"
    ),
    "to-target-repeated-batch-size": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'to_target.batch_sizes': to_target.batch_sizes repeat: [4, 4]"
    ),
    "train-samples-too-many": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': train_samples (500) exceeds the training split (192 samples)"
    ),
    "two-studies-two-problems": (
        "c.yaml: invalid configuration (2 problem(s))\n"
        "  c.yaml: study 'a', field 'seeds.0': Input should be greater than or equal to 0\n"
        "  c.yaml: study 'b': model.loss 'bce' needs model.output 'sigmoid'"
    ),
    "unknown-dataset": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'data': Input tag 'blsa' found using 'name' does not match any of the "
        "expected tags: 'synthetic_ehr', 'phantom_mri', 'digits', 'mnist1d', 'noisy_quadratic', 'file', 'brats', 'ehr_codes'"
    ),
    "unknown-model": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'model': Input tag 'transformer' found using 'kind' does not match any "
        "of the expected tags: 'dense_ae', 'conv_ae', 'mlp', 'cnn', 'contrastive', 'linear', 'quadratic', 'python'"
    ),
    "width-claim-without-widths": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's': a claim about model size needs at least two scaling.width_factors"
    ),
    "wrong-type": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'seeds': Input should be a valid list"
    ),
    "zero-budget": (
        "c.yaml: invalid configuration (1 problem(s))\n"
        "  c.yaml: study 's', field 'budget.amount': Input should be greater than 0"
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_configs_are_refused_as_before(tmp_path: Path, case: str):
    raw = BAD[case](tmp_path)
    with pytest.raises(ConfigError) as err:
        validate_config(raw, "c.yaml", inspect=inspect_files)
    assert str(err.value).replace(str(tmp_path), "{tmp}") == EXPECTED[case]


def test_every_bad_case_has_its_recorded_message():
    assert set(BAD) == set(EXPECTED)


@pytest.mark.parametrize("case", sorted(VALID))
def test_good_configs_validate(tmp_path: Path, case: str):
    cfg = validate_config(VALID[case](tmp_path), "c.yaml", inspect=inspect_files)
    assert all(s.data.facts_known() for s in cfg.runnable_studies().values())


def test_an_unknown_ehr_label_is_named_before_the_tables_are_read(tmp_path: Path):
    """With train_samples, the single module read the tables first and failed with a KeyError; now it is refused."""
    with pytest.raises(ConfigError, match="label 'weight' is neither sex nor a demographics.labels column"):
        validate_config(_ehr_codes(label="weight", train_samples=10)(tmp_path), "c.yaml", inspect=inspect_files)


def _file_study(tmp: Path):
    raw = _file(
        batch_sizes="powers_of_two",
        scaling={"train_samples": [32, 48]},
        claims=[],
        to_target={"cap": {"unit": "epochs", "amount": 2}},
        steps_to_target={},
    )(tmp)
    return validate_config(raw, "c.yaml", inspect=inspect_files).studies["s"]


def test_a_jobs_study_from_json_reads_no_file(tmp_path: Path, monkeypatch):
    study = _file_study(tmp_path)
    text = study.model_dump_json()
    (tmp_path / "cohort.csv").rename(tmp_path / "elsewhere.csv")

    def no_reading(*args, **kwargs):
        raise AssertionError("a job read the user's file")

    monkeypatch.setattr("batchlab.data.files.inspect_file", no_reading)
    monkeypatch.setattr("pandas.read_csv", no_reading)
    back = study_from_json(text)
    assert back == study and back.model_dump_json() == text
    assert back.batch_sizes == [1, 2, 4, 8, 16, 32] and not back.data.facts_known()
    with pytest.raises(FilesNotChecked, match="validated without file checks"):
        back.data.summary()
    with pytest.raises(FilesNotChecked, match="validated without file checks"):
        back.data.n_samples_total()
    assert back.cell_view(4).data == study.data and back.to_target_view().data.path == study.data.path


def test_jobs_read_no_brats_folder_or_ehr_table(tmp_path: Path, monkeypatch):
    brats = validate_config(_brats(n_cases=4)(tmp_path / "b"), "c.yaml", inspect=inspect_files).studies["s"]
    ehr = validate_config(_ehr_codes()(tmp_path / "e"), "c.yaml", inspect=inspect_files).studies["s"]
    texts = brats.model_dump_json(), ehr.model_dump_json()
    for path in (tmp_path / "b", tmp_path / "e"):
        path.rename(path.with_name(path.name + "-moved"))
    monkeypatch.setattr("batchlab.data.brats.cached_cases", lambda *a: pytest.fail("a job listed the cases"))
    monkeypatch.setattr("batchlab.data.ehr_codes.inspect_tables", lambda *a: pytest.fail("a job read the tables"))
    back_brats, back_ehr = (study_from_json(t) for t in texts)
    assert back_brats == brats and back_ehr == ehr
    with pytest.raises(FilesNotChecked):
        back_brats.data.cases()
    with pytest.raises(FilesNotChecked):
        back_ehr.data.summary()


def test_without_an_inspector_the_size_checks_are_skipped_and_powers_of_two_refused(tmp_path: Path):
    raw = _file(batch_sizes=[1, 64], data={"train_samples": 1000}, gradients={"eval_samples": 500, "seeds": 2})(
        tmp_path
    )
    study = validate_config(raw, "c.yaml").studies["s"]  # what the inspector would refuse is not looked at
    assert study.batch_sizes == [1, 64] and not study.data.facts_known()
    raw["studies"]["s"]["data"]["path"] = str(tmp_path / "gone.csv")
    assert validate_config(raw, "c.yaml").studies["s"].data.path == tmp_path / "gone.csv"
    raw["studies"]["s"]["batch_sizes"] = "powers_of_two"
    with pytest.raises(ConfigError, match="powers_of_two needs the training set's size"):
        validate_config(raw, "c.yaml")


def test_file_facts_survive_model_copy(tmp_path: Path):
    study = _file_study(tmp_path)
    assert study.data.summary().n_rows == 60
    cells = study.variants("s")
    assert [c.data.train_samples for c in cells.values()] == [32, 48]
    for view in [*cells.values(), study.cell_view(4), study.to_target_view(), study.model_copy()]:
        assert view.data.facts_known() and view.data.summary() == study.data.summary()
        assert view.data.n_train() == (view.data.train_samples or 48)


def test_load_config_passes_the_inspector(tmp_path: Path):
    raw = _file(data={"train_samples": 1000})(tmp_path)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert not load_config(path).studies["s"].data.facts_known()
    with pytest.raises(ConfigError, match=r"train_samples \(1000\) exceeds the training split \(48 samples\)"):
        load_config(path, inspect=inspect_files)


def test_the_config_package_imports_nothing_of_the_data_package():
    probe = (
        "import sys\nimport batchlab.config\nfrom batchlab.config import load_config, study_from_json, validate_config\n"
        "print(sorted(m for m in sys.modules if m.startswith('batchlab.data')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert json.loads(out.stdout.strip().replace("'", '"')) == []


def test_no_module_of_the_config_package_imports_the_data_package_even_deferred():
    for path in (ROOT / "src/batchlab/config").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or "", *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not [n for n in names if n == "batchlab.data" or n.startswith("batchlab.data.")], path.name
