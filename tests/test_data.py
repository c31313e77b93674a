"""Data sets: the Dataset contract, determinism, the structure each generator promises, and file input."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from batchlab.config import DigitsData, FileData, Mnist1dData, PhantomMRIData, Split, SyntheticEHRData, split_sizes
from batchlab.data import assign_split, load_dataset, make_dataset, save_dataset
from batchlab.data.inspect import inspect_files
from batchlab.data.mnist1d_data import generate as mnist1d_generate

SPECS = {
    "synthetic_ehr": SyntheticEHRData(name="synthetic_ehr", n_samples=400, n_features=300),
    "phantom_mri": PhantomMRIData(name="phantom_mri", n_samples=200, size=24),
    "digits": DigitsData(name="digits", as_images=True),
    "mnist1d": Mnist1dData(name="mnist1d", n_samples=300),
}
SHAPES = {"synthetic_ehr": (300,), "phantom_mri": (1, 24, 24), "digits": (1, 8, 8), "mnist1d": (1, 40)}


@pytest.mark.parametrize("name", SPECS)
def test_contract_and_determinism(name):
    spec = SPECS[name]
    a, b = make_dataset(spec), make_dataset(spec)
    assert a.x.dtype == np.float32 and a.x.shape == (spec.n_samples_total(), *SHAPES[name])
    assert np.isfinite(a.x).all()
    assert np.array_equal(a.x, b.x) and np.array_equal(a.split, b.split)
    assert all(np.array_equal(a.labels[k], b.labels[k]) for k in a.labels)
    assert a.target in a.labels and set(a.tasks) == set(a.labels)
    assert len(a.indices("train")) == spec.n_train()
    assert (len(a.indices("val")), len(a.indices("test"))) == split_sizes(len(a.x), spec.split)[1:]
    assert a.synthetic == (name in {"synthetic_ehr", "phantom_mri"})


@pytest.mark.parametrize("name", ["synthetic_ehr", "phantom_mri", "mnist1d"])
def test_seed_changes_the_data(name):
    spec = SPECS[name]
    other = spec.model_copy(update={"seed": spec.seed + 1})
    assert not np.array_equal(make_dataset(spec).x, make_dataset(other).x)


def test_generators_leave_global_numpy_state_alone():
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    make_dataset(SPECS["mnist1d"])
    assert np.random.random() == expected


def test_mnist1d_is_the_packages_own_generator():
    from mnist1d.data import get_dataset_args, make_dataset as package_make

    args = get_dataset_args(as_dict=False)
    args.num_samples, args.seed = 300, 42
    state = np.random.get_state()
    ref = package_make(args)
    np.random.set_state(state)
    x, y = mnist1d_generate(300, 42)
    assert np.allclose(x, np.concatenate([ref["x"], ref["x_test"]]))
    assert np.array_equal(y, np.concatenate([ref["y"], ref["y_test"]]))
    assert sorted(np.unique(y)) == list(range(10))


def _sex_auc(x, y) -> float:
    return cross_val_score(LogisticRegression(C=0.05, max_iter=1000), x, y, cv=3, scoring="roc_auc").mean()


def test_ehr_has_common_sex_specific_and_clustered_codes():
    spec = SyntheticEHRData(name="synthetic_ehr", n_samples=1500)
    ds = make_dataset(spec)
    x, sex = ds.x, ds.labels["sex"]
    prevalence = x.mean(0)
    assert (prevalence > 0.5).sum() == pytest.approx(spec.common_fraction * spec.n_features, abs=3)
    assert np.median(prevalence) < 0.1
    assert 0.7 < _sex_auc(x, sex) < 0.97
    no_sex = make_dataset(spec.model_copy(update={"sex_fraction": 0.0}))
    assert _sex_auc(no_sex.x, no_sex.labels["sex"]) < _sex_auc(x, sex) - 0.1
    rare = x[:, (prevalence > 0.02) & (prevalence < 0.5)]
    shuffled = np.random.default_rng(0).permuted(rare, axis=0)  # same prevalences, co-occurrence destroyed

    def top_share(m):
        s = np.linalg.svd(m - m.mean(0), compute_uv=False) ** 2
        return s[: spec.n_factors].sum() / s.sum()

    assert top_share(rare) > 1.5 * top_share(shuffled)


def test_individuality_knob_moves_variance_out_of_shared_structure():
    def shared_share(individuality):
        spec = SyntheticEHRData(name="synthetic_ehr", n_samples=800, n_features=400, individuality=individuality)
        x = make_dataset(spec).x
        s = np.linalg.svd(x - x.mean(0), compute_uv=False) ** 2
        return s[:16].sum() / s.sum()

    shares = [shared_share(v) for v in (0.0, 0.5, 1.0)]
    assert shares[0] > shares[1] > shares[2]


def test_phantom_lesion_side_matches_labels():
    ds = make_dataset(PhantomMRIData(name="phantom_mri", n_samples=600, noise=0.0, anatomy_jitter=0.0))
    img = ds.x[:, 0] - ds.x[:, 0].mean(0)
    half = img.shape[-1] // 2
    right_brighter = img[:, :, half:].sum((1, 2)) > img[:, :, :half].sum((1, 2))
    assert (right_brighter == ds.labels["laterality"]).mean() > 0.9
    assert np.array_equal(ds.labels["position"] > 0, ds.labels["laterality"] == 1)
    assert ds.x.min() >= 0 and ds.x.max() <= 1


def test_split_is_stratified_and_exact():
    y = np.repeat([0, 1], [300, 100])
    split = assign_split(y, "classification", Split(val_fraction=0.1, test_fraction=0.2))
    assert np.bincount(split).tolist() == [280, 40, 80]
    for part in (1, 2):
        assert y[split == part].mean() == pytest.approx(0.25, abs=0.02)


def test_save_load_round_trip(tmp_path):
    ds = make_dataset(SPECS["phantom_mri"])
    save_dataset(ds, tmp_path / "d.npz")
    back = load_dataset(tmp_path / "d.npz")
    assert np.array_equal(back.x, ds.x) and np.array_equal(back.split, ds.split)
    assert back.labels.keys() == ds.labels.keys() and all(np.array_equal(back.labels[k], ds.labels[k]) for k in ds.labels)
    assert (back.name, back.synthetic, back.description, back.tasks, back.target) == (
        ds.name, ds.synthetic, ds.description, ds.tasks, ds.target,
    )
    with np.load(tmp_path / "d.npz", allow_pickle=False) as z:
        assert "x" in z.files


def _frame(n=60):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "sex": rng.choice(["F", "M"], n)})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_file_tables_load(tmp_path, suffix):
    path = tmp_path / f"cohort{suffix}"
    frame = _frame()
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)
    spec = FileData.model_validate(
        {"name": "file", "path": path, "label": "sex", "features": ["a", "b"]}, context={"inspect": inspect_files}
    )
    ds = make_dataset(spec)
    assert ds.x.shape == (60, 2) and np.allclose(ds.x[:, 0], frame["a"])
    assert np.array_equal(ds.labels["sex"], (frame["sex"] == "M").astype(int))
    assert spec.n_samples_total() == 60 and not ds.synthetic


def test_file_npz_loads(tmp_path):
    path = tmp_path / "scans.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.random((40, 1, 8, 8)), side=np.repeat([0, 1], 20))
    ds = make_dataset(FileData(name="file", path=path, label="side"))
    assert ds.x.shape == (40, 1, 8, 8)


@pytest.mark.parametrize(
    "frame_edit, spec_edit, message",
    [
        (lambda f: f, {"features": ["a", "nope"]}, "missing column(s) ['nope']"),
        (lambda f: f.assign(a="text"), {}, "non-numeric feature column(s) ['a']"),
        (lambda f: f.assign(b=np.where(np.arange(len(f)) == 3, np.inf, f["b"])), {}, "non-finite feature value(s), first in column b"),
        (lambda f: f.assign(sex="F"), {}, "has one class ('F')"),
        (lambda f: f.assign(sex=np.where(np.arange(len(f)) == 0, None, f["sex"])), {}, "missing values"),
        (lambda f: f.head(10), {}, "10 rows; at least 20"),
    ],
    ids=["missing-column", "non-numeric", "non-finite", "one-class", "missing-label", "too-few-rows"],
)
def test_bad_files_name_file_and_column(tmp_path, frame_edit, spec_edit, message):
    path = tmp_path / "bad.csv"
    frame_edit(_frame()).to_csv(path, index=False)
    with pytest.raises(ValueError) as info:  # the config model itself refuses the file
        FileData.model_validate(
            {"name": "file", "path": path, "label": "sex", "features": ["a", "b"], **spec_edit},
            context={"inspect": inspect_files},
        )
    assert "bad.csv" in str(info.value) and message in str(info.value)


def test_train_samples_keeps_a_nested_subset_and_leaves_val_and_test_alone():
    from batchlab.config import Mnist1dData
    from batchlab.data import make_dataset

    full = make_dataset(Mnist1dData(name="mnist1d", n_samples=400))
    small = make_dataset(Mnist1dData(name="mnist1d", n_samples=400, train_samples=50))
    larger = make_dataset(Mnist1dData(name="mnist1d", n_samples=400, train_samples=200))
    assert len(small.indices("train")) == 50 and len(larger.indices("train")) == 200
    assert set(small.indices("train")) < set(larger.indices("train")) < set(full.indices("train"))
    for part in ("val", "test"):
        assert np.array_equal(small.indices(part), full.indices(part))
    assert np.array_equal(small.x, full.x)
    assert len(small.indices("unused")) == len(full.indices("train")) - 50
