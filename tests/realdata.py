"""Small synthetic stand-ins for the real data sources, written the way users hold them.

BraTS: NIfTI volumes in one folder per case, with a known tumour side, in RAS or LAS voxel order.
EHR: a long code table, a PheCode map and a demographics table, with known expected matrix.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd

SHAPE = (24, 28, 12)  # voxels along the patient's left->right, posterior->anterior, inferior->superior
VOXEL_MM = (2.0, 2.0, 3.0)
MODALITIES = ("flair", "t1", "t1ce", "t2")
TUMOUR_SLICE = 7  # axial index (RAS order) where the tumour is widest
TUMOUR_OFFSET = 5  # voxels from the brain's centre along left-right (10 mm)


def ras_affine() -> np.ndarray:
    affine = np.diag([*VOXEL_MM, 1.0])
    affine[:3, 3] = [-20.0, -30.0, -15.0]
    return affine


def brain_and_tumour(side: str, offset: int = TUMOUR_OFFSET, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A brain mask (an ellipsoid) and a tumour label map in RAS voxel order; side is the patient's."""
    x, y, z = np.meshgrid(*(np.arange(s) for s in SHAPE), indexing="ij")
    cx, cy, cz = (np.asarray(SHAPE) - 1) / 2
    brain = ((x - cx) / 10.5) ** 2 + ((y - cy) / 12.5) ** 2 + ((z - cz) / 5.5) ** 2 <= 1
    tx = cx + (offset if side == "right" else -offset)
    d2 = (x - tx) ** 2 + (y - cy - 2) ** 2 + 4 * (z - TUMOUR_SLICE) ** 2
    seg = np.zeros(SHAPE, dtype=np.uint8)
    seg[d2 <= 9] = 2  # oedema
    seg[d2 <= 3] = 1  # core, widest in the tumour slice
    seg[~brain] = 0
    return brain, seg


def modality_volume(brain: np.ndarray, seg: np.ndarray, modality: str, seed: int) -> np.ndarray:
    """Intensities: 0 outside the brain, a modality-specific scale inside, brighter tumour, some texture."""
    rng = np.random.default_rng([seed, MODALITIES.index(modality)])
    scale = {"flair": 300.0, "t1": 500.0, "t1ce": 700.0, "t2": 900.0}[modality]
    vol = scale * (1.0 + 0.1 * rng.random(SHAPE)) + 0.8 * scale * (seg > 0)
    return np.where(brain, vol, 0.0).astype(np.float32)


def to_las(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same image stored with the left-right voxel axis reversed (LAS): the same patient, other voxel order."""
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1.0, data.shape[0] - 1
    return data[::-1].copy(), affine @ flip


def case_volumes(side: str, seed: int = 0, offset: int = TUMOUR_OFFSET) -> dict[str, np.ndarray]:
    """The four modalities and the segmentation of one case, in RAS voxel order."""
    brain, seg = brain_and_tumour(side, offset)
    return {m: modality_volume(brain, seg, m, seed) for m in MODALITIES} | {"seg": seg}


def write_case(folder: Path, name: str, side: str = "left", orientation: str = "RAS", seed: int = 0,
               offset: int = TUMOUR_OFFSET, gz: bool = True, volumes: dict[str, np.ndarray] | None = None) -> Path:
    """One BraTS-style case folder with the four modalities and the segmentation (volumes given in RAS order)."""
    case = folder / name
    case.mkdir(parents=True, exist_ok=True)
    ext = ".nii.gz" if gz else ".nii"
    volumes = volumes if volumes is not None else case_volumes(side, seed, offset)
    for kind, data in volumes.items():
        affine = ras_affine()
        if orientation == "LAS":
            data, affine = to_las(data, affine)
        nib.save(nib.Nifti1Image(data, affine), case / f"{name}_{kind}{ext}")
    return case


def write_brats(folder: Path, n_cases: int = 8, seed: int = 0) -> dict[str, str]:
    """A BraTS folder with alternating tumour sides, half the cases stored LAS; returns each case's side."""
    sides = {}
    for i in range(n_cases):
        name = f"BraTS_{i:05d}"
        sides[name] = "right" if i % 2 else "left"
        write_case(folder, name, sides[name], "LAS" if (i // 2) % 2 else "RAS", seed=seed + i)
    (folder / "name_mapping.csv").write_text("a,b\n1,2\n")  # files beside the case folders are ignored
    return sides


def write_ehr(folder: Path, n_persons: int = 40, seed: int = 0, fmt: str = "csv") -> dict[str, Path]:
    """A code table (ICD-9-CM and ICD-10-CM), an ICD -> PheCode map and demographics, in CSV or Parquet.

    Women (odd person numbers) carry 008 through ICD-9-CM 001.1; everyone carries 250.2 through a
    diabetes code in either vocabulary; person 0 has an unmapped code; person 'ghost' has no demographics.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_persons):
        pid = f"P{p:03d}"
        if p % 2:
            rows.append((pid, "001.1", "ICD-9-CM", "2001-01-01"))
        rows.append((pid, "250.00" if p % 3 else "E11.9", "ICD-9-CM" if p % 3 else "ICD-10-CM", "2002-02-02"))
        if rng.random() < 0.2:
            rows.append((pid, "V70.0", "ICD9CM", "2003-03-03"))  # not in the map: unmapped
    rows.append(("P000", "999.99", "ICD-9-CM", "2004-04-04"))
    rows.append(("ghost", "001.1", "ICD-9-CM", "2005-05-05"))
    codes = pd.DataFrame(rows, columns=["pid", "icd", "vocab", "event_date"])
    mapping = pd.DataFrame(
        [("001.1", "008", "9"), ("250.00", "250.2", "9"), ("250.00", "250", "9"), ("E11.9", "250.2", "10"),
         ("E11.9", "250", "10"), ("E11.9", "999", "9"), ("401.1", "401.1", "9")],  # E11.9 as ICD-9 is another code
        columns=["ICD", "phecode", "flag"],
    )
    demo = pd.DataFrame({"pid": [f"P{p:03d}" for p in range(n_persons)],
                         "gender": ["F" if p % 2 else "M" for p in range(n_persons)],
                         "age": 20.0 + np.arange(n_persons)})
    out = {}
    for name, table in (("codes", codes), ("map", mapping), ("demographics", demo)):
        path = folder / f"{name}.{fmt}"
        table.to_parquet(path, index=False) if fmt == "parquet" else table.to_csv(path, index=False)
        out[name] = path
    return out


def ehr_spec(paths: dict[str, Path], **overrides) -> dict:
    """The `data` block for the tables write_ehr made."""
    spec = {
        "name": "ehr_codes",
        "codes": {"path": str(paths["codes"]), "person": "pid", "code": "icd", "vocabulary": "vocab", "date": "event_date"},
        "phecode_maps": [{"path": str(paths["map"]), "code": "ICD", "phecode": "phecode", "vocabulary_column": "flag"}],
        "demographics": {"path": str(paths["demographics"]), "person": "pid", "sex": "gender", "labels": {"age": "regression"}},
    }
    return spec | overrides
