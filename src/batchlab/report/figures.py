"""Figures of a study. Every curve shows the range over seeds; batch-size axes are log2."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from batchlab.io import atomic_path  # noqa: E402

SEED_RANGE = ("pi", 100)  # shaded band = min..max over seeds
LOSS_LABEL = "reconstruction loss (per-feature mean)"
CLASSIFIER_LOSS_LABEL = "cross-entropy loss"


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


def loss_vs_batch(table: pd.DataFrame, path: str | Path, title: str, loss_label: str = LOSS_LABEL) -> None:
    """Final train, validation and test loss against batch size; for classifiers also their accuracy."""
    ok = table[~table["diverged"]]
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
    for _, row in baselines.iterrows():
        ax.axhline(row[f"{metric}_mean"], ls="--", color=palette.get(row["embedding"], "0.5"), label=f"baseline: {row['embedding']}")
    _log2_batch_axis(ax, table["batch_size"])
    ax.set_ylabel(f"SVM {metric.replace('_', ' ')} ({folds}-fold CV mean)")
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    _save(fig, path)


def loss_curves(curves: pd.DataFrame, x: str, path: str | Path, title: str, loss_label: str = LOSS_LABEL) -> None:
    """Validation loss curves, one per batch size, against samples seen or optimizer steps (log axis)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    data = curves.copy()
    data["batch size"] = data["batch_size"]
    sizes = sorted(data["batch size"].unique())
    palette = dict(zip(sizes, sns.color_palette("viridis", len(sizes))))
    sns.lineplot(data, x=x, y="val_loss", hue="batch size", palette=palette, errorbar=SEED_RANGE, ax=ax)
    ax.set_xscale("log")
    ax.set_xlabel({"samples_seen": "training samples seen (log axis)", "step": "optimizer steps (log axis)"}[x])
    ax.set_ylabel(f"validation {loss_label}")
    ax.set_title(title)
    ax.legend(title="batch size", ncols=2, fontsize="x-small")
    _save(fig, path)


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


def gradient_spread(spread: pd.DataFrame, path: str | Path, title: str) -> None:
    """Measured gradient spread against probe batch size per checkpoint, with the B^-1/2 theory dashed."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    data = spread.assign(checkpoint=spread["fraction"].map(lambda f: f"{f:.0%} of training"))
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
    ax.set_title(title)
    ax.legend(title="checkpoint (dashed: B^-1/2 theory)", fontsize="x-small", title_fontsize="x-small")
    _save(fig, path)


def b_simple_over_training(noise: pd.DataFrame, path: str | Path, title: str, loss_label: str = LOSS_LABEL) -> None:
    """B_simple against the evaluation loss at each checkpoint, one line per training batch size."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    data = noise.dropna(subset=["b_simple"]).assign(**{"batch size": noise["batch_size"]})
    if not data.empty:
        sizes = sorted(data["batch size"].unique())
        palette = dict(zip(sizes, sns.color_palette("viridis", len(sizes))))
        sns.lineplot(data, x="eval_loss", y="b_simple", hue="batch size", palette=palette, marker="o",
                     errorbar=SEED_RANGE, sort=False, estimator=None if data["seed"].nunique() == 1 else "mean", ax=ax)
        ax.legend(title="training batch size", ncols=2, fontsize="x-small")
    ax.invert_xaxis()
    ax.set_yscale("log")
    ax.set_xlabel(f"{loss_label} on the evaluation subset (falls to the right)")
    ax.set_ylabel("B_simple = tr(Σ)/|G|² (samples, log axis)")
    ax.set_title(title)
    _save(fig, path)


def steps_to_target(steps: pd.DataFrame, critical: pd.DataFrame, path: str | Path, title: str) -> None:
    """Steps to the target against batch size, with the S(B) fit, B_crit and B_20 marked."""
    from batchlab.cbs import StepsFit

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    reached = steps[steps["reached"]]
    if not reached.empty:
        sns.scatterplot(reached, x="batch_size", y="steps", color="0.55", s=18, ax=ax, label="runs (reached)")
        means = reached.groupby("batch_size")["steps"].mean()
        ax.plot(means.index, means.values, "o", color="black", label="mean over seeds")
        ideal = means.iloc[0] * means.index[0] / means.index.to_numpy(dtype=float)
        ax.plot(means.index, ideal, ":", color="0.4", label="perfect scaling (slope -1)")
    est = critical.set_index("quantity")["estimate"]
    if np.isfinite(est.get("b_crit", np.nan)):
        fit = StepsFit(est["s_min"], est["b_crit"], est["s_min"] * est["b_crit"], est["b_20"], np.nan, 0)
        grid = np.geomspace(steps["batch_size"].min(), steps["batch_size"].max(), 100)
        ax.plot(grid, fit.steps(grid), color="tab:red", label="fit S_min(1 + B_crit/B)")
        ax.axvline(est["b_crit"], color="tab:red", ls="--", lw=1, label=f"B_crit = {est['b_crit']:.3g}")
        ax.axvline(est["b_20"], color="tab:orange", ls="--", lw=1, label=f"B_20 = B_crit/5 = {est['b_20']:.3g}")
    never = steps[~steps["reached"]]
    if not never.empty:
        ax.text(0.02, 0.02, f"{len(never)} run(s) never reached the target", transform=ax.transAxes, fontsize="small")
    _log2_batch_axis(ax, steps["batch_size"])
    ax.set_yscale("log")
    ax.set_ylabel("optimizer steps to target (log axis)")
    ax.set_title(title)
    ax.legend(fontsize="x-small")
    _save(fig, path)


def tradeoff(steps: pd.DataFrame, critical: pd.DataFrame, path: str | Path, title: str) -> None:
    """Samples against steps to the target, with the curve (S/S_min - 1)(E/E_min - 1) = 1."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    reached = steps[steps["reached"]]
    if not reached.empty:
        means = reached.groupby("batch_size")[["steps", "samples"]].mean().reset_index()
        sns.scatterplot(means, x="steps", y="samples", hue="batch_size", palette="viridis", ax=ax, s=40)
    est = critical.set_index("quantity")["estimate"]
    if np.isfinite(est.get("b_crit", np.nan)):
        s_min, e_min = est["s_min"], est["s_min"] * est["b_crit"]
        s = s_min * np.geomspace(1.01, 1000, 200)
        ax.plot(s, e_min * (1 + 1 / (s / s_min - 1)), color="tab:red", label="(S/S_min − 1)(E/E_min − 1) = 1")
        ax.plot([2 * s_min], [2 * e_min], "x", color="tab:red", ms=10, label="B = B_crit: 2 S_min, 2 E_min")
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
    fitted = cells[np.isfinite(cells["b_crit"])]
    for ax, x, group, label in (
        (axes[0], "train_samples", "width_factor", "width x{:g}"),
        (axes[1], "n_params", "train_samples", "{:g} training samples"),
    ):
        for key, sub in fitted.sort_values(x).groupby(group):
            err = np.vstack([sub["b_crit"] - sub["b_crit_low"], sub["b_crit_high"] - sub["b_crit"]]).clip(min=0)
            ax.errorbar(sub[x], sub["b_crit"], yerr=err, marker="o", capsize=3, label=label.format(key))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylabel("critical batch size B_crit (S(B) fit)")
        ax.legend(fontsize=8)
    axes[0].set_xlabel("training-set size (samples, log axis)")
    axes[1].set_xlabel("model parameters (log axis)")
    if fitted.empty:
        for ax in axes:
            ax.text(0.5, 0.5, "no cell had a fitted B_crit", ha="center", va="center", transform=ax.transAxes)
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
