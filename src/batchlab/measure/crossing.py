"""Where a logged loss curve first reaches a target: the steps-to-target of one run.

It lives below training and analysis alike: the rate tuning of a train-to-target cell ranks its trials by it
while they train, and the critical-batch analysis reads every run's crossing with the same arithmetic.
"""

from __future__ import annotations

import math

import numpy as np


def steps_to_target(steps, metric, target: float, interpolate: bool = True) -> float:
    """First step at which the logged metric reaches the target (<=); NaN if it never does.

    With interpolate (the default), the crossing is placed between the two bracketing logged points
    linearly in log(step), since curves are logged at log-spaced steps: with metric m0 > target at
    step s0 and m1 <= target at s1, t = (m0 - target) / (m0 - m1) and the result is
    exp(log s0 + t (log s1 - log s0)). If s0 is 0 (log undefined) the interpolation is linear in step;
    if the metric at s0 is not finite the result is s1. Reached at the first logged point: that step.
    """
    steps, metric = np.asarray(steps, dtype=float), np.asarray(metric, dtype=float)
    if steps.shape != metric.shape:
        raise ValueError(f"steps and metric differ in shape: {steps.shape} vs {metric.shape}")
    order = np.argsort(steps, kind="stable")
    steps, metric = steps[order], metric[order]
    hit = np.flatnonzero(metric <= target)
    if len(hit) == 0:
        return math.nan
    i = hit[0]
    if i == 0 or not interpolate or not np.isfinite(metric[i - 1]):
        return float(steps[i])
    (s0, s1), (m0, m1) = steps[i - 1 : i + 1], metric[i - 1 : i + 1]
    t = (m0 - target) / (m0 - m1)
    if s0 <= 0:
        return float(s0 + t * (s1 - s0))
    return float(np.exp(np.log(s0) + t * (np.log(s1) - np.log(s0))))
