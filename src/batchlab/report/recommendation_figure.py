"""The recommendation's figure: time and samples to the target against batch size, what the study page's answer
to "which batch size should I use?" rests on."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from batchlab.report.figures import _log2_batch_axis, _save


def recommendation(rec: dict, path: str | Path, title: str) -> None:
    """Time to the target (left axis, with its range) and samples to it (right axis) against batch size, the fastest
    and the sample-efficient batch size marked, the band shaded and the memory ceiling drawn where it binds."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    table = pd.DataFrame(rec["table"]).astype({"time_s": float, "samples": float, "time_s_low": float, "time_s_high": float})
    timed = table[np.isfinite(table["time_s"])]
    if not rec.get("available") or timed.empty:
        ax.text(0.5, 0.5, rec.get("reason", "no batch size reached the target"), ha="center", va="center",
                transform=ax.transAxes)
    else:
        # without a dedicated measurement the range comes from each seed's own throughput, which can leave the
        # mean's time (at the median throughput) outside it: the bar then ends at the point
        err = [(timed["time_s"] - timed["time_s_low"]).clip(lower=0), (timed["time_s_high"] - timed["time_s"]).clip(lower=0)]
        ax.errorbar(timed["batch_size"], timed["time_s"], yerr=err, marker="o", color="tab:blue", capsize=3,
                    label="time to target T(B) (range)")
        band = rec["band"]
        ax.axvspan(min(band) / 2**0.25, max(band) * 2**0.25, color="tab:blue", alpha=0.08, label="band of the fastest")
        best = timed[timed["batch_size"] == rec["time_optimal_batch_size"]]
        ax.plot(best["batch_size"], best["time_s"], "*", color="tab:red", ms=14, label="fastest")
        ceiling = (rec.get("memory") or {}).get("largest_fitting")
        if ceiling is not None and ceiling < table["batch_size"].max() * 2:
            ax.axvline(ceiling, color="0.3", ls="--", label=f"memory ceiling ({rec['memory']['kind']})")
        right = ax.twinx()
        right.plot(timed["batch_size"], timed["samples"], "s:", color="tab:green", label="samples to target E(B)")
        frugal = timed[timed["batch_size"] == rec["sample_efficient_batch_size"]]
        right.plot(frugal["batch_size"], frugal["samples"], "D", color="tab:green", ms=10, mfc="none",
                   label="fewest samples (within 10%)")
        right.set_yscale("log")
        right.set_ylabel("samples to target E = B·S (log axis)")
        lines, labels = ax.get_legend_handles_labels()
        more, more_labels = right.get_legend_handles_labels()
        ax.legend(lines + more, labels + more_labels, fontsize="x-small")
        ax.set_yscale("log")
    _log2_batch_axis(ax, table["batch_size"])
    ax.set_ylabel("time to target T = S·B / X (s, log axis)")
    ax.set_title(title)
    _save(fig, path)
