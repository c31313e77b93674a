"""The noisy quadratic model (NQM): SGD on a quadratic whose expected loss is exact, a known answer for B_crit.

A known answer for the critical batch size (McCandlish et al. 2018; Zhang et al. 2019). The Hessian is
H = diag(h), h_j = j^(-power) (so h_1 = 1), the error is e = w - w*, m_j = E[e_j^2], and SGD takes
w <- w - lr * (mean gradient over B fresh samples). Every function takes `form`, the data's
(batchlab.config.NoisyQuadraticData.form), default "additive":

additive (Zhang et al.'s NQM; the default): a sample is z ~ N(w*, sigma^2 H^-1) and its loss is
0.5 sum_j h_j (w_j - z_j)^2, so its gradient is H e plus noise of covariance Sigma = sigma^2 H,
independent of w. Every coordinate is then a Gaussian AR(1) process and
    m_j' = (1 - lr h_j)^2 m_j + (lr^2 / B) sigma^2 h_j,
with L = 0.5 sum_j h_j m_j + d sigma^2 / 2. A run's error is Gaussian (no heavy tails); its loss, a weighted
sum of d squared Gaussians, fluctuates around the expected loss (see "Single runs and first passage" below).

regression: linear regression on Gaussian inputs x ~ N(0, H), y = w*.x + sigma eps, loss 0.5 (w.x - y)^2.
Isserlis' theorem makes this recursion exact:
    m_j' = (1 - lr h_j)^2 m_j + (lr^2 / B) (h_j^2 m_j + h_j sum_k h_k m_k + sigma^2 h_j),
with L = 0.5 sum_j h_j m_j + sigma^2 / 2. The noise x x^T e is multiplicative: single runs are heavy-tailed,
and at small batch sizes rates whose expected loss diverges still reach a target in a typical run, so steps
to target measured on runs fall far below this curve's (the fitted B_crit about 3x too small). Exact for
the expectation, not a known answer for measured runs.

In both forms off-diagonal moments never enter, since H is diagonal. Steps to a target under the best
rate at each batch size, minimised over a fine grid of rates, are the exact tuned S(B) curve the pipeline's
measured one can be checked on.

The data kind `noisy_quadratic` (batchlab.data.noisy_quadratic) samples either form, with a validation
split whose loss is the population loss; the model kind `quadratic` learns the additive form, `linear` the
regression form.

Pure numpy: runs are vectorised over rates (and batch sizes), the loop is over steps only.

The design case (tests/test_nqm.py), additive: d = 32, power 1.5, sigma 1, scale 1 (initial loss 32,
floor 16, initial excess 16), target 16.16 (1% of the initial excess loss). The exact tuned steps at
B = 2, 4, ..., 256 are 949, 537, 336, 241, 194, 169, 155, 146 (rates 0.41 ... 1.87), and the fit
S(B) = S_min (1 + B_crit / B) gives S_min = 142 and B_crit = 11.2 (RMSE 0.011 in log steps; the same with 961
rates). At the tuned run's state at the target, B_noise = 8.6 and B_simple = 15.3 at B = 16 (both 1 at w = 0,
where the additive B_simple is sigma^2 / scale^2 whatever the spectrum).

Single runs and first passage. The expected loss is exact; a run's loss is a weighted sum of d squared
Gaussians, which fluctuates around it. Steps to target are a first passage: at the exact tuned rate the
expected loss approaches the target slowly, and a run's fluctuations reach it earlier. How much earlier depends
on how many directions carry the loss's noise (w_j = h_j / (2 - lr h_j), (sum w)^2 / sum w^2): in the design case
about 3 at B = 4,
and real runs at the exact tuned rate first reach the target at about 0.77 / 0.85 / 0.93 of the exact crossing at
B = 4 / 16 / 64 (tests/test_nqm.py; a numpy simulation agrees). Rates tuned on single runs exploit this: tuned
on the median run's first passage, the design case's fitted B_crit is 2-5 instead of 11.2. With many directions
(d = 512, power 0.8, sigma 2, target 1% of the initial excess: about 50 directions, exact S_min 111,
B_crit 15.7) runs cross at about 0.87-0.95 of the exact crossing at B = 4 and the single-run-tuned B_crit is
about 11; with the target at 0.5% (S_min 123, B_crit 33.8) about 25. The regression form adds heavy tails.
"""

from __future__ import annotations

import math

import numpy as np

DIVERGED = 1e6
"""A run whose expected loss exceeds DIVERGED times its initial loss (or is not finite) counts as diverged."""

FORMS = ("additive", "regression")
"""The NQM's forms: additive gradient noise of covariance sigma^2 H (Zhang et al.), or linear regression."""


def _form(form: str) -> str:
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    return form


def spectrum(d: int, power: float) -> np.ndarray:
    """The Hessian's eigenvalues h_j = j^(-power), j = 1..d (h_1 = 1, the largest): a power-law spectrum."""
    if d < 1 or power <= 0:
        raise ValueError(f"spectrum needs d >= 1 and power > 0, got d={d}, power={power}")
    return np.arange(1, d + 1, dtype=float) ** -float(power)


def initial_error(h: np.ndarray, scale: float) -> np.ndarray:
    """m0_j = scale^2 / h_j: every eigendirection starts with the same excess loss scale^2 / 2."""
    return float(scale) ** 2 / np.asarray(h, dtype=float)


def loss_floor(h: np.ndarray, sigma2: float, form: str = "additive") -> float:
    """The loss at w = w*: d sigma^2 / 2 (additive, d = len(h)) or sigma^2 / 2 (regression)."""
    return 0.5 * sigma2 * (len(np.asarray(h)) if _form(form) == "additive" else 1)


def expected_loss(h: np.ndarray, m: np.ndarray, sigma2: float, form: str = "additive") -> np.ndarray:
    """L = 0.5 sum_j h_j m_j + the floor (`loss_floor`), over the last axis of m: the population loss at moments m."""
    return 0.5 * (np.asarray(m) @ np.asarray(h, dtype=float)) + loss_floor(h, sigma2, form)


def gradient_noise(h: np.ndarray, m: np.ndarray, sigma2: float, form: str = "additive") -> np.ndarray:
    """Diagonal of one sample's gradient covariance Sigma at error moments m (shaped like m).

    additive: sigma^2 h, whatever m; regression: h^2 m + h (h.m) + sigma^2 h.
    """
    h, m = np.asarray(h, dtype=float), np.asarray(m, dtype=float)
    if _form(form) == "additive":
        return np.broadcast_to(sigma2 * h, m.shape)
    return h**2 * m + h * (m @ h)[..., None] + sigma2 * h


def step_moments(h: np.ndarray, m: np.ndarray, sigma2: float, lr, batch_size, form: str = "additive") -> np.ndarray:
    """One SGD step of the exact recursion, m' = (1 - lr h)^2 m + lr^2 Sigma / B; lr and batch_size broadcast
    against m's leading axes."""
    lr = np.asarray(lr, dtype=float)[..., None]
    b = np.asarray(batch_size, dtype=float)[..., None]
    return (1 - lr * h) ** 2 * m + lr**2 / b * gradient_noise(h, m, sigma2, form)


def _runs(h, m0, lr, batch_size) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]]:
    """The rates and batch sizes broadcast together, flattened, with each run's m0 and the broadcast shape."""
    lr, b = np.broadcast_arrays(np.asarray(lr, dtype=float), np.asarray(batch_size, dtype=float))
    if (lr <= 0).any() or (b <= 0).any():
        raise ValueError("learning rates and batch sizes must be positive")
    m = np.broadcast_to(np.asarray(m0, dtype=float), (lr.size, len(h))).copy()
    return lr.ravel(), b.ravel(), m, lr.shape


def error_moments(h, m0, sigma2: float, lr, batch_size, steps: int, form: str = "additive") -> np.ndarray:
    """m after `steps` exact SGD steps, shape [*broadcast(lr, batch_size), d]."""
    h = np.asarray(h, dtype=float)
    _form(form)
    lr, b, m, shape = _runs(h, m0, lr, batch_size)
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(int(steps)):
            m = step_moments(h, m, sigma2, lr, b, form)
    return m.reshape(*shape, len(h))


def expected_losses(h, m0, sigma2: float, lr, batch_size, steps: int, form: str = "additive") -> np.ndarray:
    """Expected loss after each step 0..steps, shape [*broadcast(lr, batch_size), steps + 1]."""
    h = np.asarray(h, dtype=float)
    _form(form)
    lr, b, m, shape = _runs(h, m0, lr, batch_size)
    out = np.empty((len(lr), int(steps) + 1))
    out[:, 0] = expected_loss(h, m, sigma2, form)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, int(steps) + 1):
            m = step_moments(h, m, sigma2, lr, b, form)
            out[:, t] = expected_loss(h, m, sigma2, form)
    return out.reshape(*shape, int(steps) + 1)


def exact_steps_to_target(
    h, m0, sigma2: float, lr, batch_size, target_loss: float, cap: int, form: str = "additive"
) -> np.ndarray | float:
    """First step whose expected loss is <= target_loss; math.inf if not within `cap` steps or diverged.

    lr and batch_size broadcast (a grid of rates against batch sizes is one call); a scalar pair gives a
    float. Runs that reached the target or diverged are dropped from the loop, which stops when none is left.
    target_loss is a loss, floor included (`expected_loss`, `loss_floor`).
    """
    h = np.asarray(h, dtype=float)
    _form(form)
    lr, b, m, shape = _runs(h, m0, lr, batch_size)
    out = np.full(len(lr), math.inf)
    loss = expected_loss(h, m, sigma2, form)
    out[loss <= target_loss] = 0
    limit = DIVERGED * loss
    live = np.flatnonzero(loss > target_loss)
    m, lr, b, limit = m[live], lr[live], b[live], limit[live]
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, int(cap) + 1):
            if not len(live):
                break
            m = step_moments(h, m, sigma2, lr, b, form)
            loss = expected_loss(h, m, sigma2, form)
            reached = loss <= target_loss
            out[live[reached]] = t
            keep = ~reached & np.isfinite(loss) & (loss <= limit)
            if not keep.all():
                live, m, lr, b, limit = live[keep], m[keep], lr[keep], b[keep], limit[keep]
    out = out.reshape(shape)
    return float(out) if out.ndim == 0 else out


def default_lrs(h, n: int = 241) -> np.ndarray:
    """The tuning grid: n log-spaced rates from 1e-3 to 4 / max(h) (beyond 2 / max(h) plain GD diverges)."""
    return np.geomspace(1e-3, 4 / float(np.max(h)), n)


def tuned_steps_to_target(h, m0, sigma2: float, batch_size, target_loss: float, cap: int, lrs=None,
                          form: str = "additive"):
    """(steps, best_lr): fewest exact steps to target over a grid of rates, at each batch size (the tuned S(B)).

    batch_size may be a scalar or an array; ties go to the smallest rate; best_lr is NaN where no rate of the
    grid reaches the target within cap (steps inf). The optimum is the grid's: refine the grid to refine it.
    """
    lrs = default_lrs(h) if lrs is None else np.asarray(lrs, dtype=float).ravel()
    sizes = np.asarray(batch_size, dtype=float)
    steps = exact_steps_to_target(h, m0, sigma2, lrs[None, :], sizes.ravel()[:, None], target_loss, cap, form)
    best = np.argmin(steps, axis=1)
    fewest = steps[np.arange(len(best)), best]
    best_lr = np.where(np.isfinite(fewest), lrs[best], math.nan)
    if sizes.ndim == 0:
        return float(fewest[0]), float(best_lr[0])
    return fewest.reshape(sizes.shape), best_lr.reshape(sizes.shape)


def noise_scales(h, m, sigma2: float, form: str = "additive") -> tuple[float, float]:
    """(B_simple, B_noise) at error moments m: tr(Sigma) / |G|^2 and tr(H Sigma) / G^T H G (McCandlish et al.).

    |G|^2 = sum_j h_j^2 m_j and G^T H G = sum_j h_j^3 m_j are the expected squared mean gradient (and its
    H-weighted form); Sigma is one sample's gradient covariance (`gradient_noise`). Additive: B_simple =
    sigma^2 tr(H) / sum h^2 m, B_noise = sigma^2 tr(H^2) / sum h^3 m.
    """
    h, m = np.asarray(h, dtype=float), np.asarray(m, dtype=float)
    sigma = gradient_noise(h, m, sigma2, form)
    b_simple = sigma.sum(-1) / (h**2 * m).sum(-1)
    b_noise = (h * sigma).sum(-1) / (h**3 * m).sum(-1)
    if np.ndim(b_simple) == 0:
        return float(b_simple), float(b_noise)
    return b_simple, b_noise
