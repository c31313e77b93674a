"""Figures of a study. Every curve shows the range over seeds; batch-size axes are log2."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from batchlab.io import atomic_path  # noqa: E402

SEED_RANGE = ("pi", 100)  # shaded band = min..max over seeds
LOSS_LABEL = "reconstruction loss (per-feature mean)"


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


def loss_vs_batch(table: pd.DataFrame, path: str | Path, title: str) -> None:
    """Final train, validation and test loss against batch size."""
    ok = table[~table["diverged"]]
    long = ok.melt(
        id_vars=["batch_size", "seed"], value_vars=["train_loss", "val_loss", "test_loss"], var_name="split", value_name="loss"
    )
    long["split"] = long["split"].str.removesuffix("_loss")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    sns.lineplot(long, x="batch_size", y="loss", hue="split", marker="o", errorbar=SEED_RANGE, ax=ax)
    _log2_batch_axis(ax, table["batch_size"])
    ax.set_ylabel(LOSS_LABEL)
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


def loss_curves(curves: pd.DataFrame, x: str, path: str | Path, title: str) -> None:
    """Validation loss curves, one per batch size, against samples seen or optimizer steps (log axis)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    data = curves.copy()
    data["batch size"] = data["batch_size"]
    sizes = sorted(data["batch size"].unique())
    palette = dict(zip(sizes, sns.color_palette("viridis", len(sizes))))
    sns.lineplot(data, x=x, y="val_loss", hue="batch size", palette=palette, errorbar=SEED_RANGE, ax=ax)
    ax.set_xscale("log")
    ax.set_xlabel({"samples_seen": "training samples seen (log axis)", "step": "optimizer steps (log axis)"}[x])
    ax.set_ylabel(f"validation {LOSS_LABEL}")
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
