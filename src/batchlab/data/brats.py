"""BraTS cases as NIfTI volumes: axial slices of the chosen modalities, labelled by tumour laterality.

A folder holds one subfolder per case with *_flair, *_t1, *_t1ce, *_t2 and *_seg volumes. Every volume
is turned to the RAS+ voxel order its affine implies (nibabel.aff2axcodes), so left and right are the
patient's whatever the voxel order on disk. Each case gives the axial slice with the largest tumour
area (or n slices centred on it), each modality z-scored over its own nonzero (brain) voxels. The label
is the side of the brain's midline (the centre of mass of the brain's voxels) that holds the tumour's
centroid; a case whose tumour lies within the configured margin of the midline is left out and counted.
Cases are read one at a time and each volume is dropped once its slices are taken, so memory is bounded
by one case whatever the folder's size.
"""

from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform
from nibabel.spatialimages import HeaderDataError

from batchlab.config import BratsData
from batchlab.data import Dataset, with_split
from batchlab.provenance import inputs_manifest

SEGMENTATION = "seg"
SIDES = ("left", "right")  # label 0 and 1
NIFTI_SUFFIXES = (".nii", ".nii.gz")
_FILE = re.compile(r"^(?P<stem>.*)_(?P<kind>flair|t1ce|t1|t2|seg)(?P<ext>\..+)?$", re.IGNORECASE)


@dataclass(frozen=True)
class Case:
    """One case folder: a volume per modality and the tumour segmentation."""

    name: str
    images: dict[str, Path]
    seg: Path

    def files(self) -> list[Path]:
        return [*self.images.values(), self.seg]


def list_cases(folder: Path, modalities: list[str]) -> list[Case]:
    """Every case subfolder of `folder` with its files; a ValueError lists each case that lacks one.

    Only names are read here (no volume), so config validation can run it before any job.
    """
    folders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(f"{folder}: no case folders (one subfolder per case is expected) (data.path)")
    cases, problems = [], []
    for case_dir in folders:
        found: dict[str, list[Path]] = {}
        for f in sorted(case_dir.iterdir()):
            match = _FILE.match(f.name)
            if not f.is_file() or match is None:
                continue
            kind, ext = match["kind"].lower(), (match["ext"] or "").lower()
            if ext not in NIFTI_SUFFIXES:
                problems.append(f"{f}: not a NIfTI file (.nii or .nii.gz) (data.path)")
                continue
            found.setdefault(kind, []).append(f)
        for kind in [*modalities, SEGMENTATION]:
            field = "data.path" if kind == SEGMENTATION else "data.modalities"
            files = found.get(kind, [])
            if not files:
                problems.append(f"{case_dir}: case {case_dir.name!r} has no *_{kind}.nii or .nii.gz file ({field})")
            elif len(files) > 1:
                problems.append(f"{case_dir}: case {case_dir.name!r} has several *_{kind} files {[f.name for f in files]} ({field})")
        if all(len(found.get(kind, [])) == 1 for kind in [*modalities, SEGMENTATION]):
            cases.append(Case(case_dir.name, {m: found[m][0] for m in modalities}, found[SEGMENTATION][0]))
    if len(problems) == 1:
        raise ValueError(problems[0])
    if problems:
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise ValueError(f"{len(problems)} problems with the case files: {shown}")
    return cases


_LISTINGS: dict[tuple, list[Case]] = {}


def cached_cases(folder: Path, modalities: list[str]) -> list[Case]:
    """list_cases, remembered while no case folder is added, removed or has a file added or removed.

    Validation asks for the cases several times per study; a listing of a thousand case folders is
    worth keeping, and the folders' modification times tell when it is stale.
    """
    with os.scandir(folder) as entries:
        stamps = tuple(sorted((e.name, e.stat().st_mtime_ns) for e in entries if e.is_dir()))
    key = (str(folder.resolve()), tuple(modalities), stamps)
    if key not in _LISTINGS:
        _LISTINGS[key] = list_cases(folder, modalities)
    return _LISTINGS[key]


@dataclass(frozen=True)
class Volume:
    """A volume in RAS+ voxel order: axis 0 runs to the patient's right, 1 anterior, 2 superior."""

    data: np.ndarray
    affine: np.ndarray
    original_axcodes: tuple[str, ...]


def load_ras(path: Path, case: str) -> Volume:
    """Read one NIfTI volume and reorder its voxels to RAS+ as its affine's orientation says."""
    where = f"{path}: case {case!r}"
    try:
        img = nib.load(path)
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            raise ValueError(f"a {type(img).__name__}, not a NIfTI image")
        codes = nib.aff2axcodes(img.affine)
        if None in codes or len(codes) != 3:
            raise ValueError(f"its affine has no clear orientation (axis codes {codes})")
        if len(img.shape) < 3 or any(s != 1 for s in img.shape[3:]):
            raise ValueError(f"shape {img.shape} is not a 3-D volume")
        data = np.asarray(img.dataobj, dtype=np.float32).reshape(img.shape[:3])
    except ValueError as err:
        raise ValueError(f"{where}: unreadable volume: {err} (data.path)") from None
    except (ImageFileError, HeaderDataError, OSError, EOFError, zlib.error) as err:
        raise ValueError(f"{where}: not a readable NIfTI file ({type(err).__name__}: {err}) (data.path)") from None
    to_ras = ornt_transform(axcodes2ornt(codes), axcodes2ornt(("R", "A", "S")))
    return Volume(apply_orientation(data, to_ras), img.affine @ inv_ornt_aff(to_ras, data.shape), tuple(codes))


def slice_indices(centre: int, count: int, step: int, depth: int) -> np.ndarray:
    """`count` axial indices `step` apart around `centre`, shifted to lie inside a volume `depth` slices deep."""
    span = (count - 1) * step
    if span >= depth:
        raise ValueError(f"{count} slices {step} apart span {span + 1} slices, more than the volume's {depth}")
    start = min(max(centre - span // 2, 0), depth - 1 - span)
    return start + step * np.arange(count)


def normalise(volume: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Z-score over the brain's voxels; 0 outside the brain."""
    values = volume[brain].astype(np.float64)
    sd = values.std()
    if values.size == 0 or not np.isfinite(sd) or sd == 0:
        raise ValueError("constant or empty over the brain's (nonzero) voxels")
    out = np.zeros_like(volume, dtype=np.float32)
    out[brain] = ((values - values.mean()) / sd).astype(np.float32)
    return out


def midline_offset_mm(brain: np.ndarray, tumour: np.ndarray, affine: np.ndarray) -> float:
    """Signed distance of the tumour's centroid from the brain's centre of mass along the patient's left-right axis.

    Positive is the patient's right: in RAS+ world coordinates x grows to the right.
    """
    brain_centre = np.argwhere(brain).mean(axis=0)
    tumour_centre = np.argwhere(tumour).mean(axis=0)
    return float((affine[:3, :3] @ (tumour_centre - brain_centre))[0])


def to_images(slices: np.ndarray, size: int) -> np.ndarray:
    """RAS axial slices [n, C, X, Y] as images [n, C, size, size]: anterior at the top, the patient's right on the right.

    The shorter side is zero-padded to a square first, so the anatomy keeps its aspect ratio.
    """
    import torch
    from torch.nn import functional as F

    images = np.flip(np.swapaxes(slices, 2, 3), axis=2)  # rows: anterior to posterior; columns: left to right
    h, w = images.shape[2:]
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    square = np.zeros((*images.shape[:2], side, side), dtype=np.float32)
    square[:, :, top : top + h, left : left + w] = images
    tensor = torch.from_numpy(square)
    if side != size:
        tensor = F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return tensor.numpy()


@dataclass(frozen=True)
class CaseResult:
    """What one case gives: its images and label, or why it was left out."""

    name: str
    offset_mm: float
    slices: np.ndarray  # axial indices in RAS order
    images: np.ndarray | None  # [slices, channels, size, size]; None when left out
    reason: str | None = None

    @property
    def label(self) -> int:
        return int(self.offset_mm > 0)


def read_case(case: Case, spec: BratsData) -> CaseResult:
    """One case's slices and laterality, reading one volume at a time."""
    seg = load_ras(case.seg, case.name)
    tumour = seg.data > 0
    del seg
    if not tumour.any():
        raise ValueError(f"{case.seg}: case {case.name!r}: empty segmentation, no tumour voxel (data.path)")
    centre = int(np.argmax(tumour.sum(axis=(0, 1))))
    try:
        chosen = slice_indices(centre, spec.slices, spec.slice_step, tumour.shape[2])
    except ValueError as err:
        raise ValueError(f"{case.seg}: case {case.name!r}: {err} (data.slices, data.slice_step)") from None
    brain = np.zeros(tumour.shape, dtype=bool)
    channels = []
    affine = None
    for modality, path in case.images.items():
        volume = load_ras(path, case.name)
        if volume.data.shape != tumour.shape:
            raise ValueError(
                f"{path}: case {case.name!r}: the {modality} volume has shape {volume.data.shape} (in RAS order) but the "
                f"segmentation {tumour.shape}: a case's volumes must share one voxel grid (data.modalities)"
            )
        if affine is not None and not np.allclose(volume.affine, affine, atol=1e-2):
            raise ValueError(
                f"{path}: case {case.name!r}: the {modality} volume's affine differs from the case's other volumes "
                "(data.modalities)"
            )
        affine = volume.affine
        nonzero = volume.data != 0
        brain |= nonzero
        try:
            channels.append(normalise(volume.data, nonzero)[:, :, chosen])
        except ValueError as err:
            raise ValueError(f"{path}: case {case.name!r}: the {modality} volume is {err} (data.modalities)") from None
        del volume
    offset = midline_offset_mm(brain, tumour, affine)
    if abs(offset) < spec.midline_margin_mm:
        reason = f"tumour within {spec.midline_margin_mm:g} mm of the midline"
        return CaseResult(case.name, offset, chosen, None, reason)
    stacked = np.moveaxis(np.stack(channels), -1, 0)  # [slices, channels, X, Y]
    return CaseResult(case.name, offset, chosen, to_images(stacked, spec.size))


def make(spec: BratsData) -> Dataset:
    """The slices of every usable case, grouped by case, with the report's counts and the case manifest."""
    cases = list_cases(spec.path, spec.modalities)
    kept: list[CaseResult] = []
    left_out: list[CaseResult] = []
    for case in cases:
        result = read_case(case, spec)
        (left_out if result.images is None else kept).append(result)
    manifest = [
        {"case": case.name, "role": role, "path": str(path.relative_to(spec.path))}
        for case in cases
        for role, path in [*case.images.items(), (SEGMENTATION, case.seg)]
    ]
    inputs_csv, inputs_sha256 = inputs_manifest(manifest, spec.path)
    if not kept:
        raise ValueError(f"{spec.path}: all {len(cases)} cases were left out (tumour within the midline margin) (data.midline_margin_mm)")
    labels = np.repeat([r.label for r in kept], spec.slices).astype(np.int64)
    counts = np.bincount(labels, minlength=2) // spec.slices
    if counts.min() < 2:
        rare = SIDES[int(counts.argmin())]
        raise ValueError(
            f"{spec.path}: {int(counts.min())} kept case(s) have their tumour on the {rare} side; laterality needs at "
            "least 2 cases of each side (data.label)"
        )
    source = {
        "kind": "brats",
        "counts": [
            ["case folders read", len(cases)],
            ["cases used", len(kept)],
            [f"cases left out: tumour within {spec.midline_margin_mm:g} mm of the midline", len(left_out)],
            ["cases with the tumour on the patient's left", int(counts[0])],
            ["cases with the tumour on the patient's right", int(counts[1])],
            ["axial slices per case", spec.slices],
            ["samples (slices)", len(labels)],
        ],
        "left_out": [{"case": r.name, "reason": r.reason, "offset_mm": round(r.offset_mm, 2)} for r in left_out],
        "classes": list(SIDES),
        "channels": list(spec.modalities),
        "grouped_by": "case",
        "inputs_csv": inputs_csv,
        "inputs_sha256": inputs_sha256,
        "inputs_kind": "case manifest",
        "examples_caption": "Axial slices through the largest tumour area with their tumour side, anterior at the top "
        "and the patient's right on the image's right; one row per modality, z-scored over the brain.",
    }
    kind = "synthetic" if spec.synthetic else "user-provided"
    return with_split(
        np.concatenate([r.images for r in kept]),
        {"laterality": labels},
        {"laterality": "classification"},
        "laterality",
        spec.split,
        "brats",
        synthetic=spec.synthetic,
        description=f"{kind.capitalize()} BraTS volumes from {spec.path.name}: {len(kept):,} of {len(cases):,} cases, "
        f"{spec.slices} axial slice(s) each around the largest tumour area, channels {', '.join(spec.modalities)}, "
        f"{spec.size}x{spec.size} pixels, z-scored over the brain per volume; label: tumour laterality (patient's "
        f"side of the brain's midline, cases within {spec.midline_margin_mm:g} mm of it left out).",
        groups=np.repeat(np.arange(len(kept)), spec.slices),
        source=source,
    )
