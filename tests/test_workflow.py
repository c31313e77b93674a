"""End to end: snakemake on the tiny config in a temporary folder, then the report and the table."""

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from batchlab.cli import USAGE_LINE
from conftest import ROOT, snakemake, tiny_workdir

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def finished_run(local_run: Path, tmp_path_factory) -> Path:
    """A copy of the session's local run, so the tests here may edit its config."""
    work = tmp_path_factory.mktemp("study")
    shutil.copytree(local_run, work, dirs_exist_ok=True, symlinks=True)
    return work


def test_report_and_table(finished_run: Path):
    index = (finished_run / "reports/index.html").read_text()
    for study in ("tiny_ehr", "tiny_signal", "tiny_digits_mlp", "tiny_contrastive"):
        assert f'href="{study}/index.html"' in index
        page = (finished_run / f"reports/{study}/index.html").read_text()
        for fig in (
            "loss_vs_batch", "downstream_vs_batch", "loss_curves_samples", "loss_curves_steps",
            "gradient_spread", "b_simple", "steps_to_target", "tradeoff", "geometry_vs_batch", "lr_search",
        ):
            png = finished_run / f"reports/{study}/{fig}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert f'src="{fig}.png"' in page
        assert "git commit" in page
    assert "Synthetic stand-in data" in (finished_run / "reports/tiny_ehr/index.html").read_text()
    assert "Real data" in (finished_run / "reports/tiny_signal/index.html").read_text()

    table = pd.read_parquet(finished_run / "results/tiny_ehr/table.parquet")
    assert len(table) == 3 * 2
    assert sorted(table["batch_size"].unique()) == [1, 4, 16]
    assert table["svm_roc_auc_mean"].between(0, 1).all()
    assert (table["distance_from_init"] > 0).all() and table["sharpness"].notna().all()
    assert ((table["sharpness_iters"] > 1) & (table["sharpness_iters"] <= 20)).all()
    assert (table["samples_seen"] - 192).abs().max() <= 8
    csv = pd.read_csv(finished_run / "reports/tiny_ehr/runs.csv")
    assert len(csv) == len(table)
    prov = json.loads((finished_run / "reports/tiny_ehr/provenance.json").read_text())
    assert prov["devices"] == ["cpu"] and "torch" in prov["packages"]
    every_cell = pd.read_parquet(finished_run / "results/tiny_ehr/gradients.parquet")
    assert sorted(every_cell["batch_size"].unique()) == [1, 4, 16]
    noise = every_cell[every_cell["batch_size"] == 1]
    assert sorted(noise["fraction"]) == [0.0, 0.0, 0.5, 0.5, 1.0, 1.0] and (noise["method"] == "per_example").all()
    later = every_cell[every_cell["batch_size"] == 4]
    assert sorted(later["fraction"]) == [0.5, 0.5, 1.0, 1.0], "initial weights are measured once, in the smallest cell"
    assert sorted(later["seed"].unique()) == [0, 1]  # gradients.seeds: 2
    assert (noise["trace_sigma"] > 0).all()
    spread = pd.read_parquet(finished_run / "results/tiny_ehr/spread.parquet").query("batch_size == 4")
    sweep, own = spread[spread["probe"] == "sweep"], spread[spread["probe"] == "own"]
    assert sorted(sweep["probe_batch_size"].unique()) == [1, 2, 4, 8, 16]  # at most a quarter of the 64 examples
    assert (own["probe_batch_size"] == 4).all() and sorted(own["seed"].unique()) == [0, 1]
    assert (spread["spread"] > 0).all()
    two_batch = pd.read_parquet(finished_run / "results/tiny_signal/gradients.parquet").query("batch_size == 2")
    assert (two_batch["method"] == "two_batch").all() and sorted(two_batch["seed"]) == [0, 1]
    critical = pd.read_csv(finished_run / "reports/tiny_ehr/critical_batch.csv").set_index("quantity")
    assert {"s_min", "b_crit", "b_20", "b_20_empirical", "b_simple@0", "b_simple@1"} <= set(critical.index)
    steps = pd.read_csv(finished_run / "reports/tiny_ehr/steps_to_target.csv")
    assert len(steps) == 6 and steps["reached"].any()
    assert "Critical batch size" in (finished_run / "reports/tiny_ehr/index.html").read_text()
    log = (finished_run / "logs/tiny_ehr/train_bs1.log").read_text()
    assert "step 192/192" in log and "samples/s" in log


def test_a_report_drawn_by_several_processes_is_the_one_drawn_by_one(finished_run: Path, tmp_path: Path, monkeypatch):
    """The study page's figures drawn two at a time give the pipeline's report byte for byte."""
    monkeypatch.chdir(finished_run)  # where the pipeline ran: the page records its git commit
    from batchlab.cli import main

    spec = importlib.util.spec_from_file_location("report_workers", ROOT / "benchmarks/report_workers.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = [*bench.report_args(finished_run, "tiny_signal"), "--workers", "2", "--out-dir", str(tmp_path)]
    assert main(args) == 0
    drawn = sorted(p.name for p in tmp_path.iterdir())
    assert len([n for n in drawn if n.endswith(".png")]) == 14  # tiny_signal tunes its rate: tuned_rates.png too
    rendered_at = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d UTC")  # the page and provenance.json say when
    for name in drawn:
        ours, pipeline = (rendered_at.sub(b"", (d / name).read_bytes()) for d in (tmp_path, finished_run / "reports/tiny_signal"))
        assert ours == pipeline, name


def test_scorecard_opens_the_index(finished_run: Path):
    index = (finished_run / "reports/index.html").read_text()
    assert index.index("Replication scorecard") < index.index("<h2>Studies</h2>")
    assert 'href="./tiny_ehr/index.html#loss_vs_batch">smaller-batches-lower-ae-loss' in index
    assert 'href="./tiny_ehr/index.html#gradient_spread">gradient-spread-flattens' in index
    assert 'href="./tiny_ehr/index.html#b_simple">noise-scale-predicts-bcrit' in index
    assert 'href="./tiny_ehr/index.html#loss_curves_samples">samples-seen-predict-loss' in index
    card = pd.read_csv(finished_run / "reports/tiny_ehr/scorecard.csv")
    assert card["claim"].tolist() == [
        "smaller-batches-lower-ae-loss", "gradient-spread-flattens", "samples-seen-predict-loss", "noise-scale-predicts-bcrit"
    ]
    assert set(card["verdict"]) <= {"replicated", "not replicated", "inconclusive"}
    # seeds behind each claim (the trend and knee tests' units are the batch sizes); the spread claim is
    # about trained models, and no run of this tiny study beats its data's baseline, so it has none left
    assert card["n_units"].tolist() == [2, 0, 2, 2]
    assert card.loc[1, "verdict"] == "inconclusive" and "6 runs left out as not trained" in card.loc[1, "left_out"]
    assert "no interval: Fisher z needs 4 batch sizes, 3 have" in card.loc[0, "interval_kind"]
    assert card["statistic"].tolist() == ["spearman_rho", "spread_knee", "samples_exponent", "noise_scale_ratio"]
    assert card.loc[2, "verdict"] == "inconclusive" and card.loc[2, "interval_kind"] == "t interval over 3 batch sizes"
    critical = pd.read_csv(finished_run / "reports/tiny_ehr/critical_batch.csv").set_index("quantity")
    # 3 batch sizes cannot measure B_crit by the rule (at least 4), so the claim resting on it says so
    assert "batch sizes reached the target" in critical.loc["b_crit", "flag"]
    assert card.loc[3, "verdict"] == "inconclusive" and "B_crit is not a measurement" in card.loc[3, "detail"]
    assert pd.read_csv(finished_run / "reports/tiny_signal/scorecard.csv")["statistic"].tolist() == ["noise_scale_ratio"]


def test_train_to_target_analysis_feeds_the_critical_batch_size(finished_run: Path):
    """tiny_signal trains batch sizes 2, 8 and 32 to half of the pilot's improvement below the data's baseline,
    the pilot being the sweep's batch size 2; its critical-batch tables and B_simple come from those runs."""
    from batchlab.config import load_config
    from batchlab.data import load_dataset
    from batchlab.analysis.targets import constant_prediction_loss

    runs = pd.read_parquet(finished_run / "results/tiny_signal/to_target/runs.parquet")
    assert sorted(runs["batch_size"].unique()) == [2, 8, 32] and sorted(runs["seed"].unique()) == [0, 1]
    study = load_config(finished_run / "config/config.yaml").studies["tiny_signal"]
    baseline = constant_prediction_loss(load_dataset(finished_run / "data/tiny_signal.npz"), study.model, "val")
    sweep = pd.read_parquet(finished_run / "results/tiny_signal/table.parquet")
    pilot = sweep.loc[sweep["batch_size"] == 2, "val_loss"].mean()
    assert runs["target"].unique().tolist() == pytest.approx([baseline - 0.5 * (baseline - pilot)], rel=1e-12)
    reached = runs[runs["reached_target"]]
    assert (reached["val_loss"] <= reached["target"]).all()
    capped = runs[~runs["reached_target"]]
    assert (capped["steps"] == [study.to_target_view().budget.steps(b, int(n)) for b, n in zip(capped["batch_size"], capped["n_train"])]).all()
    steps = pd.read_parquet(finished_run / "results/tiny_signal/steps_to_target.parquet")
    assert sorted(steps["batch_size"].unique()) == [2, 8, 32] and (steps["target"] == runs["target"].iloc[0]).all()
    noise = pd.read_parquet(finished_run / "results/tiny_signal/to_target/gradients.parquet")
    stopped = noise.merge(runs[["batch_size", "seed", "steps"]], on=["batch_size", "seed"])
    assert len(stopped) == len(runs) and (stopped["step"] == stopped["steps"]).all()  # measured where each stopped
    assert pd.read_parquet(finished_run / "results/tiny_signal/to_target/spread.parquet").empty
    assert "to target: validation loss" in (finished_run / "logs/tiny_signal/train_to_target_bs2.log").read_text()
    page = (finished_run / "reports/tiny_signal/index.html").read_text()
    assert "Trained to the target." in page and f"{len(reached)} of {len(runs)} runs reached it" in page


def test_the_rate_tuned_per_batch_size_reaches_the_tables_page_and_noise_scale_claim(finished_run: Path):
    """tiny_signal tunes its train-to-target rate: each cell's trials sit beside its measured seeds, the chosen
    rates are tabled and drawn, and the noise-scale claim is scored rather than set inconclusive for the rate."""
    runs = pd.read_parquet(finished_run / "results/tiny_signal/to_target/runs.parquet")
    assert runs["lr_tuned"].all() and (runs["tuning_trials"] >= 3).all()
    search = pd.read_parquet(finished_run / "results/tiny_signal/to_target/bs8/lr_search.parquet")
    assert set(search["role"]) == {"tuning", "measured"} and set(search.loc[search["role"] == "tuning", "seed"]) == {1000}
    chosen = search.loc[search["role"] == "measured", "base_lr"].unique().tolist()
    assert len(chosen) == 1 and chosen[0] in set(search.loc[search["role"] == "tuning", "base_lr"])
    rates = pd.read_csv(finished_run / "reports/tiny_signal/tuned_rates.csv")
    assert rates["batch_size"].tolist() == [2, 8, 32]
    assert (finished_run / "reports/tiny_signal/tuned_rates.png").stat().st_size > 0
    page = (finished_run / "reports/tiny_signal/index.html").read_text()
    assert "The learning rate was tuned at each batch size" in page
    card = pd.read_csv(finished_run / "reports/tiny_signal/scorecard.csv", keep_default_na=False)
    noise = card[card["statistic"] == "noise_scale_ratio"].iloc[0]
    assert "not tuned per batch size" not in noise["protocol"] + noise["note"]
    critical = pd.read_csv(finished_run / "reports/tiny_signal/critical_batch.csv")
    assert (critical["lr_protocol"] == "learning rate tuned per batch size by steps to the target").all()


def test_every_study_page_recommends_a_batch_size_from_its_own_runs(finished_run: Path):
    """The recommendation reads the runs behind the critical batch size: their steps to the target, and the warm
    throughput measured at their batch sizes (a study without train-to-target runs, their own); tiny_signal's come
    from its train-to-target runs, at the tuned rates."""
    rec = json.loads((finished_run / "reports/tiny_signal/recommendation.json").read_text())
    runs = pd.read_parquet(finished_run / "results/tiny_signal/to_target/runs.parquet")
    speed = pd.read_parquet(finished_run / "results/tiny_signal/to_target/throughput.parquet")
    assert [r["batch_size"] for r in rec["table"]] == sorted(runs["batch_size"].unique().tolist())
    assert sorted(speed["batch_size"].unique()) == sorted(runs["batch_size"].unique()) and speed["fits"].all()
    assert [r["samples_per_s"] for r in rec["table"]] == pytest.approx(
        speed.groupby("batch_size")["samples_per_s"].median().sort_index().tolist(), rel=1e-12)
    assert rec["throughput_source"].startswith("a dedicated measurement") and rec["memory"]["kind"] == "estimate"
    if rec["available"]:
        best = rec["time_optimal_batch_size"]
        assert best in rec["band"] and rec["rate"] == "learning rate tuned per batch size by steps to the target"
        assert rec["time_optimal_lr"] == pytest.approx(runs.loc[runs["batch_size"] == best, "lr"].median())
        assert rec["paragraph"] in (finished_run / "reports/tiny_signal/index.html").read_text()
    for study in ("tiny_ehr", "tiny_digits_mlp"):
        assert "available" in json.loads((finished_run / f"reports/{study}/recommendation.json").read_text())


def test_classifier_study_records_accuracy(finished_run: Path):
    table = pd.read_parquet(finished_run / "results/tiny_digits_mlp/table.parquet")
    assert len(table) == 3 * 2 and table["test_accuracy"].between(0, 1).all()
    assert table.loc[table["batch_size"] == 4, "test_accuracy"].mean() > 0.5  # chance is 0.1
    card = pd.read_csv(finished_run / "reports/tiny_digits_mlp/scorecard.csv")
    assert card.loc[0, "claim"] == "large-batches-larger-accuracy-gap" and card.loc[0, "figure"] == "loss_vs_batch"
    assert "cross-entropy" in (finished_run / "reports/tiny_digits_mlp/index.html").read_text()


def test_tuned_protocol_keeps_the_best_rate_on_validation(finished_run: Path):
    search = pd.read_parquet(finished_run / "results/tiny_digits_mlp/lr_search.parquet")
    assert len(search) == 3 * 3 * 2  # batch sizes x learning rates x seeds
    assert not search.loc[search["base_lr"] == 50.0, "selected"].any()  # far too large: never kept
    assert not search.loc[search["diverged"], "selected"].any()
    table = pd.read_parquet(finished_run / "results/tiny_digits_mlp/table.parquet")
    for b, group in search[~search["diverged"]].groupby("batch_size"):
        means = group.groupby("base_lr")["val_loss"].mean()
        assert (table.loc[table["batch_size"] == b, "lr"] == means.idxmin()).all()
    assert (table["lr_candidates"] == 3).all()
    assert pd.read_csv(finished_run / "reports/tiny_digits_mlp/lr_search.csv").shape[0] == len(search)


def _dry_run_jobs(work: Path) -> dict[str, int]:
    dry = snakemake(work, "--cores", "2", "--dry-run", "--quiet", "rules")
    assert dry.returncode == 0, dry.stderr[-3000:]
    counts = re.findall(r"^(\w+)\s+(\d+)$", dry.stdout + dry.stderr, flags=re.M)
    return {rule: int(n) for rule, n in counts if rule not in {"total", "all"}}


def _edit_study(work: Path, study: str, edit) -> None:
    cfg = yaml.safe_load((work / "config/config.yaml").read_text())
    edit(cfg["studies"][study])
    (work / "config/config.yaml").write_text(yaml.safe_dump(cfg))


def _cache(work: Path, study: str, step: str) -> dict[str, int]:
    """The study's cached per-cell results of a step, with their modification times."""
    return {p.name: p.stat().st_mtime_ns for p in (work / f"results/{study}/cache").glob(f"{step}-*")}


def test_added_batch_size_trains_only_the_new_cell_and_reuses_the_others(finished_run: Path):
    before = {step: _cache(finished_run, "tiny_ehr", step) for step in ("downstream", "gradients")}
    _edit_study(finished_run, "tiny_ehr", lambda s: s["batch_sizes"].append(8))
    jobs = _dry_run_jobs(finished_run)
    expected = {"train", "downstream", "gradients", "aggregate", "critical_batch", "report_study", "index"}
    assert jobs == dict.fromkeys(expected, 1), jobs
    result = snakemake(finished_run, "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    for step, old in before.items():
        log = (finished_run / f"logs/tiny_ehr/{step}.log").read_text()
        assert f"{step}: 3 cells reused, 1 to compute" in log and f"{step}: batch size 8 computed" in log
        after = _cache(finished_run, "tiny_ehr", step)
        assert {k: after[k] for k in old} == old, "the finished cells' results were not recomputed"
        assert len(after) == len(old) + len(old) // 3
    table = pd.read_parquet(finished_run / "results/tiny_ehr/table.parquet")
    assert sorted(table["batch_size"].unique()) == [1, 4, 8, 16] and table["svm_roc_auc_mean"].notna().all()
    assert sorted(pd.read_parquet(finished_run / "results/tiny_ehr/gradients.parquet")["batch_size"].unique()) == [1, 4, 8, 16]


def test_svm_settings_retrain_nothing(finished_run: Path, tmp_path: Path):
    work = tmp_path / "svm"
    shutil.copytree(finished_run, work, symlinks=True)
    _edit_study(work, "tiny_signal", lambda s: s["downstream"].update(C=2.0))
    jobs = _dry_run_jobs(work)
    assert "train" not in jobs and "gradients" not in jobs and "train_to_target" not in jobs, jobs
    # tiny_signal's critical batch size comes from its train-to-target runs, which the SVMs do not touch
    assert jobs == dict.fromkeys(["downstream", "baselines", "aggregate", "report_study", "index"], 1)


def test_a_stopped_study_job_keeps_its_finished_cells(finished_run: Path, tmp_path: Path):
    """The study-wide jobs save each cell as it is done: run again, only the missing cells are computed."""
    work = tmp_path / "stopped"
    shutil.copytree(finished_run, work, symlinks=True)
    cached = sorted((work / "results/tiny_digits_mlp/cache").glob("downstream-*"))
    cached[0].unlink()  # as if the job had been killed before this cell was saved
    (work / "results/tiny_digits_mlp/downstream.parquet").unlink()
    result = snakemake(work, "--cores", "2", "results/tiny_digits_mlp/downstream.parquet")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "downstream: 2 cells reused, 1 to compute" in (work / "logs/tiny_digits_mlp/downstream.log").read_text()
    assert (work / "results/tiny_digits_mlp/downstream.parquet").read_bytes() == (
        finished_run / "results/tiny_digits_mlp/downstream.parquet"
    ).read_bytes()


def _usage_lines(work: Path) -> dict[Path, tuple[str, str, str]]:
    """Every job's last usage line (batchlab.cli): its step, the heavy libraries loaded, how it started."""
    found = {log: [m.group("step", "loaded", "started") for m in USAGE_LINE.finditer(log.read_text())]
             for log in (work / "logs").rglob("*.log")}
    found.pop(work / "logs/warm_start.log", None)
    assert all(found.values()), f"logs without a usage line: {[str(k) for k, v in found.items() if not v]}"
    return {log: lines[-1] for log, lines in found.items()}


@pytest.fixture(scope="module")
def cold_run(tmp_path_factory) -> Path:
    """One study of the tiny config (every step but the scaling report), each job in its own interpreter."""
    work = tiny_workdir(tmp_path_factory.mktemp("cold_run"))
    cfg = yaml.safe_load((work / "config/config.yaml").read_text())
    cfg["studies"] = {"tiny_signal": cfg["studies"]["tiny_signal"]}
    (work / "config/config.yaml").write_text(yaml.safe_dump({**cfg, "warm_start": False}))
    result = snakemake(work, "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "batchlab: jobs start cold: warm_start: false in the config" in result.stderr
    return work


def test_jobs_import_only_what_their_step_uses(cold_run: Path):
    """Every job started cold ends its log with the heavy libraries it loaded, checked against its step's use."""
    from test_imports import DATA_SOURCES, USES

    seen = set()
    for log, (step, loaded, started) in _usage_lines(cold_run).items():
        assert started == "cold", log
        allowed = USES[step] | (set().union(*DATA_SOURCES.values()) if step == "data" else set())
        loaded = set() if loaded == "none" else set(loaded.split(", "))
        assert loaded <= allowed, f"{log}: batchlab {step} loaded {sorted(loaded - allowed)}"
        seen.add(step)
    # the tiny config has no advise block: test_pilot.py checks that step's imports on its own run
    assert seen == set(USES) - {"validate", "schema", "scaling", "compare", "advise"}


@pytest.mark.skipif(sys.platform != "linux", reason="warm start is Linux only")
def test_a_warm_run_starts_every_job_warm_and_computes_what_a_cold_run_does(local_run: Path, cold_run: Path):
    """The session's run (warm, the default) and the cold run of one of its studies: the same tables and
    verdicts, bit for bit, apart from timings."""
    started = {log: line[2] for log, line in _usage_lines(local_run).items()}
    assert set(started.values()) == {"warm"}, [str(log) for log, how in started.items() if how != "warm"]
    assert "batchlab warm server train: stopped after" in (local_run / "logs/warm_start.log").read_text()
    timing = ["wall_time_s", "samples_per_s", "peak_mem_mb", "peak_mem_kind"]
    for table in ("table.parquet", "to_target/runs.parquet", "critical_batch.parquet", "gradients.parquet"):
        warm, cold = (pd.read_parquet(run / "results/tiny_signal" / table) for run in (local_run, cold_run))
        pd.testing.assert_frame_equal(warm.drop(columns=timing, errors="ignore"), cold.drop(columns=timing, errors="ignore"))
    assert (local_run / "reports/tiny_signal/scorecard.csv").read_bytes() == (
        cold_run / "reports/tiny_signal/scorecard.csv"
    ).read_bytes()


def test_operational_settings_rerun_nothing(local_run: Path, tmp_path: Path):
    """training.cuda_graphs changes how fast a cell trains, not its numbers: editing it retrains nothing."""
    finished_run = tmp_path / "run"
    shutil.copytree(local_run, finished_run, symlinks=True)
    cfg = yaml.safe_load((finished_run / "config/config.yaml").read_text())
    cfg["studies"]["tiny_ehr"].setdefault("training", {})["cuda_graphs"] = "require"
    (finished_run / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    dry = snakemake(finished_run, "--cores", "2", "--dry-run", "--quiet", "rules")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert not re.findall(r"^train\s+\d+$", dry.stdout + dry.stderr, flags=re.M), dry.stdout
    cfg["studies"]["tiny_ehr"]["training"]["precision"] = "bf16"  # a setting that changes the numbers does rerun
    (finished_run / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    dry = snakemake(finished_run, "--cores", "2", "--dry-run", "--quiet", "rules")
    assert re.findall(r"^train\s+3$", dry.stdout + dry.stderr, flags=re.M), dry.stdout


def test_compare_with_another_run_lists_its_flipped_verdict_and_retrains_nothing(finished_run: Path, tmp_path: Path):
    """`compare_with` names another finished run of the config: only the comparison and the index run, and
    the index lists the claim whose verdict differs; a loss changed in the other run shows at its size."""
    work, other = tmp_path / "work", tmp_path / "other"
    for folder in (work, other):
        shutil.copytree(finished_run, folder, symlinks=True)
    card = pd.read_csv(other / "reports/tiny_ehr/scorecard.csv")
    flipped = card.loc[0, "claim"]
    card.loc[0, "verdict"] = "not replicated" if card.loc[0, "verdict"] != "not replicated" else "replicated"
    card.to_csv(other / "reports/tiny_ehr/scorecard.csv", index=False)
    table = pd.read_parquet(other / "results/tiny_signal/table.parquet")
    table.loc[table.index[0], "val_loss"] /= 1.5
    table.to_parquet(other / "results/tiny_signal/table.parquet")
    cfg = yaml.safe_load((work / "config/config.yaml").read_text())
    (work / "config/config.yaml").write_text(yaml.safe_dump({**cfg, "compare_with": str(other)}))
    assert _dry_run_jobs(work) == {"compare": 1, "index": 1}
    result = snakemake(work, "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    index = (work / "reports/index.html").read_text()
    assert "Against another run" in index and "The verdicts of 1 claim differ" in index
    assert f'<td class="l">tiny_ehr</td><td class="l">{flipped}</td>' in index
    metrics = pd.read_csv(work / "reports/comparison_metrics.csv").set_index(["study", "metric"])
    assert metrics.loc[("tiny_signal", "val_loss"), "max_rel_diff"] == pytest.approx(0.5)
    assert metrics.loc[("tiny_ehr", "val_loss"), "max_rel_diff"] == 0


def test_run_table_and_report_say_how_each_cell_trained(finished_run: Path):
    table = pd.read_parquet(finished_run / "results/tiny_ehr/table.parquet")
    assert table["cuda_graph"].isna().all() and (table["cuda_graph_fallback"] == "").all()  # CPU: not applicable
    page = (finished_run / "reports/tiny_ehr/index.html").read_text()
    assert "How each cell trained" in page and "not applicable" in page


def test_bad_config_stops_before_any_job(tmp_path: Path):
    (tmp_path / "config").mkdir()
    cfg = yaml.safe_load((ROOT / "tests/config/tiny.yaml").read_text())
    cfg["studies"]["tiny_ehr"]["batch_sizes"] = [1, 100000]
    (tmp_path / "config/config.yaml").write_text(yaml.safe_dump(cfg))
    result = snakemake(tmp_path, "--cores", "2")
    assert result.returncode != 0
    assert "study 'tiny_ehr', field 'batch_sizes'" in result.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


def test_contrastive_study(finished_run: Path):
    table = pd.read_parquet(finished_run / "results/tiny_contrastive/table.parquet").set_index(["batch_size", "seed"])
    one = table.loc[1]
    # Batch size 1: no negatives, so the InfoNCE loss and its gradient are exactly 0 and Adam never moves.
    assert (one["distance_from_init"] == 0).all()
    assert (table.loc[64, "distance_from_init"] > 0).all()
    assert table["svm_roc_auc_mean"].between(0, 1).all()
    noise = pd.read_parquet(finished_run / "results/tiny_contrastive/gradients.parquet").query("batch_size == 8")
    assert noise["b_simple"].isna().all() and (noise["method"] == "not defined (in-batch loss)").all()
    spread = pd.read_parquet(finished_run / "results/tiny_contrastive/spread.parquet").query("batch_size == 8")
    assert spread["spread"].notna().all() and spread["spread_theory"].isna().all()
    assert "InfoNCE" in (finished_run / "reports/tiny_contrastive/index.html").read_text()


def test_scaling_grid_runs_every_cell_and_tests_its_claims(finished_run: Path):
    cells = pd.read_csv(finished_run / "reports/tiny_scaling/scaling.csv")
    assert cells["study"].tolist() == [f"tiny_scaling-n{n}-w{w}" for n in (80, 320) for w in (1, 2)]
    assert cells["n_params"].iloc[1] > cells["n_params"].iloc[0]  # width x2: more parameters
    for name in cells["study"]:
        runs = pd.read_csv(finished_run / f"reports/{name}/runs.csv")
        assert set(runs["n_train"]) == {int(name.split("-n")[1].split("-")[0])}
    card = pd.read_csv(finished_run / "reports/tiny_scaling/scorecard.csv")
    assert card["claim"].tolist() == ["bcrit-grows-with-data", "bcrit-flat-in-model-size"]
    assert card["statistic"].tolist() == ["log_slope_data", "log_slope_width"]
    cell_card = pd.read_csv(finished_run / "reports/tiny_scaling-n80-w1/scorecard.csv")
    assert cell_card["claim"].tolist() == ["linear-scaling-until-bcrit"]
    index = (finished_run / "reports/index.html").read_text()
    assert 'href="./tiny_scaling/index.html#critical_vs_scale">bcrit-grows-with-data' in index
    assert (finished_run / "reports/tiny_scaling/critical_vs_scale.png").stat().st_size > 10_000
