"""Figures of a study. Every curve shows the range over seeds; batch-size axes are log2."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from batchlab import forked  # noqa: E402
from batchlab.io import atomic_path  # noqa: E402

SEED_RANGE = ("pi", 100)  # shaded band = min..max over seeds
LOSS_LABEL = "reconstruction loss (per-feature mean)"
CLASSIFIER_LOSS_LABEL = "cross-entropy loss"


def draw_all(calls: list[tuple], workers: int = 1) -> None:
    """Draw each (figure function, arguments): up to `workers` at once, each in a forked process.

    A figure is drawn by the same code from the same data in any process, so the files do not depend
    on the number of workers. A study page's figures are independent and most of its report's time."""
    for _ in forked.imap(_draw, calls, workers):
        pass


def _draw(fn, args: tuple) -> None:
    fn(*args)


def _log2_batch_axis(ax: plt.Axes, batch_sizes) -> None:
    ax.set_xscale("log", base=2)
    ticks = sorted(set(int(b) for b in batch_sizes))
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.set_xlabel("batch size (samples, log2 axis)")


def _save(fig: plt.Figure, path: str | Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def loss_vs_batch(
    table: pd.DataFrame, path: str | Path, title: str, loss_label: str = LOSS_LABEL, equal_steps: pd.DataFrame | None = None
) -> None:
    """Final train, validation and test loss against batch size; for classifiers also their accuracy. With an
    equal-steps arm, its validation values are drawn dashed beside the fixed-data sweep's."""
    ok = table[~table["diverged"]]
    arm = None if equal_steps is None else equal_steps[~equal_steps["diverged"]]
    panels = [("loss", loss_label)] + ([("accuracy", "accuracy")] if "test_accuracy" in ok else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.2), squeeze=False)
    for ax, (quantity, label) in zip(axes[0], panels):
        long = ok.melt(
            id_vars=["batch_size", "seed"],
            value_vars=[f"{split}_{quantity}" for split in ("train", "val", "test")],
            var_name="split",
            value_name=quantity,
        )
        long["split"] = long["split"].str.removesuffix(f"_{quantity}")
        sns.lineplot(long, x="batch_size", y=quantity, hue="split", marker="o", errorbar=SEED_RANGE, ax=ax)
        if arm is not None and not arm.empty:
            steps = "/".join(str(int(s)) for s in sorted(arm["steps"].unique()))
            sns.lineplot(arm, x="batch_size", y=f"val_{quantity}", marker="s", ls="--", color="0.2", errorbar=SEED_RANGE,
                         ax=ax, label=f"val, equal steps ({steps} per run)")
        _log2_batch_axis(ax, table["batch_size"])
        ax.set_ylabel(label)
        ax.set_title(title)
    _save(fig, path)


def downstream_vs_batch(
    table: pd.DataFrame, baselines: pd.DataFrame, metric: str, folds: int, path: str | Path, title: str
) -> None:
    """Cross-validated SVM score of the latent embeddings against batch size, baselines as horizontal lines."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    col = f"svm_{metric}_mean"
    data = table[~table["diverged"] & table[col].notna()] if col in table else table.iloc[:0]
    if not data.empty:
        sns.lineplot(data, x="batch_size", y=col, marker="o", errorbar=SEED_RANGE, ax=ax, label="autoencoder latent")
    palette = {"raw": "0.35", "pca": "tab:green"}
    skipped = _skipped_downstream(table, baselines)
    if skipped:  # nothing was scored (unlabelled data, a model without encode): the figure says why
        ax.text(0.5, 0.5, f"downstream step skipped:\n{skipped}", ha="center", va="center", transform=ax.transAxes)
    shown = baselines[baselines["evaluated"].fillna(False).astype(bool)] if "evaluated" in baselines else baselines
    for _, row in shown.iterrows():
        ax.axhline(row[f"{metric}_mean"], ls="--", color=palette.get(row["embedding"], "0.5"), label=f"baseline: {row['embedding']}")
    _log2_batch_axis(ax, table["batch_size"])
    ax.set_ylabel(f"SVM {metric.replace('_', ' ')} ({folds}-fold CV mean)")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    _save(fig, path)


def _skipped_downstream(table: pd.DataFrame, baselines: pd.DataFrame) -> str:
    """Why nothing was scored downstream ('' when an embedding or a baseline was): the runs' svm_skipped_reason and
    the baselines' skipped_reason (unlabelled data, a model without encode)."""
    scored = [frame[col].fillna(False).astype(bool).any()
              for frame, col in ((table, "svm_evaluated"), (baselines, "evaluated")) if col in frame]
    reasons = {r for frame, col in ((table, "svm_skipped_reason"), (baselines, "skipped_reason")) if col in frame
               for r in frame[col].dropna() if r}
    return "" if any(scored) or not reasons else "; ".join(sorted(reasons))


def loss_curves(
    curves: pd.DataFrame, x: str, path: str | Path, title: str, loss_label: str = LOSS_LABEL, critical: pd.DataFrame | None = None
) -> None:
    """Validation loss curves, one per batch size, against samples seen or optimizer steps (log axis).

    With the critical-batch table, the steps-to-target target (when it applies to the validation loss) and
    the data's baseline (the best constant prediction) are drawn across, so a reader sees where they fall.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    _curves_panel(ax, curves, x, critical)
    ax.set_ylabel(f"validation {loss_label}")
    ax.set_title(title)
    _save(fig, path)


def _curves_panel(ax: plt.Axes, curves: pd.DataFrame, x: str, critical: pd.DataFrame | None) -> None:
    """Seed-range loss curves per batch size, with the target and the data's baseline as horizontal lines.

    When the lines sit in the bottom tenth of the curves' range (a target near the end of training), an
    inset zooms on them, so one sees which curves cross the target and when.
    """
    data = curves.copy()
    data["batch size"] = data["batch_size"]
    sizes = sorted(data["batch size"].unique())
    palette = dict(zip(sizes, sns.color_palette("viridis", len(sizes))))
    sns.lineplot(data, x=x, y="val_loss", hue="batch size", palette=palette, errorbar=SEED_RANGE, ax=ax)
    lines = []
    if critical is not None and not critical.empty:
        first = critical.iloc[0]
        baseline = float(first.get("baseline", np.nan))
        if np.isfinite(baseline):
            lines.append((baseline, dict(color="0.35", ls="-.", lw=1), f"data baseline (constant prediction) {baseline:.3g}"))
        if first["metric"] == "val_loss":
            lines.append((float(first["target"]), dict(color="tab:red", ls="--", lw=1.2), f"target {first['target']:.3g}"))
    for value, style, label in lines:
        ax.axhline(value, label=label, **style)
    ax.set_xscale("log")
    ax.set_xlabel({"samples_seen": "training samples seen (log axis)", "step": "optimizer steps (log axis)"}[x])
    ax.legend(title="batch size", ncols=2, fontsize="x-small", title_fontsize="x-small")
    finite = data["val_loss"][np.isfinite(data["val_loss"])]
    if lines and len(finite):
        low, high = float(finite.min()), float(finite.max())
        top = max(v for v, _, _ in lines)
        if top < low + 0.1 * (high - low):
            _zoom_on_lines(ax, data, x, palette, lines, low, top)


def _zoom_on_lines(ax: plt.Axes, data: pd.DataFrame, x: str, palette: dict, lines: list, low: float, top: float) -> None:
    """An inset of the seed-mean curves around the target and baseline lines."""
    inset = ax.inset_axes([0.08, 0.14, 0.42, 0.42])
    for b, run in data.groupby("batch_size"):
        mean = run.groupby(x)["val_loss"].mean()
        inset.plot(mean.index, mean.values, color=palette[b], lw=1)
    for value, style, _ in lines:
        inset.axhline(value, **style)
    span = max(top - low, 1e-12)
    inset.set_ylim(low - 0.2 * span, top + 1.5 * span)
    inset.set_xscale("log")
    inset.tick_params(labelsize="xx-small")
    inset.set_title("zoom on the target", fontsize="xx-small")


def throughput_vs_batch(table: pd.DataFrame, path: str | Path, title: str) -> None:
    """Training throughput against batch size: what a bigger batch buys in speed."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    sns.lineplot(table, x="batch_size", y="samples_per_s", marker="o", errorbar=SEED_RANGE, ax=ax)
    _log2_batch_axis(ax, table["batch_size"])
    ax.set_yscale("log")
    ax.set_ylabel("training samples per second (log axis)")
    ax.set_title(title)
    _save(fig, path)


def primary_metric(task: str) -> str:
    return "roc_auc" if task == "classification" else "r2"


def gradient_spread(spread: pd.DataFrame, path: str | Path, title: str, arm: pd.DataFrame | None = None) -> None:
    """Left: one model's spread against probe batch size per checkpoint, B^-1/2 theory dashed. Right: each
    trained run's spread at its own batch size (last checkpoint) against the B^-1/2 line through the smallest,
    and the equal-steps arm's runs (equal iterations) where `arm` gives their spread."""
    fig, (ax, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    sweep = spread[spread["probe"] == "sweep"] if "probe" in spread else spread
    data = sweep.assign(checkpoint=sweep["fraction"].map(lambda f: f"{f:.0%} of training"))
    order = sorted(data["checkpoint"].unique(), key=lambda c: float(c.split("%")[0]))
    palette = dict(zip(order, sns.color_palette("rocket_r", len(order))))
    sns.lineplot(data, x="probe_batch_size", y="spread", hue="checkpoint", hue_order=order, palette=palette,
                 marker="o", errorbar=SEED_RANGE, ax=ax)
    theory = data.groupby(["checkpoint", "probe_batch_size"])["spread_theory"].mean().reset_index().dropna()
    for checkpoint, group in theory.groupby("checkpoint"):
        ax.plot(group["probe_batch_size"], group["spread_theory"], ls="--", color=palette[checkpoint], alpha=0.8)
    _log2_batch_axis(ax, data["probe_batch_size"])
    ax.set_xlabel("probe minibatch size (samples, log2 axis)")
    ax.set_yscale("log")
    ax.set_ylabel("gradient spread: mean over parameters of sd across draws")
    ax.set_title(f"{title}\none model, probe minibatches", fontsize="medium")
    ax.legend(title="checkpoint (dashed: B^-1/2 theory)", fontsize="x-small", title_fontsize="x-small")
    _own_spread_panel(right, spread, arm)
    _save(fig, path)


def _own_spread_panel(ax: plt.Axes, spread: pd.DataFrame, arm: pd.DataFrame | None = None) -> None:
    """Each measured run's spread at its own batch size, last checkpoint, with the B^-1/2 line through the smallest."""
    from batchlab.analysis.claims import own_spread

    own = own_spread(spread)
    own = own[np.isfinite(own["log_spread"])]
    if own.empty:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
        return
    sns.lineplot(own, x="batch_size", y="spread", marker="o", errorbar=SEED_RANGE, ax=ax,
                 label="equal epochs: the sweep (mean over seeds)")
    arm_own = own_spread(arm) if arm is not None and not arm.empty else own.iloc[:0]
    arm_own = arm_own[np.isfinite(arm_own["log_spread"])]
    if not arm_own.empty:
        updates = "/".join(str(int(s)) for s in sorted(arm_own["step"].unique())) if "step" in arm_own else "?"
        sns.lineplot(arm_own, x="batch_size", y="spread", marker="s", errorbar=SEED_RANGE, ax=ax, color="tab:green",
                     label=f"equal iterations: the equal-steps arm ({updates} updates)")
    means = own.groupby("batch_size")["log_spread"].mean()
    sizes = means.index.to_numpy(dtype=float)
    line = np.exp(means.iloc[0]) * (sizes / sizes[0]) ** -0.5
    ax.plot(sizes, line, ls="--", color="0.3", label="B^-1/2 through the smallest batch size")
    _log2_batch_axis(ax, sizes)
    ax.set_yscale("log")
    ax.set_xlabel("training batch size = probe batch size (samples, log2 axis)")
    ax.set_ylabel("gradient spread at the run's own batch size")
    ax.set_title("each trained run at its own batch size (last checkpoint)", fontsize="medium")
    ax.legend(fontsize="x-small")


def b_simple_over_training(
    noise: pd.DataFrame, path: str | Path, title: str, loss_label: str = LOSS_LABEL,
    steps: pd.DataFrame | None = None, critical: pd.DataFrame | None = None, at_target: pd.DataFrame | None = None,
) -> None:
    """B_simple against the evaluation loss at each checkpoint, one line per training batch size.

    With steps and the critical-batch table: the checkpoints closest to each run's crossing of the target
    are ringed (from `at_target`, the train-to-target runs' noise, when the steps are theirs), and a
    measured B_crit is drawn across with its interval (a flagged one is only named).
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    data = noise.dropna(subset=["b_simple"])
    data = data.assign(**{"batch size": data["batch_size"]})  # the column of `noise` would add back its dropped rows
    if not data.empty:
        sizes = sorted(data["batch size"].unique())
        palette = dict(zip(sizes, sns.color_palette("viridis", len(sizes))))
        # one line per run: seeds reach different losses, so there is no common x to average over
        data = data.sort_values(["batch_size", "seed", "step"])
        sns.lineplot(data, x="eval_loss", y="b_simple", hue="batch size", palette=palette, marker="o",
                     units="seed", estimator=None, sort=False, ax=ax)
    if steps is not None and critical is not None and not data.empty:
        _mark_noise_at_target(ax, noise if at_target is None else at_target, steps, critical)
    if not data.empty:
        ax.legend(title="training batch size", ncols=2, fontsize="x-small", title_fontsize="x-small")
    ax.invert_xaxis()
    ax.set_yscale("log")
    ax.set_xlabel(f"{loss_label} on the evaluation subset (falls to the right)")
    ax.set_ylabel("B_simple = tr(Σ)/|G|² (samples, log axis)")
    ax.set_title(title)
    _save(fig, path)


def _mark_noise_at_target(ax: plt.Axes, noise: pd.DataFrame, steps: pd.DataFrame, critical: pd.DataFrame) -> None:
    from batchlab.analysis.at_target import noise_at_crossing

    at = noise_at_crossing(noise, steps)
    if not at.empty:
        ax.scatter(at["eval_loss"], at["b_simple"], s=120, facecolors="none", edgecolors="black", zorder=5,
                   label="checkpoint closest to the target")
    row = critical.set_index("quantity").loc["b_crit"] if "b_crit" in set(critical["quantity"]) else None
    if row is None:
        return
    if row.get("flag", ""):
        ax.text(0.02, 0.02, "B_crit not measured (flagged): not drawn", transform=ax.transAxes, fontsize="x-small", color="0.4")
        return
    ax.axhline(row["estimate"], color="tab:red", ls="--", lw=1, label=f"B_crit = {row['estimate']:.3g} (S(B) fit)")
    if np.isfinite(row["low"]) and np.isfinite(row["high"]):
        ax.axhspan(row["low"], row["high"], color="tab:red", alpha=0.08, lw=0)


def _mark_estimate(ax: plt.Axes, value: float, low: float, high: float, reason: str, lo: float, hi: float,
                   color: str, name: str) -> None:
    """A vertical line for a batch-size estimate with its interval; a flagged one grey and never beyond [lo, hi].

    Inside the data a flagged estimate is a grey dotted line; outside it a hatched band at the edge it lies
    beyond, labelled with the value, so nothing is drawn where no batch size was measured.
    """
    if not np.isfinite(value):
        return
    if not reason:
        ax.axvline(value, color=color, ls="--", lw=1, label=f"{name} = {value:.3g}")
        if np.isfinite(low) and np.isfinite(high):
            ax.axvspan(max(low, lo), min(high, hi), color=color, alpha=0.08, lw=0)
        return
    if lo <= value <= hi:
        ax.axvline(value, color="0.55", ls=":", lw=1.2, label=f"{name} = {value:.3g} (flagged)")
        return
    edge, side = (lo, "below") if value < lo else (hi, "above")
    band = (edge, edge * 2**0.35) if side == "below" else (edge / 2**0.35, edge)
    ax.axvspan(*band, facecolor="none", edgecolor="0.55", hatch="///", lw=0,
               label=f"{name} = {value:.3g}: {side} the data (flagged)")


def _flag_note(critical: pd.DataFrame) -> str:
    flagged = critical[critical.get("flag", pd.Series("", index=critical.index)).fillna("") != ""]
    flagged = flagged[flagged["quantity"].isin(["b_crit", "b_20", "b_20_empirical"])]
    return "\n".join(f"flagged: {r}" for r in dict.fromkeys(flagged["flag"]))


def steps_to_target(
    steps: pd.DataFrame, critical: pd.DataFrame, path: str | Path, title: str, curves: pd.DataFrame | None = None
) -> None:
    """Left: the loss curves against steps with the target across them. Right: steps to the target against
    batch size with the S(B) fit, B_crit and B_20; flagged estimates greyed and never drawn beyond the data."""
    from batchlab.analysis.cbs import StepsFit

    if curves is not None:
        fig, (left, ax) = plt.subplots(1, 2, figsize=(12, 4.4))
        _curves_panel(left, curves, "step", critical)
        left.set_ylabel("validation loss")
        left.set_title("where the target falls on the loss curves", fontsize="medium")
    else:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
    reached = steps[steps["reached"]]
    if not reached.empty:
        sns.scatterplot(reached, x="batch_size", y="steps", color="0.55", s=18, ax=ax, label="runs (reached)")
        means = reached.groupby("batch_size")["steps"].mean()
        ax.plot(means.index, means.values, "o", color="black", label="mean over seeds")
        ideal = means.iloc[0] * means.index[0] / means.index.to_numpy(dtype=float)
        ax.plot(means.index, ideal, ":", color="0.4", label="perfect scaling (slope -1)")
    table = critical.set_index("quantity")
    flags = table["flag"].fillna("") if "flag" in table else pd.Series("", index=table.index)
    est = table["estimate"]
    if np.isfinite(est.get("b_crit", np.nan)) and not reached.empty:
        lo, hi = float(reached["batch_size"].min()), float(reached["batch_size"].max())
        fit = StepsFit(est["s_min"], est["b_crit"], est["s_min"] * est["b_crit"], est["b_20"], np.nan, 0)
        grid = np.geomspace(lo, hi, 100)
        poor = "misses the steps" in flags["b_crit"]
        ax.plot(grid, fit.steps(grid), color="0.55" if poor else "tab:red", ls=":" if poor else "-",
                label="fit S_min(1 + B_crit/B)" + (" (flagged)" if poor else ""))
        for q, color, name in (("b_crit", "tab:red", "B_crit"), ("b_20", "tab:orange", "B_20 = B_crit/5")):
            _mark_estimate(ax, est[q], table.loc[q, "low"], table.loc[q, "high"], flags[q], lo, hi, color, name)
    never = steps[~steps["reached"]]
    notes = ([f"{len(never)} run(s) never reached the target"] if not never.empty else []) + [_flag_note(critical)]
    ax.text(0.02, 0.02, "\n".join(n for n in notes if n), transform=ax.transAxes, fontsize="x-small", wrap=True,
            va="bottom")
    _log2_batch_axis(ax, steps["batch_size"])
    ax.set_yscale("log")
    ax.set_ylabel("optimizer steps to target (log axis)")
    ax.set_title(title if curves is None else f"{title}\nsteps to target", fontsize="medium")
    ax.legend(fontsize="x-small")
    _save(fig, path)


def tradeoff(steps: pd.DataFrame, critical: pd.DataFrame, path: str | Path, title: str) -> None:
    """Samples against steps to the target, with the curve (S/S_min - 1)(E/E_min - 1) = 1."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    reached = steps[steps["reached"]]
    if not reached.empty:
        means = reached.groupby("batch_size")[["steps", "samples"]].mean().reset_index()
        sns.scatterplot(means, x="steps", y="samples", hue="batch_size", palette="viridis", ax=ax, s=40)
    table = critical.set_index("quantity")
    est = table["estimate"]
    flagged = bool(table["flag"].fillna("").get("b_crit", "")) if "flag" in table else False
    if np.isfinite(est.get("b_crit", np.nan)):
        s_min, e_min = est["s_min"], est["s_min"] * est["b_crit"]
        color, note = ("0.6", " (B_crit flagged)") if flagged else ("tab:red", "")
        s = s_min * np.geomspace(1.01, 1000, 200)
        ax.plot(s, e_min * (1 + 1 / (s / s_min - 1)), color=color, ls=":" if flagged else "-",
                label="(S/S_min − 1)(E/E_min − 1) = 1" + note)
        if not flagged:
            ax.plot([2 * s_min], [2 * e_min], "x", color=color, ms=10, label="B = B_crit: 2 S_min, 2 E_min")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("optimizer steps to target S (log axis)")
    ax.set_ylabel("training samples to target E = B·S (log axis)")
    ax.set_title(title)
    ax.legend(fontsize="x-small", title="batch size", title_fontsize="x-small")
    _save(fig, path)


def geometry_vs_batch(table: pd.DataFrame, path: str | Path, title: str) -> None:
    """Distance from initialisation, sharpness and generalization gap against batch size, one panel each."""
    ok = table[~table["diverged"]]
    panels = [
        ("distance_from_init", "‖θ − θ₀‖₂ (distance from init)", False),
        ("sharpness", "top Hessian eigenvalue (sharpness)", True),
        ("generalization_gap", "test loss − train loss", False),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.0))
    for ax, (column, label, log) in zip(axes, panels):
        if column in ok and ok[column].notna().any():
            sns.lineplot(ok, x="batch_size", y=column, marker="o", errorbar=SEED_RANGE, ax=ax)
            if log and (ok[column] > 0).all():
                ax.set_yscale("log")
        else:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
        _log2_batch_axis(ax, table["batch_size"])
        ax.set_ylabel(label)
    fig.suptitle(title)
    _save(fig, path)


def lr_search(search: pd.DataFrame, path: str | Path, title: str) -> None:
    """Final validation loss against learning rate, one line per batch size, the kept rate circled."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ok = search[~search["diverged"]]
    sizes = sorted(search["batch_size"].unique())
    palette = dict(zip(sizes, sns.color_palette("viridis", len(sizes))))
    if not ok.empty:
        sns.lineplot(ok, x="base_lr", y="val_loss", hue="batch_size", palette=palette, marker="o",
                     errorbar=SEED_RANGE, ax=ax, legend="full")
        kept = ok[ok["selected"]].groupby("batch_size", as_index=False)[["base_lr", "val_loss"]].mean()
        ax.scatter(kept["base_lr"], kept["val_loss"], s=160, facecolors="none", edgecolors="black", label="kept")
        ax.legend(title="batch size", ncols=2, fontsize="x-small")
    n_diverged = int(search["diverged"].sum())
    if n_diverged:
        ax.text(0.02, 0.02, f"{n_diverged} run(s) diverged (not shown)", transform=ax.transAxes, fontsize="small")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (base rate of the run, log axis)")
    ax.set_ylabel("final validation loss")
    ax.set_title(title)
    _save(fig, path)


def critical_vs_scale(cells: pd.DataFrame, path: str | Path, title: str) -> None:
    """B_crit of each scaling cell against training-set size (one line per width) and against parameters."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    measured = cells["flag"].fillna("") == "" if "flag" in cells else np.isfinite(cells["b_crit"])
    fitted = cells[measured]
    flagged = cells[~measured & np.isfinite(cells["b_crit"])]
    for ax, x, group, label in (
        (axes[0], "train_samples", "width_factor", "width x{:g}"),
        (axes[1], "n_params", "train_samples", "{:g} training samples"),
    ):
        for key, sub in fitted.sort_values(x).groupby(group):
            # intervals stop at the batch sizes that reached the target; a grey caret marks one that goes on
            low = np.maximum(sub["b_crit_low"], sub.get("reached_min", sub["b_crit_low"]))
            high = np.minimum(sub["b_crit_high"], sub.get("reached_max", sub["b_crit_high"]))
            err = np.vstack([sub["b_crit"] - low, high - sub["b_crit"]]).clip(min=0)
            ax.errorbar(sub[x], sub["b_crit"], yerr=err, marker="o", capsize=3, label=label.format(key))
            beyond_high, beyond_low = sub["b_crit_high"] > high, sub["b_crit_low"] < low
            ax.scatter(sub.loc[beyond_high, x], high[beyond_high], marker="^", color="0.55", s=30, zorder=4)
            ax.scatter(sub.loc[beyond_low, x], low[beyond_low], marker="v", color="0.55", s=30, zorder=4)
        for _, cell in flagged.iterrows():  # at the edge of the cell's data, pointing to where the fit put it
            lo, hi = cell.get("reached_min", np.nan), cell.get("reached_max", np.nan)
            shown, marker = (lo, "v") if cell["b_crit"] < lo else (hi, "^") if cell["b_crit"] > hi else (cell["b_crit"], "x")
            ax.scatter([cell[x]], [shown], marker=marker, color="0.55", s=60, zorder=4)
        if not flagged.empty:
            ax.scatter([], [], marker="v", color="0.55", label="flagged: beyond the data (v below, ^ above) or x poor fit")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylabel("critical batch size B_crit (S(B) fit)")
        ax.legend(fontsize=8)
    axes[0].set_xlabel("training-set size (samples, log axis)")
    axes[1].set_xlabel("model parameters (log axis)")
    if fitted.empty:
        for ax in axes:
            ax.text(0.5, 0.5, "no cell had a measured B_crit", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(title)
    _save(fig, path)


def data_examples(
    x: np.ndarray, names: list[str], channels: list[str], path: str | Path, title: str, features: list[str] = ()
) -> None:
    """What the model sees: example inputs with their labels (images by channel, signals, or table rows)."""
    if x.ndim == 4:  # images: one column per example, one row per channel
        n, c = len(x), x.shape[1]
        fig, axes = plt.subplots(c, n, figsize=(1.5 * n + 0.6, 1.5 * c + 0.5), squeeze=False)
        for ch in range(c):
            low, high = np.percentile(x[:, ch], [1, 99])
            for i in range(n):
                ax = axes[ch, i]
                ax.imshow(x[i, ch], cmap="gray", vmin=low, vmax=high if high > low else low + 1)
                ax.set_xticks([]), ax.set_yticks([])
                if ch == 0:
                    ax.set_title(names[i], fontsize="small")
                if i == 0:
                    ax.set_ylabel(channels[ch], fontsize="small")
    elif x.ndim == 3:  # 1-D signals: one panel per example
        fig, axes = plt.subplots(1, len(x), figsize=(1.8 * len(x) + 0.6, 2.0), squeeze=False, sharey=True)
        for ax, signal, name in zip(axes[0], x, names):
            for ch in range(signal.shape[0]):
                ax.plot(signal[ch], lw=0.8)
            ax.set_title(name, fontsize="small")
            ax.set_xticks([])
    else:  # tables: rows are samples, sorted by label
        fig, ax = plt.subplots(figsize=(7.5, 0.16 * len(x) + 1.2))
        ax.imshow(x, aspect="auto", interpolation="nearest", cmap="Greys")
        ax.set_yticks(range(len(x)), names, fontsize="xx-small")
        if 0 < len(features) <= 40:
            ax.set_xticks(range(len(features)), features, rotation=90, fontsize="xx-small")
        ax.set_xlabel(f"feature (the first {x.shape[1]})")
    fig.suptitle(title, fontsize="small")
    _save(fig, path)


def tuned_rates(rates: pd.DataFrame, centre: pd.DataFrame, path: str | Path, title: str) -> None:
    """The rate chosen at each batch size by steps to the target, against the scaling rule's line the grid was
    centred on; rates at the grid's edge (or with no rate reaching the target) are marked."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(centre["batch_size"], centre["lr"], color="grey", linestyle="--", label="scaling rule (grid centre)")
    doubtful = rates["lr_note"].fillna("") != ""
    ax.plot(rates["batch_size"], rates["lr"], marker="o", color="C0", label="tuned: fewest steps to the target")
    if doubtful.any():
        ax.scatter(rates.loc[doubtful, "batch_size"], rates.loc[doubtful, "lr"], s=160, facecolors="none",
                   edgecolors="C3", label="at the grid's edge or no rate reached it")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("learning rate (peak)")
    ax.legend(fontsize="small")
    ax.set_title(title)
    _save(fig, path)
