"""Reference answers the statistics tests compare with, computed without the code under test."""

import math

import numpy as np
from scipy.optimize import brentq


def reference_steps_fit(batch_sizes, steps) -> tuple[float, float]:
    """S_min and B_crit of S(B) = S_min (1 + B_crit / B) by least squares in log space, as a 1-D search over B_crit.

    For a given B_crit the best log S_min is the mean of log S - log(1 + B_crit / B) (closed form), so the fit is a
    root of the derivative of the residual sum of squares in u = log B_crit, bracketed on a grid and found by brentq.
    """
    b, log_s = np.asarray(batch_sizes, dtype=float), np.log(np.asarray(steps, dtype=float))

    def centred(u: float) -> np.ndarray:
        r = log_s - np.log1p(math.exp(u) / b)
        return r - r.mean()

    def slope(u: float) -> float:  # d rss / du, up to a factor -2
        share = (math.exp(u) / b) / (1 + math.exp(u) / b)
        return float(centred(u) @ (share - share.mean()))

    grid = np.linspace(math.log(b.min()) - 15, math.log(b.max()) + 15, 3001)
    rss = np.array([centred(u) @ centred(u) for u in grid])
    k = int(np.argmin(rss))
    if k in (0, len(grid) - 1):
        raise ValueError("no interior minimum of the residual sum of squares")
    u = brentq(slope, grid[k - 1], grid[k + 1], xtol=1e-14, rtol=1e-15)
    b_crit = math.exp(u)
    s_min = math.exp(float(np.mean(log_s - np.log1p(b_crit / b))))
    return s_min, b_crit
