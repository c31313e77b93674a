"""The brats source on small synthetic NIfTI volumes: labels, slices, normalisation, grouping, bad input."""

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import yaml
from pydantic import TypeAdapter

from batchlab.config import ConfigError, DataSpec, Split, load_config
from batchlab.data import assign_split, limit_training, make_dataset
from batchlab.data.brats import list_cases, load_ras, midline_offset_mm, normalise, read_case, slice_indices, to_images
from batchlab.data.inspect import inspect_files
from batchlab.measure.downstream import folds
from realdata import (
    SHAPE, TUMOUR_SLICE, VOXEL_MM, case_volumes, ras_affine, to_las, write_brats, write_case,
)  # fmt: skip


def spec(path: Path, **fields):
    return TypeAdapter(DataSpec).validate_python(
        {"name": "brats", "path": str(path), **fields}, context={"inspect": inspect_files}
    )


def test_labels_are_the_patients_side_in_ras_and_las(tmp_path: Path):
    sides = write_brats(tmp_path, n_cases=8)
    cases = list_cases(tmp_path, ["flair", "t1", "t1ce", "t2"])
    orientations = {c.name: nib.aff2axcodes(nib.load(c.seg).affine) for c in cases}
    assert set(orientations.values()) == {("R", "A", "S"), ("L", "A", "S")}  # both voxel orders on disk
    ds = make_dataset(spec(tmp_path, size=16))
    expected = [1 if sides[c.name] == "right" else 0 for c in cases]
    assert ds.labels["laterality"].tolist() == expected
    assert ds.source["classes"] == ["left", "right"]


def test_the_same_patient_gives_the_same_slice_in_either_voxel_order(tmp_path: Path):
    write_case(tmp_path, "ras", "right", "RAS", seed=3)
    write_case(tmp_path, "las", "right", "LAS", seed=3)
    cases = {c.name: c for c in list_cases(tmp_path, ["flair", "t2"])}
    s = spec(tmp_path, modalities=["flair", "t2"], size=20)
    ras, las = read_case(cases["ras"], s), read_case(cases["las"], s)
    assert ras.label == las.label == 1 and ras.offset_mm == pytest.approx(las.offset_mm)
    np.testing.assert_array_equal(ras.images, las.images)
    # on the image, the tumour lies right of centre: the patient's right is drawn on the right
    tumour_columns = np.argwhere(ras.images[0, 0] > 2)[:, 1]
    assert tumour_columns.mean() > ras.images.shape[-1] / 2


def test_offset_is_measured_in_mm_along_left_right():
    volumes = case_volumes("left", offset=5)
    brain, tumour = volumes["flair"] > 0, volumes["seg"] > 0
    assert midline_offset_mm(brain, tumour, ras_affine()) == pytest.approx(-5 * VOXEL_MM[0], abs=0.5)
    flipped_brain, las_affine = to_las(brain, ras_affine())
    flipped_tumour, _ = to_las(tumour, ras_affine())
    # raw LAS voxels read as if RAS would put the tumour on the wrong side; the affine says otherwise
    assert midline_offset_mm(flipped_brain, flipped_tumour, ras_affine()) > 0
    assert midline_offset_mm(flipped_brain, flipped_tumour, las_affine) == pytest.approx(-5 * VOXEL_MM[0], abs=0.5)


@pytest.mark.parametrize(
    "centre, count, step, depth, expected",
    [
        (7, 1, 1, 12, [7]),
        (7, 3, 1, 12, [6, 7, 8]),
        (7, 3, 2, 12, [5, 7, 9]),
        (7, 4, 1, 12, [6, 7, 8, 9]),
        (0, 3, 2, 12, [0, 2, 4]),  # shifted inside the volume
        (11, 3, 1, 12, [9, 10, 11]),
    ],
)
def test_slice_indices(centre, count, step, depth, expected):
    assert slice_indices(centre, count, step, depth).tolist() == expected


def test_slice_indices_too_many_for_the_volume():
    with pytest.raises(ValueError, match="more than the volume's 12"):
        slice_indices(5, 7, 2, 12)


def test_the_slice_with_the_largest_tumour_area_is_chosen(tmp_path: Path):
    write_case(tmp_path, "c", "left", "LAS")
    case = list_cases(tmp_path, ["flair"])[0]
    assert read_case(case, spec(tmp_path, modalities=["flair"])).slices.tolist() == [TUMOUR_SLICE]
    three = read_case(case, spec(tmp_path, modalities=["flair"], slices=3, slice_step=2))
    assert three.slices.tolist() == [TUMOUR_SLICE - 2, TUMOUR_SLICE, TUMOUR_SLICE + 2]
    assert three.images.shape == (3, 1, 64, 64)


def test_normalise_gives_zero_mean_unit_sd_over_the_brain():
    rng = np.random.default_rng(0)
    volume = rng.normal(100, 15, size=(6, 7, 8)).astype(np.float32)
    brain = rng.random((6, 7, 8)) < 0.6
    out = normalise(np.where(brain, volume, 0), brain)
    assert out[brain].mean() == pytest.approx(0, abs=1e-6) and out[brain].std() == pytest.approx(1, abs=1e-5)
    assert (out[~brain] == 0).all()
    with pytest.raises(ValueError, match="constant"):
        normalise(np.where(brain, 5.0, 0.0), brain)


def test_slices_are_the_normalised_volume_at_full_size(tmp_path: Path):
    """At the volume's own in-plane size nothing is resampled: the image is the z-scored slice, reoriented and padded."""
    volumes = case_volumes("right", seed=1)
    volumes["t2"] = np.where(volumes["flair"] != 0, 3 * volumes["flair"] + 7, 0).astype(np.float32)
    write_case(tmp_path, "c", orientation="LAS", volumes=volumes)
    case = list_cases(tmp_path, ["flair", "t2"])[0]
    side = max(SHAPE[:2])
    result = read_case(case, spec(tmp_path, modalities=["flair", "t2"], size=side))
    flair = volumes["flair"]
    brain = flair != 0
    z = np.where(brain, (flair - flair[brain].mean()) / flair[brain].std(), 0)[:, :, TUMOUR_SLICE]
    expected = np.zeros((side, side))
    pad = (side - SHAPE[0]) // 2
    expected[:, pad : pad + SHAPE[0]] = z.T[::-1]  # rows: anterior first; columns: the patient's left to right
    np.testing.assert_allclose(result.images[0, 0], expected, atol=1e-5)
    np.testing.assert_allclose(result.images[0, 1], result.images[0, 0], atol=1e-5)  # z-scoring removes 3x + 7


def test_resampling_keeps_the_tumour_side_and_size(tmp_path: Path):
    images = to_images(np.ones((1, 1, 24, 28), dtype=np.float32), 14)
    assert images.shape == (1, 1, 14, 14)
    assert images[0, 0, :, 0].max() < 0.5 < images[0, 0, :, 7].min()  # zero padding left and right of the brain


def test_cases_near_the_midline_are_left_out_and_counted(tmp_path: Path):
    for i in range(6):
        write_case(tmp_path, f"far{i}", "right" if i % 2 else "left", seed=i)
    write_case(tmp_path, "near", "right", offset=1)  # 2 mm from the midline
    ds = make_dataset(spec(tmp_path, midline_margin_mm=5, size=16))
    counts = dict(map(tuple, ds.source["counts"]))
    assert counts["case folders read"] == 7 and counts["cases used"] == 6
    assert counts["cases left out: tumour within 5 mm of the midline"] == 1
    assert ds.source["left_out"] == [{"case": "near", "reason": "tumour within 5 mm of the midline", "offset_mm": 2.0}]
    assert len(ds.x) == 6
    kept = make_dataset(spec(tmp_path, midline_margin_mm=1, size=16))
    assert len(kept.x) == 7


def test_grouped_split_and_folds_keep_each_case_on_one_side(tmp_path: Path):
    write_brats(tmp_path, n_cases=20)
    ds = make_dataset(spec(tmp_path, slices=3, size=8, split={"val_fraction": 0.2, "test_fraction": 0.2}))
    assert len(ds.x) == 60 and ds.groups.tolist() == np.repeat(np.arange(20), 3).tolist()
    for g in range(20):
        assert len(set(ds.split[ds.groups == g])) == 1
    assert np.bincount(ds.split[::3]).tolist() == [12, 4, 4]  # the fractions count cases
    for train, test in folds(ds.labels["laterality"], "classification", 4, ds.groups):
        assert not set(ds.groups[train]) & set(ds.groups[test])
    smaller = limit_training(ds, 6, seed=0)
    kept = smaller.indices("train")
    assert len(kept) == 6 and all((smaller.groups == g).sum() == 3 for g in set(smaller.groups[kept]))


def test_ungrouped_folds_would_mix_cases():
    """The check above can fail: plain k-fold on the same samples puts slices of one case on both sides."""
    groups = np.repeat(np.arange(20), 3)
    y = groups % 2
    mixed = [bool(set(groups[tr]) & set(groups[te])) for tr, te in folds(y, "classification", 4)]
    assert any(mixed)


def test_grouped_split_needs_one_label_per_group():
    with pytest.raises(ValueError, match="one label per group"):
        assign_split(np.array([0, 1, 0, 1]), "classification", Split(), groups=np.array([0, 0, 1, 1]))


def test_grouped_folds_need_enough_cases_per_class():
    groups = np.repeat(np.arange(6), 2)
    with pytest.raises(ValueError, match="rarest class has 3 groups"):
        folds(groups % 2, "classification", 5, groups)


# ------------------------------------------------------------------ bad input


def _config(tmp_path: Path, **data) -> Path:
    cfg = {
        "device": "cpu",
        "studies": {
            "mri": {
                "data": {"name": "brats", "path": str(tmp_path / "brats"), **data},
                "model": {"kind": "conv_ae", "channels": [4], "latent": 4},
                "budget": {"unit": "epochs", "amount": 1},
                "batch_sizes": [1],
                "downstream": {"folds": 2},
            }
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_case_missing_a_modality_names_the_case_and_field(tmp_path: Path):
    write_brats(tmp_path / "brats", n_cases=4)
    next((tmp_path / "brats/BraTS_00002").glob("*_t1ce.nii.gz")).unlink()
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path), inspect=inspect_files)
    msg = str(err.value)
    assert "case 'BraTS_00002' has no *_t1ce.nii or .nii.gz file (data.modalities)" in msg
    assert "study 'mri', field 'data'" in msg
    load_config(_config(tmp_path, modalities=["flair", "t2"]), inspect=inspect_files)  # not needed: fine


def test_a_non_nifti_file_names_the_file(tmp_path: Path):
    write_brats(tmp_path / "brats", n_cases=4)
    case = tmp_path / "brats/BraTS_00001"
    (case / "BraTS_00001_t2.nii.gz").unlink()
    (case / "BraTS_00001_t2.mha").write_bytes(b"not nifti")
    with pytest.raises(ConfigError, match=r"BraTS_00001_t2.mha: not a NIfTI file \(.nii or .nii.gz\) \(data.path\)"):
        load_config(_config(tmp_path), inspect=inspect_files)
    (case / "BraTS_00001_t2.mha").unlink()
    (case / "BraTS_00001_t2.nii.gz").write_bytes(b"this is not a NIfTI volume at all")
    with pytest.raises(ValueError, match=r"BraTS_00001_t2.nii.gz: case 'BraTS_00001': not a readable NIfTI file"):
        load_ras(case / "BraTS_00001_t2.nii.gz", "BraTS_00001")


def _run_data(tmp_path: Path) -> subprocess.CompletedProcess:
    data_json = TypeAdapter(DataSpec).validate_python({"name": "brats", "path": str(tmp_path / "brats")})
    out = tmp_path / "out/data.npz"
    return subprocess.run(
        [sys.executable, "-m", "batchlab", "data", "--data-json", TypeAdapter(DataSpec).dump_json(data_json).decode(),
         "--out", str(out)],
        capture_output=True, text=True,
    )


def _nothing_written(tmp_path: Path) -> bool:
    return not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("problem", ["different-shapes", "empty-segmentation", "garbage-volume", "one-side-only"])
def test_bad_volumes_stop_the_data_job_naming_the_file_and_write_nothing(tmp_path: Path, problem: str):
    write_brats(tmp_path / "brats", n_cases=6)
    case = tmp_path / "brats/BraTS_00003"
    if problem == "different-shapes":
        nib.save(nib.Nifti1Image(np.ones((10, 10, 10), np.float32), ras_affine()), case / "BraTS_00003_t1.nii.gz")
        expected = "BraTS_00003_t1.nii.gz: case 'BraTS_00003': the t1 volume has shape (10, 10, 10)"
    elif problem == "empty-segmentation":
        nib.save(nib.Nifti1Image(np.zeros(SHAPE, np.uint8), ras_affine()), case / "BraTS_00003_seg.nii.gz")
        expected = "BraTS_00003_seg.nii.gz: case 'BraTS_00003': empty segmentation, no tumour voxel (data.path)"
    elif problem == "garbage-volume":
        (case / "BraTS_00003_flair.nii.gz").write_bytes(b"\x1f\x8b garbage")
        expected = "BraTS_00003_flair.nii.gz: case 'BraTS_00003': not a readable NIfTI file"
    else:
        for i in range(6):
            write_case(tmp_path / "brats", f"BraTS_{i:05d}", "left", seed=i)
        expected = "0 kept case(s) have their tumour on the right side; laterality needs at least 2 cases of each side (data.label)"
    result = _run_data(tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and "batchlab data: error:" in result.stderr
    said = [line for line in result.stderr.strip().splitlines() if not line.startswith("batchlab data: start-up")]
    assert len(said) == 1  # one line for the problem (and the job's usage line)
    assert _nothing_written(tmp_path)


def test_input_files_are_every_case_file(tmp_path: Path):
    write_brats(tmp_path, n_cases=3)
    files = spec(tmp_path, modalities=["t1"]).input_files()
    assert sorted(f.name for f in files) == sorted(f"BraTS_{i:05d}_{k}.nii.gz" for i in range(3) for k in ("t1", "seg"))


def test_train_samples_keep_whole_cases(tmp_path: Path):
    write_brats(tmp_path, n_cases=4)
    with pytest.raises(ValueError, match="multiple of slices"):
        spec(tmp_path, slices=2, train_samples=3)
