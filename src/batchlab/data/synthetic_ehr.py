"""A synthetic stand-in for the BLSA EHR cohort: binary PheCode-like vectors with a sex label.

It has the structure the autoencoder paper's hypothesis is about:
- global similarity: common codes most participants carry, and shared latent comorbidity factors
  (an age axis and disease clusters) that make codes co-occur;
- local, individual differences: sex-specific codes, and participant-specific codes whose weight
  the `individuality` knob sets.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit

from batchlab.config import SyntheticEHRData
from batchlab.data import Dataset, with_split


def _column_roles(spec: SyntheticEHRData, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shuffled column indices of the common, sex-specific and factor-driven codes."""
    cols = rng.permutation(spec.n_features)
    n_common = int(round(spec.common_fraction * spec.n_features))
    n_sex = int(round(spec.sex_fraction * spec.n_features))
    return cols[:n_common], cols[n_common : n_common + n_sex], cols[n_common + n_sex :]


def generate(spec: SyntheticEHRData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes [N, F] in {0, 1}, sex [N] (1 = female) and age [N] in years."""
    rng = np.random.default_rng(spec.seed)
    n, f, k = spec.n_samples, spec.n_features, spec.n_factors
    common, sexed, factored = _column_roles(spec, rng)
    shared = 1.0 - 0.5 * spec.individuality

    sex = (rng.random(n) < 0.55).astype(np.int64)
    age = rng.uniform(17, 104, n)
    age_z = (age - 60.0) / 20.0
    # latent comorbidity factors: the first is age itself, the rest partly driven by age and weakly by sex
    factors = rng.normal(size=(n, k))
    factors[:, 0] = age_z
    factors[:, 1:] += 0.5 * age_z[:, None] * rng.uniform(0, 1, k - 1) + 0.3 * (sex[:, None] - 0.5) * rng.normal(
        size=k - 1
    )
    utilisation = rng.normal(0.0, 0.3 + 0.7 * spec.individuality, n)  # how much care each participant gets

    logits = np.empty((n, f))
    base = logit(np.exp(rng.uniform(np.log(0.001), np.log(0.03), len(factored))))
    loadings = np.zeros((k, len(factored)))
    owner = rng.integers(0, k, len(factored))
    loadings[owner, np.arange(len(factored))] = rng.normal(1.6, 0.3, len(factored))
    second = rng.random(len(factored)) < 0.3
    loadings[rng.integers(0, k, second.sum()), np.flatnonzero(second)] += rng.normal(0.8, 0.2, second.sum())
    logits[:, factored] = base + shared * factors @ loadings

    logits[:, common] = logit(rng.uniform(0.6, 0.95, len(common))) + 0.4 * age_z[:, None]

    favoured = rng.integers(0, 2, len(sexed))  # which sex each sex-specific code belongs to
    p_high = rng.uniform(0.01, 0.08, len(sexed))
    p = np.where(sex[:, None] == favoured, p_high, 0.3 * p_high)
    logits[:, sexed] = logit(p)

    logits += utilisation[:, None]
    codes = (rng.random((n, f)) < expit(logits)).astype(np.float32)

    # participant-specific codes: a personal handful of otherwise rare codes
    personal = rng.poisson(2 + 40 * spec.individuality, n)
    rows = np.repeat(np.arange(n), personal)
    codes[rows, factored[rng.integers(0, len(factored), len(rows))]] = 1.0
    return codes, sex, age


def make(spec: SyntheticEHRData) -> Dataset:
    codes, sex, age = generate(spec)
    return with_split(
        codes,
        {"sex": sex, "age": age.astype(np.float32)},
        {"sex": "classification", "age": "regression"},
        spec.label,
        spec.split,
        "synthetic_ehr",
        synthetic=True,
        description=f"Synthetic stand-in for the BLSA EHR cohort: {spec.n_samples:,} participants x "
        f"{spec.n_features:,} binary PheCode-like codes from a seeded generator (shared common codes, "
        f"{spec.n_factors} latent comorbidity factors, sex-specific codes, participant-specific codes at "
        f"individuality {spec.individuality:g}); label: sex.",
    )
