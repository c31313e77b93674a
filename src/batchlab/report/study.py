"""The report of one study: figures, CSV tables, provenance and an HTML page that ties them together."""

from __future__ import annotations

import math

from pathlib import Path

import pandas as pd
import yaml

from batchlab import io, provenance
from batchlab.analysis.aggregate import summary_by_batch_size
from batchlab.analysis.claims import evaluate_claims
from batchlab.analysis.rates import rate_protocol, tuned_rates
from batchlab.analysis.recommend import pilot, recommend
from batchlab.analysis.verdict_rules import STATISTICS
from batchlab.config import Study
from batchlab.report import figures, recommendation_figure
from batchlab.report.data import data_provenance
from batchlab.report.html import render
from batchlab.training.schedule import scaled_lr

FIGURES = {
    "loss_vs_batch": "Final loss (and accuracy, for classifiers) against batch size",
    "downstream_vs_batch": "Downstream SVM on the latent embeddings against batch size",
    "loss_curves_samples": "Validation loss against training samples seen",
    "loss_curves_steps": "Validation loss against optimizer steps",
    "throughput_vs_batch": "Training throughput against batch size",
    "lr_search": "Validation loss against learning rate",
    "geometry_vs_batch": "Distance travelled, sharpness and generalization gap against batch size",
    "gradient_spread": "Gradient spread against batch size",
    "b_simple": "Gradient noise scale over training",
    "steps_to_target": "Steps to target and the critical batch size",
    "tradeoff": "Samples against steps to target",
    "recommendation": "Time and samples to the target against batch size",
    "tuned_rates": "The learning rate tuned at each batch size",
}


def _to_target_summary(
    study: Study, runs: pd.DataFrame, steps: pd.DataFrame, critical: pd.DataFrame, rates: pd.DataFrame
) -> dict:
    """What the page says about a train-to-target analysis: its target, cap, runs, how many reached it, and how
    many could not within their cap (fewer updates than the fit's S_min) apart from those that had them."""
    t = study.to_target
    short = steps[steps.get("cap_below_s_min", pd.Series(False, index=steps.index)).astype(bool)]
    missed = steps[~steps["reached"].astype(bool)]
    s_min = critical.set_index("quantity")["estimate"].get("s_min", float("nan"))
    return {
        "short_cap": int(len(short)),
        "short_cap_sizes": sorted(int(b) for b in short["batch_size"].unique()),
        "had_steps_and_missed": int(len(missed) - len(short)),
        "s_min": float(s_min),
        "target": float(runs["target"].iloc[0]),
        "describe": t.describe(),
        "cap": f"{t.cap.amount:g} {t.cap.unit}",
        "batch_sizes": sorted(int(b) for b in runs["batch_size"].unique()),
        "seeds": sorted(int(s) for s in runs["seed"].unique()),
        "runs": int(len(runs)),
        "reached": int(runs["reached_target"].astype(bool).sum()),
        "checks": t.checks,
        "averaging": None if t.weight_averaging is None else t.weight_averaging.half_life,
        "optimizer_steps": int(runs["steps"].sum()),
        "rates": rates.to_dict("records"),
        "tuning": None if t.lr_tuning is None else {
            "points": t.lr_tuning.points, "factor": t.lr_tuning.factor, "rule": t.lr_tuning.scaling_rule(study.optim.name),
            "seeds": t.lr_tuning.tuning_seeds, "extensions": t.lr_tuning.extensions,
            "trials": int(rates["tuning_trials"].sum()), "stopped": int(rates["tuning_trials_stopped"].sum()),
            "skipped": int(rates["tuning_steps_skipped"].sum()),
        },
    }


def _captions(study: Study, task: str, metric: str, n_seeds: int, n_train: int) -> dict[str, str]:
    g, t = study.gradients, study.steps_to_target
    target_text = t.describe() if study.to_target is None else f"{study.to_target.describe()}, known before training"
    trained_to = (
        "" if study.to_target is None else f" These are the train-to-target runs: each batch size trained until its "
        f"validation loss reached the target, checked at {study.to_target.checks} log-spaced steps, or until "
        f"{study.to_target.cap.amount:g} {study.to_target.cap.unit}."
        + ("" if study.to_target.weight_averaging is None else " The validation losses are those of an exponential "
           f"moving average of the weights, half-life {study.to_target.weight_averaging.half_life:g} of the steps so far.")
    )
    budget = f"{study.budget.amount:g} {study.budget.unit}"
    seeds = f"Lines: mean over {n_seeds} seeds; band: min to max over seeds."
    return {
        "loss_vs_batch": f"Final loss on each split after the same budget ({budget}) at every batch size, "
        f"learning-rate rule '{study.optim.lr_rule}'. {seeds} "
        + (
            "Right: accuracy on each split; the gap between train and test bears on the claim that large batches "
            "generalize worse (Keskar et al. 2017)."
            if study.is_classifier
            else "The InfoNCE loss compares each view with the 2(B-1) other views of its batch, so it is not "
            "comparable across training batch sizes as a measure of quality: the downstream score is. Losses here are "
            "evaluated in chunks of the evaluation batch size for every run."
            if study.model.kind == "contrastive"
            else "Bears on the claim that smaller batches give lower reconstruction loss (Kerley et al. 2023)."
        )
        + (
            "" if study.equal_steps is None else f" Dashed grey: validation of the equal-steps arm, "
            f"{study.equal_steps.steps:,} optimizer steps at each of its batch sizes (Hoffer et al. 2017's control: "
            "if the sweep's small-batch advantage comes from its extra updates, it is gone there)."
        ),
        "downstream_vs_batch": f"SVM ({study.downstream.kernel} kernel) predicting the {task} target from the "
        f"{study.model.latent}-dimensional {'embedding layer' if study.is_classifier else 'latent'}, {study.downstream.folds}-fold CV, {metric.replace('_', ' ')}. "
        f"Dashed: the same protocol on the raw inputs and on PCA of the same dimension. {seeds} "
        "Bears on the claim that smaller batches give latents with better downstream scores (Kerley et al. 2023).",
        "loss_curves_samples": "Validation loss during training against samples seen. At equal samples, curves "
        f"that lie lower learn more per sample. {seeds} Red dashed: the steps-to-target target ({target_text}); "
        "dash-dotted: the data's baseline, the loss of the best constant prediction (each feature's training mean, or "
        "the class frequencies).",
        "loss_curves_steps": "The same curves against optimizer steps: small batches take more steps for the same "
        "data, the confound Hoffer et al. (2017) point to. " + seeds,
        "throughput_vs_batch": "Samples per second of the training loop (excluding evaluation) on the device of "
        f"the run. {seeds}",
        "lr_search": (
            "Final validation loss of every run against its learning rate, one line per batch size; circled: "
            "the rate kept at each batch size, the one whose seeds diverged least and then had the lowest mean "
            "validation loss (Shallue et al. 2019; never chosen on test data). "
            if study.optim.lr_rule == "tuned"
            else f"One learning rate per batch size under the '{study.optim.lr_rule}' rule; tune it with "
            "lr_rule: tuned and an lr_grid. "
        )
        + seeds,
        "geometry_vs_batch": "Left: L2 distance of the final weights from the initial ones (Hoffer et al. 2017: it "
        "grows with the log of the number of updates, so at a fixed budget large batches travel less far). Middle: "
        f"sharpness, the largest eigenvalue of the Hessian of the training loss on {study.sharpness.samples} "
        "fixed training examples, by Lanczos on Hessian-vector products (converged values only) (Keskar et al. 2017 claim large "
        f"batches reach sharper minima). Right: test loss minus train loss. {seeds}",
        "gradient_spread": "Standard deviation of the minibatch gradient across draws, per parameter, averaged over "
        "parameters (Vaessen & van Leeuwen 2024). Left: one model per checkpoint, probe minibatches of several sizes "
        f"drawn without replacement from {g.eval_size(n_train)} fixed training examples (each at most a quarter of "
        "them); band: range over runs; dashed: B^-1/2 theory from per-example variances with the finite-population "
        "factor. On one model the spread falls as B^-1/2 by construction: this panel checks the measurement. Right: "
        "each trained run at its own batch size, at its last checkpoint, drawing with replacement from the training "
        f"split; {seeds.lower()} Dashed: the B^-1/2 line through the smallest batch size. Bears on the claim that "
        "the spread falls as B^-1/2, then flattens: the right panel departing above the line is the finding."
        + (f" Green squares: the equal-steps arm's runs, each after {study.equal_steps.steps:,} updates (equal "
           "iterations, as Vaessen & van Leeuwen compared): the claim scores these."
           if study.measures_arm_spread() else ""),
        "b_simple": f"B_simple = tr(Σ)/|G|² ({g.method.replace('_', '-')} estimate, McCandlish et al. 2018) at each "
        "checkpoint against the loss on the evaluation subset. Ringed: each run's checkpoint closest (in log step) to "
        "where it crossed the target, the B_simple compared with B_crit; red dashed: B_crit from the S(B) fit with its "
        "interval (not drawn when flagged). Bears on the claims that the noise scale grows as the loss falls and "
        "that it predicts the critical batch size.",
        "steps_to_target": f"Left: validation loss curves against steps, with the target ({target_text}) in red and "
        "the data's baseline (the best constant prediction) dash-dotted, so one sees where the target falls. Right: "
        f"steps for the {t.metric.replace('_', ' ')} to reach it; grey: runs, black: mean over seeds. Red: "
        "least-squares fit in log space of S(B) = S_min(1 + B_crit/B), drawn over the batch sizes that reached the "
        "target; dashed: B_crit (McCandlish) and B_20 = B_crit/5 (Zhang's 20% rule) with their intervals. A flagged "
        "estimate (outside the batch sizes that reached the target, fewer than 4 of them, or a fit missing by more "
        "than 0.15 in log) is grey, and one outside the data is a hatched band at the edge it lies beyond. Bears on "
        "the perfect-scaling / diminishing-returns claims (Shallue et al. 2019; McCandlish et al. 2018)." + trained_to,
        "tuned_rates": "The learning rate each batch size of the train-to-target analysis trained at, chosen by the "
        "fewest steps to the target (crossing interpolated) on tuning seeds apart from the seeds that report S(B); "
        "dashed: the scaling rule the grid was centred on. Ringed: a rate at the grid's edge after its extensions, or "
        "no rate reaching the target: such a batch size is not tuned, and the noise-scale claim says so.",
        "tradeoff": "Samples processed E = B·S against steps S to the target, per batch size (mean over seeds), "
        "with McCandlish's tradeoff curve from the fit; the cross marks B = B_crit (grey and no cross when B_crit is "
        "flagged).",
        "recommendation": "Time to the target T(B) = S(B)·B / X(B) (left; bars from the fewest steps of a seed at the "
        "highest measured throughput to the most at the lowest) and samples to it E(B) = S(B)·B (right), per batch "
        "size. Star: the fastest; shaded: the band within 10% of it; open diamond: the largest batch size within 10% "
        "of the fewest samples; dashed: the memory ceiling where it lies among the batch sizes." + trained_to,
    }


def claim_figure(metric: str, expect: str = "") -> str:
    """The figure a claim about `metric` bears on (its anchor on the study page)."""
    if expect == "predicted_by_samples_seen":
        return "loss_curves_samples"
    if expect == "holds_until_critical_batch":
        return "steps_to_target"
    if expect == "vanishes_at_equal_steps":
        return "loss_vs_batch"
    if expect == "predicts_critical_batch":
        return "b_simple"
    if metric == "gradient_spread":
        return "gradient_spread"
    if metric in ("distance_from_init", "sharpness", "generalization_gap"):
        return "geometry_vs_batch"
    if metric.endswith("accuracy") or metric == "accuracy_gap":
        return "loss_vs_batch"
    return "downstream_vs_batch" if metric.startswith("svm_") else "loss_vs_batch"


def _best_batch_size(summary: pd.DataFrame, column: str) -> str:
    """The batch size with the highest mean downstream score, as 'B (score)'."""
    if column not in summary or summary[column].isna().all():
        return "–"
    best = summary.loc[summary[column].idxmax()]
    return f"{int(best['batch_size'])} ({best[column]:.3f})"


def build_study_report(
    study_name: str,
    study: Study,
    table: pd.DataFrame,
    curves: pd.DataFrame,
    baselines: pd.DataFrame,
    dataset_meta: dict,
    noise: pd.DataFrame,
    spread: pd.DataFrame,
    steps: pd.DataFrame,
    critical: pd.DataFrame,
    lr_search: pd.DataFrame,
    out_dir: str | Path,
    data_section: dict | None = None,
    to_target: dict[str, pd.DataFrame] | None = None,
    equal_steps: pd.DataFrame | None = None,
    more_figures: tuple = (),
    workers: int = 1,
    baseline: float = math.nan,
    throughput: pd.DataFrame | None = None,
    equal_steps_spread: pd.DataFrame | None = None,
    advise: pd.DataFrame | None = None,
) -> dict:
    """Write reports/<study>/: figures, runs.csv, summary.csv, baselines.csv, provenance, index.html.

    data_section (from batchlab.report.data.describe_data) adds where the samples came from and what was left out.
    to_target (runs, curves, noise of the train-to-target analysis): `steps` and `critical` are then that
    analysis's, and the steps-to-target figure and the claims on B_crit read its curves and noise.
    equal_steps: the runs of the study's equal-steps arm, drawn beside the sweep's losses and scored by its claims.
    more_figures: further (figure function, arguments) calls, drawn with the study's own by `workers` processes.
    baseline: the data's constant-prediction validation loss; claims about trained models score only runs below it.
    throughput: the warm throughput and memory measurement (batchlab.training.throughput) the recommendation uses.
    equal_steps_spread: the spread at each arm run's own batch size, for claims scored on the arm (equal iterations);
    gradient_spread.csv gives it beside the sweep's, its `arm` column telling them apart.
    advise: the advise pilot's halving table (batchlab.training.pilot), shown with the recommendation as a pilot.
    """
    target_curves = curves if to_target is None else to_target["curves"]
    target_noise = noise if to_target is None else to_target["noise"]
    runs_behind_critical = table if to_target is None else to_target["runs"]
    rates = tuned_rates(runs_behind_critical)
    protocol = rate_protocol(runs_behind_critical, rates, critical)
    critical = critical.assign(lr_protocol=protocol.text, lr_doubtful_batch_sizes=" ".join(map(str, protocol.doubtful)))
    out = Path(out_dir)
    task = dataset_meta["tasks"][dataset_meta["target"]]
    metric = figures.primary_metric(task)
    title = f"{study_name}: {dataset_meta['name']}, {study.model.kind}"
    loss_label = {"contrastive": "InfoNCE loss (in-batch negatives)"}.get(
        study.model.kind, figures.CLASSIFIER_LOSS_LABEL if study.is_classifier else figures.LOSS_LABEL
    )
    behind = runs_behind_critical
    rate_text = protocol.text if protocol.tuned else f"{protocol.text}: a rate tuned per batch size (to_target.lr_tuning) may move the answer"
    recommendation = recommend(steps, behind, str(behind["device"].iloc[0]) if "device" in behind else "device", rate_text,
                               throughput)
    recommendation["pilot"] = None if advise is None else pilot(advise)
    io.write_json(recommendation, out / "recommendation.json")
    drawn = [  # the slowest first, so that none is left to end the job alone
        (figures.steps_to_target, (steps, critical, out / "steps_to_target.png", title, target_curves)),
        (figures.loss_curves, (curves, "samples_seen", out / "loss_curves_samples.png", title, loss_label, critical)),
        (figures.loss_curves, (curves, "step", out / "loss_curves_steps.png", title, loss_label, critical)),
        (figures.lr_search, (lr_search, out / "lr_search.png", title)),
        (figures.gradient_spread, (spread, out / "gradient_spread.png", title, equal_steps_spread)),
        (figures.geometry_vs_batch, (table, out / "geometry_vs_batch.png", title)),
        (figures.b_simple_over_training,
         (noise, out / "b_simple.png", title, loss_label, steps, critical, target_noise)),
        (figures.tradeoff, (steps, critical, out / "tradeoff.png", title)),
        (figures.loss_vs_batch, (table, out / "loss_vs_batch.png", title, loss_label, equal_steps)),
        (figures.throughput_vs_batch, (table, out / "throughput_vs_batch.png", title)),
        (recommendation_figure.recommendation, (recommendation, out / "recommendation.png", title)),
        (figures.downstream_vs_batch,
         (table, baselines, metric, study.downstream.folds, out / "downstream_vs_batch.png", title)),
    ]
    if not rates.empty:
        view = study.to_target_view()
        centre = pd.DataFrame({"batch_size": rates["batch_size"],
                               "lr": [scaled_lr(view.optim, int(b)) for b in rates["batch_size"]]})
        drawn.append((figures.tuned_rates, (rates, centre, out / "tuned_rates.png", title)))
        io.write_csv(rates, out / "tuned_rates.csv")
    figures.draw_all(drawn + list(more_figures), workers)

    summary_cols = ["train_loss", "val_loss", "test_loss", f"svm_{metric}_mean", "svm_accuracy_mean", "svm_mae_mean"]
    geometry = ["generalization_gap", "distance_from_init", "sharpness"]
    if study.is_classifier:
        geometry += ["train_accuracy", "val_accuracy", "test_accuracy", "accuracy_gap"]
    summary = summary_by_batch_size(table, summary_cols + geometry + ["lr", "steps", "samples_per_s"])
    for frame, prefix in ((summary, f"svm_{metric}_mean_"), (baselines, f"{metric}_")):  # a skipped downstream step
        for col in (f"{prefix}mean", f"{prefix}std"):  # scored nothing: its page shows no number
            if col not in frame:
                frame[col] = math.nan
    io.write_csv(table, out / "runs.csv")
    io.write_csv(summary, out / "summary.csv")
    io.write_csv(baselines, out / "baselines.csv")
    io.write_csv(curves, out / "curves.csv")
    io.write_csv(noise, out / "gradient_noise.csv")
    arms = [spread.assign(arm="sweep")] + ([] if equal_steps_spread is None else [equal_steps_spread.assign(arm="equal_steps")])
    io.write_csv(pd.concat(arms, ignore_index=True), out / "gradient_spread.csv")
    io.write_csv(steps, out / "steps_to_target.csv")
    io.write_csv(critical, out / "critical_batch.csv")
    io.write_csv(lr_search, out / "lr_search.csv")
    scorecard = evaluate_claims(
        study.claims, table, spread, curves=curves, steps=steps, noise=target_noise, alpha=study.verdicts.alpha,
        n_perm=study.verdicts.permutations, baseline=baseline, lr_rule=study.optim.lr_rule, equal_steps=equal_steps,
        optimizer=study.optim.name, critical_protocol=protocol, equal_steps_spread=equal_steps_spread,
    )
    scorecard = scorecard.assign(
        study=study_name, figure=[claim_figure(m, e) for m, e in zip(scorecard["metric"], scorecard["expect"])]
    )
    io.write_csv(scorecard, out / "scorecard.csv")
    prov = provenance.collect(table["device"].astype(str).tolist(), provenance.how_cells_trained(table))
    study_yaml = yaml.safe_dump({study_name: study.model_dump(mode="json")}, sort_keys=False)
    io.write_text(study_yaml, out / "config.yaml")
    if data_section and data_section["inputs"]:
        prov["data"] = data_provenance(data_section)
    io.write_json(prov, out / "provenance.json")

    meta = {
        "name": study_name,
        "description": study.description,
        "dataset": dataset_meta["name"],
        "dataset_description": dataset_meta["description"],
        "synthetic": bool(dataset_meta["synthetic"]),
        "target": dataset_meta["target"],
        "task": task,
        "metric": metric,
        "model": study.model.kind,
        "n_runs": int(len(table)),
        "n_train": int(table["n_train"].iloc[0]),
        "n_diverged": int(table["diverged"].sum()),
        "batch_sizes": sorted(int(b) for b in table["batch_size"].unique()),
        "seeds": list(study.seeds),
        "kind": "study",
        "best_batch_size": _best_batch_size(summary, f"svm_{metric}_mean_mean"),
        "scorecard": scorecard.to_dict("records"),
        "statistics": {k: STATISTICS[k] for k in scorecard["statistic"].unique()},
    }
    html = render(
        "study.html",
        meta=meta,
        study=study,
        figures=[
            {"file": f"{key}.png", "title": FIGURES[key], "caption": cap}
            for key, cap in _captions(study, task, metric, len(study.seeds), meta["n_train"]).items()
            if key != "tuned_rates" or not rates.empty
        ],
        summary=summary,
        baselines=baselines,
        critical=critical,
        steps=steps,
        to_target=None if to_target is None else _to_target_summary(study, to_target["runs"], steps, critical, rates),
        reached_sizes=sorted(int(b) for b in steps.loc[steps["reached"].astype(bool), "batch_size"].unique()),
        scorecard=meta["scorecard"],
        statistics=meta["statistics"],
        provenance=prov,
        study_yaml=study_yaml,
        data=data_section,
        recommendation=recommendation,
    )
    io.write_text(html, out / "index.html")
    io.write_json(meta, out / "summary.json")
    return meta
