"""Config validation: every bad input gets one clear message naming the file, the study and the field."""

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from batchlab.config import Budget, ConfigError, Optim, json_schema, load_config, validate_config
from batchlab.data.inspect import inspect_files

ROOT = Path(__file__).resolve().parents[1]
TINY = yaml.safe_load((ROOT / "tests/config/tiny.yaml").read_text())


def test_default_and_test_configs_validate():
    for path in ["config/config.yaml", "config/paper.yaml", "tests/config/tiny.yaml"]:
        cfg = load_config(ROOT / path)
        assert cfg.studies


def test_schema_file_is_current():
    on_disk = json.loads((ROOT / "workflow/schemas/config.schema.json").read_text())
    assert on_disk == json_schema(), "run `make schema` to refresh workflow/schemas/config.schema.json"
    assert on_disk["$schema"].endswith("2020-12/schema")


def test_config_starts_with_schema_hint():
    assert (ROOT / "config/config.yaml").read_text().startswith("# yaml-language-server: $schema=")


def _broken(edit) -> str:
    raw = copy.deepcopy(TINY)
    edit(raw["studies"]["tiny_ehr"])
    with pytest.raises(ConfigError) as info:
        validate_config(raw, "tiny.yaml", inspect=inspect_files)
    return str(info.value)


@pytest.mark.parametrize(
    "edit, field, words",
    [
        (lambda s: s.update(batch_size=[1]), "batch_size", "Extra inputs"),
        (lambda s: s["model"].update(hiden=[3]), "model.hiden", "Extra inputs"),
        (lambda s: s.update(seeds="zero"), "seeds", "valid list"),
        (lambda s: s.update(batch_sizes=[0, 4]), "batch_sizes.0", "greater than 0"),
        (lambda s: s.update(batch_sizes=[]), "batch_sizes", "at least 1"),
        (lambda s: s.update(batch_sizes=[1, 4096]), "batch_sizes", "larger than the training set (192 samples)"),
        (lambda s: s.update(batch_sizes=[4, 4]), "batch_sizes", "repeat"),
        (lambda s: s.update(verdicts={"alpha": 0.5}), "verdicts.alpha", "less than 0.5"),
        (lambda s: s.update(verdicts={"alpha": 0}), "verdicts.alpha", "greater than 0"),
        (lambda s: s["claims"][0].update(tolerance=1.2), "claims.0", "minimum effect of increases_with_batch_size lies in (0, 1]"),
        (lambda s: s["data"].update(name="blsa"), "data", "does not match any of the expected tags"),
        (lambda s: s["model"].update(kind="transformer"), "model", "does not match any of the expected tags"),
        (lambda s: s.update(data={"name": "file", "path": "nowhere.csv", "label": "sex"}), "data.path", "no such file"),
        (lambda s: s["budget"].update(amount=-1), "budget.amount", "greater than 0"),
        (lambda s: s["model"].update(output="linear", loss="bce"), None, "model.loss 'bce' needs model.output"),
        (lambda s: s["gradients"].update(eval_samples=500), None, "gradients.eval_samples (500) exceeds the training set"),
        (lambda s: s["gradients"].update(spread_batch_sizes=[1, 128]), None, "gradients.spread_batch_sizes [128] exceed"),
        (lambda s: s["gradients"].update(spread_batch_sizes=[1, 32]), None, "[32] exceed a quarter of gradients.eval_samples (64)"),
        (lambda s: s["gradients"].update(seeds=1), None, "set gradients.seeds to at least 2"),
        (
            lambda s: s["claims"].append({"id": "g", "source": "M", "metric": "val_loss", "expect": "predicts_critical_batch"}),
            "claims.4",
            "expect predicts_critical_batch goes with metric gradient_noise_scale",
        ),
        (
            lambda s: s["claims"].append({"id": "g", "source": "M", "metric": "gradient_noise_scale", "expect": "increases_with_batch_size"}),
            "claims.4",
            "metric gradient_noise_scale goes with expect predicts_critical_batch",
        ),
        (
            lambda s: s["claims"].append(
                {"id": "g", "source": "M", "metric": "gradient_noise_scale", "expect": "predicts_critical_batch", "tolerance": 0.5}
            ),
            "claims.4",
            "must exceed 1",
        ),
        (lambda s: s["steps_to_target"].update(value=2), "steps_to_target", "fraction target must be in (0, 1]"),
        (lambda s: s.update(seeds=[-1]), "seeds.0", "greater than or equal to 0"),
        (lambda s: s["data"].update(train_samples=500), "data", "train_samples (500) exceeds the training split"),
        (lambda s: s.update(scaling={"train_samples": [50, 400]}), None, "scaling.train_samples [400] exceed"),
        (lambda s: s.update(scaling={"train_samples": [8, 100]}), None, "batch size 16 is larger than scaling.train_samples 8"),
        (lambda s: s.update(scaling={"train_samples": [100]}), "scaling", "at least two cells"),
        (
            lambda s: s["claims"].append({"id": "z", "source": "Zhang", "metric": "critical_batch_size", "expect": "increases_with_data_size"}),
            None,
            "are about a scaling grid, but the study has no `scaling` block",
        ),
        (
            lambda s: s.update(
                scaling={"train_samples": [50, 100]},
                claims=[{"id": "z", "source": "Zhang", "metric": "critical_batch_size", "expect": "flat_with_model_size"}],
            ),
            None,
            "needs at least two scaling.width_factors",
        ),
        (
            lambda s: s.update(model={"kind": "contrastive"}, training={"cuda_graphs": "require"}, claims=[],
                               steps_to_target={"kind": "fraction", "value": 0.5}),
            None,
            "require cannot be met by a contrastive model",
        ),
    ],
    ids=[
        "misspelled-key", "nested-typo", "wrong-type", "batch-size-zero", "no-batch-sizes", "batch-too-big",
        "repeated-batch-size", "alpha-half", "alpha-zero", "trend-effect-above-one", "unknown-dataset", "unknown-model", "missing-file", "negative-budget",
        "bce-without-sigmoid", "eval-subset-too-big", "spread-size-too-big", "spread-size-above-quarter",
        "gradient-claims-one-seed", "noise-claim-wrong-metric", "noise-metric-wrong-claim", "noise-factor-below-one",
        "fraction-above-one", "negative-seed",
        "train-samples-too-many", "grid-size-too-big", "grid-size-below-batch", "grid-of-one-cell",
        "grid-claim-without-grid", "width-claim-without-widths", "contrastive-graphs-required",
    ],
)
def test_bad_study_names_file_study_and_field(edit, field, words):
    msg = _broken(edit)
    assert "tiny.yaml" in msg
    assert (f"study 'tiny_ehr', field '{field}'" if field else "study 'tiny_ehr': ") in msg
    assert words in msg


def test_bad_study_name_and_top_level_key():
    raw = copy.deepcopy(TINY)
    raw["studies"]["bad/name"] = raw["studies"]["tiny_ehr"]
    with pytest.raises(ConfigError, match="must use only letters"):
        validate_config(raw, "x.yaml")
    with pytest.raises(ConfigError, match="field 'devise'"):
        validate_config({**TINY, "devise": "cpu"}, "x.yaml")


def test_malformed_and_missing_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("studies: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: malformed YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.yaml")


def test_yaml_tags_are_refused(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("device: !!python/object/apply:os.system ['true']\nstudies: {}\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(evil)


def test_none_rule_means_fixed():
    assert Optim(lr_rule="none").lr_rule == "fixed"


@pytest.mark.parametrize(
    "unit, amount, batch, n_train, steps",
    [("epochs", 2, 4, 100, 50), ("epochs", 1, 1024, 100, 1), ("samples", 1000, 8, 100, 125), ("steps", 30, 64, 10, 30)],
)
def test_budget_steps(unit, amount, batch, n_train, steps):
    assert Budget(unit=unit, amount=amount).steps(batch, n_train) == steps


def _cohort(n=60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "sex": np.tile(["F", "M"], n // 2)})


def _file_study(path: Path, **data) -> dict:
    raw = copy.deepcopy(TINY)
    study = raw["studies"]["tiny_ehr"]
    study["data"] = {"name": "file", "path": str(path), "label": "sex", **data}
    study["batch_sizes"], study["gradients"] = [1, 4], {"eval_samples": 16, "spread_batch_sizes": [1, 2], "seeds": 2}
    return raw


@pytest.mark.parametrize(
    "write, data, message",
    [
        (lambda p: _cohort().to_csv(p, index=False), {"features": ["a", "nope"]}, "missing column(s) ['nope']"),
        (lambda p: p.write_bytes(b"\x00\xff not a table \x00" * 10), {}, "unreadable"),
        (lambda p: _cohort().assign(a="text").to_csv(p, index=False), {}, "non-numeric feature column(s) ['a']"),
        (lambda p: _cohort().assign(b=np.r_[np.nan, np.ones(59)]).to_csv(p, index=False), {}, "non-finite feature"),
        (lambda p: _cohort().assign(sex="F").to_csv(p, index=False), {}, "has one class ('F')"),
        (lambda p: _cohort(40).assign(sex=["F"] * 35 + ["M"] * 5).to_csv(p, index=False), {}, "rarest class"),
        (lambda p: _cohort(10).to_csv(p, index=False), {}, "10 rows; at least 20"),
    ],
    ids=["missing-column", "unreadable", "non-numeric", "non-finite", "one-class", "too-few-for-folds", "too-few-rows"],
)
def test_bad_file_dataset_stops_validation(tmp_path, write, data, message):
    path = tmp_path / "cohort.csv"
    write(path)
    raw = _file_study(path, **data)
    raw["studies"]["tiny_ehr"]["downstream"] = {"folds": 10}
    with pytest.raises(ConfigError) as info:
        validate_config(raw, "study.yaml", inspect=inspect_files)
    text = str(info.value)
    assert "study.yaml: study 'tiny_ehr'" in text
    assert ("field 'data" in text or "study 'tiny_ehr': data: " in text) and str(path) in text and message in text


def test_good_file_dataset_validates(tmp_path):
    path = tmp_path / "cohort.parquet"
    _cohort().to_parquet(path)
    study = validate_config(_file_study(path), "study.yaml", inspect=inspect_files).studies["tiny_ehr"]
    assert study.data.n_samples_total() == 60 and study.data.summary().smallest_class == 30


@pytest.mark.parametrize(
    "edit, field, words",
    [
        (lambda s: s.update(seeds=[]), "seeds", "at least 1"),
        (lambda s: s["budget"].update(amount=0), "budget.amount", "greater than 0"),
        (lambda s: s.update(batch_sizes=[-4]), "batch_sizes.0", "greater than 0"),
        (lambda s: s.update(batch_sizes="16"), "batch_sizes", "valid list"),
    ],
    ids=["no-seeds", "zero-budget", "negative-batch-size", "batch-sizes-not-a-list"],
)
def test_empty_or_non_positive_values(edit, field, words):
    msg = _broken(edit)
    assert f"study 'tiny_ehr', field '{field}'" in msg and words in msg


def test_scaling_grid_expands_into_named_cells():
    raw = copy.deepcopy(TINY)
    study = raw["studies"]["tiny_ehr"]
    study["scaling"] = {"train_samples": [100, 50], "width_factors": [2, 0.5]}
    study["claims"].append({"id": "z", "source": "Zhang", "metric": "critical_batch_size", "expect": "increases_with_data_size"})
    cfg = validate_config(raw, "tiny.yaml")
    cells = {k: v for k, v in cfg.runnable_studies().items() if k.startswith("tiny_ehr")}
    assert list(cells) == ["tiny_ehr-n50-w0p5", "tiny_ehr-n50-w2", "tiny_ehr-n100-w0p5", "tiny_ehr-n100-w2"]
    cell = cells["tiny_ehr-n100-w0p5"]
    assert cell.data.train_samples == 100 and cell.data.n_train() == 100
    assert cell.model.hidden == [max(1, round(w * 0.5)) for w in study["model"]["hidden"]]
    assert cell.model.latent == study["model"]["latent"] and cell.scaling is None
    assert "z" not in [c.id for c in cell.claims] and "z" in [c.id for c in cfg.studies["tiny_ehr"].claims]
    assert "tiny_ehr" in cfg.scaling_studies() and "tiny_signal" not in cfg.scaling_studies()


def test_scaling_cell_names_may_not_clash_with_studies():
    raw = copy.deepcopy(TINY)
    raw["studies"]["tiny_ehr"]["scaling"] = {"train_samples": [50, 100]}
    raw["studies"]["tiny_ehr-n50-w1"] = copy.deepcopy(raw["studies"]["tiny_signal"])
    with pytest.raises(ConfigError, match="clash with the scaling cells of 'tiny_ehr'"):
        validate_config(raw, "tiny.yaml")


def test_compare_with_names_a_finished_run_of_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for where, words in [
        (tmp_path / "missing", "missing: no such folder"),
        (tmp_path, "is this run's own folder"),
        (".", "is this run's own folder"),
    ]:
        with pytest.raises(ConfigError, match="x.yaml: field 'compare_with': .*" + words):
            validate_config({**TINY, "compare_with": str(where)}, "x.yaml")
    (tmp_path / "other/results/s").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"field 'compare_with': other: not a finished run's working folder"):
        validate_config({**TINY, "compare_with": "other"}, "x.yaml")
    (tmp_path / "other/results/s/table.parquet").write_bytes(b"")
    assert validate_config({**TINY, "compare_with": "other"}, "x.yaml").compare_with == Path("other")
