"""A synthetic stand-in for BraTS slices: a shared head phantom with one lesion per subject.

Global similarity: every slice shows the same anatomy (skull, brain, ventricles) up to a small
per-subject jitter. Local difference: a bright lesion with an oedema halo in the left or right
hemisphere, whose side (laterality) and signed horizontal position are the labels.
"""

from __future__ import annotations

import numpy as np

from batchlab.config import PhantomMRIData
from batchlab.data import Dataset, with_split


def _ellipse(x, y, cx, cy, ax, ay) -> np.ndarray:
    return ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2


def generate(spec: PhantomMRIData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images [N, 1, S, S] in [0, 1], laterality [N] (1 = right half of the image), position [N] in [-1, 1]."""
    rng = np.random.default_rng(spec.seed)
    n, s, j = spec.n_samples, spec.size, spec.anatomy_jitter
    grid = np.linspace(-1, 1, s)
    y, x = np.meshgrid(grid, grid, indexing="ij")
    x, y = x[None], y[None]

    def per_subject(scale: float = 1.0) -> np.ndarray:
        return (1 + j * scale * rng.normal(size=n))[:, None, None]

    cx, cy = (j * rng.normal(size=(2, n)))[:, :, None, None]
    ax, ay = 0.78 * per_subject(), 0.9 * per_subject()
    head = _ellipse(x, y, cx, cy, ax, ay)
    brain = _ellipse(x, y, cx, cy, ax - 0.08, ay - 0.08)
    img = np.where(head <= 1, 0.85, 0.0) * (head > 0.82)  # skull ring
    img = np.where(brain <= 1, 0.45, img)
    img += np.where(brain <= 1, 0.05 * np.cos(3 * np.pi * x) * np.cos(2 * np.pi * y), 0)  # gyri-like texture
    for side in (-1, 1):
        vent = _ellipse(x, y, cx + side * 0.12 * per_subject(2), cy - 0.05, 0.08 * per_subject(2), 0.22 * per_subject(2))
        img = np.where(vent <= 1, 0.15, img)

    laterality = rng.integers(0, 2, n)
    sign = np.where(laterality == 1, 1.0, -1.0)
    position = sign * rng.uniform(0.1, 0.75, n)  # fraction of the brain's half-width from the midline
    lx = cx[:, 0, 0] + position * (ax[:, 0, 0] - 0.08)
    ly = cy[:, 0, 0] + rng.uniform(-0.5, 0.5, n) * (ay[:, 0, 0] - 0.08)
    radius = 2 * rng.uniform(*spec.lesion_radius, n)  # image spans 2 units
    d2 = ((x - lx[:, None, None]) ** 2 + (y - ly[:, None, None]) ** 2) / radius[:, None, None] ** 2
    oedema = 0.4 * spec.lesion_contrast * np.exp(-d2 / 4.0)
    core = spec.lesion_contrast * np.exp(-d2 / 0.5)
    img = np.where(brain <= 1, img + oedema + core, img)
    img += spec.noise * rng.normal(size=img.shape)
    return np.clip(img, 0, 1)[:, None].astype(np.float32), laterality.astype(np.int64), position.astype(np.float32)


def make(spec: PhantomMRIData) -> Dataset:
    images, laterality, position = generate(spec)
    return with_split(
        images,
        {"laterality": laterality, "position": position},
        {"laterality": "classification", "position": "regression"},
        spec.label,
        spec.split,
        "phantom_mri",
        synthetic=True,
        description=f"Synthetic stand-in for BraTS brain MRI: {spec.n_samples:,} {spec.size}x{spec.size} "
        "single-channel phantom slices (shared head anatomy with per-subject jitter, one lesion with an "
        f"oedema halo in the left or right hemisphere); label: {spec.label}.",
    )
