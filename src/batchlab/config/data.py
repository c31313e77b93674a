"""The `data` block: the split, the generated data sets and the specs of a user's own files.

Facts read from a user's files (rows, classes, case folders) are not read here: validation passes an
inspector in its context (batchlab.data.inspect), so this package never imports the data package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, PositiveInt, PrivateAttr, ValidationInfo, field_validator, model_validator

from batchlab.config.base import FilesNotChecked, Strict, _existing, _inspector, _no_repeats
from batchlab.config.tables import CodeTable, Demographics, PhecodeMap


class Split(Strict):
    """How a data set is split once into train / validation / test."""

    val_fraction: float = Field(0.1, ge=0.0, lt=0.5, description="Fraction of samples held out for validation.")
    test_fraction: float = Field(0.1, ge=0.0, lt=0.5, description="Fraction of samples held out for testing.")
    seed: int = Field(0, ge=0, description="Seed of the split's shuffle.")


def split_sizes(n: int, split: Split) -> tuple[int, int, int]:
    """Numbers of train, validation and test samples for n samples."""
    n_val = int(round(n * split.val_fraction))
    n_test = int(round(n * split.test_fraction))
    return n - n_val - n_test, n_val, n_test


class _DataBase(Strict):
    split: Split = Field(default_factory=Split, description="Train/validation/test split.")
    train_samples: PositiveInt | None = Field(
        None,
        description="Train on only this many samples of the training split: the first of a fixed seeded order, so "
        "smaller sets nest in larger ones; validation and test are unchanged (the data-size knob).",
    )

    def n_samples_total(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def target_task(self) -> str:
        """Whether the label is a classification or a regression target (known before the data are made)."""
        return "classification"

    def n_train_full(self) -> int:
        """Size of the whole training split, before any train_samples limit."""
        return split_sizes(self.n_samples_total(), self.split)[0]

    def n_train(self) -> int:
        """Training-set size, known before the data are made (used to validate batch sizes)."""
        full = self.n_train_full()
        return full if self.train_samples is None else min(self.train_samples, full)

    def input_files(self) -> list[Path]:
        """The files the data set is read from (the data rule's inputs, so that editing them reruns it)."""
        return []

    def smallest_class(self) -> int | None:
        """Samples in the target's rarest class, where known before the data are made (None otherwise)."""
        return None

    def origin(self) -> str:
        """Where the samples come from, for messages."""
        return self.name

    def facts_known(self) -> bool:
        """Whether the sizes and classes the checks need are known: always for generated data."""
        return True

    def _check_limit(self) -> None:
        if self.train_samples is not None and self.train_samples > self.n_train_full():
            raise ValueError(
                f"train_samples ({self.train_samples}) exceeds the training split ({self.n_train_full()} samples)"
            )

    @model_validator(mode="after")
    def _limit_fits(self) -> "_DataBase":
        """train_samples fits the split; a file-backed spec checks it once its files are read (_read_files)."""
        if self.facts_known():
            self._check_limit()
        return self


class _FileBacked(_DataBase):
    """A data set read from the user's files: what checks need from them comes from the validation context.

    `Config.model_validate(raw, context={"inspect": inspect})` reads and checks the files once, through
    `inspect(spec)`; without an inspector (a job rebuilding its study from JSON) the files are neither read
    nor looked for, and the checks that need what they hold are skipped.
    """

    _facts: Any = PrivateAttr(None)

    def facts_known(self) -> bool:
        return self._facts is not None

    def _checked_facts(self) -> Any:
        if self._facts is None:
            raise FilesNotChecked(
                f"data {self.origin()}: the config was validated without file checks, so what its files hold is "
                "unknown; validate it with inspect=batchlab.data.inspect.inspect_files"
            )
        return self._facts

    def _read_files(self, info: ValidationInfo) -> None:
        """Read the files through the context's inspector, if any, then check the limit that needed them."""
        inspect = _inspector(info)
        if inspect is not None:
            self._facts = inspect(self)
            self._check_limit()

    def __eq__(self, other: object) -> bool:
        """Equal when the specs are, inspected or not: a job's copy from JSON equals the validated spec."""
        if not isinstance(other, BaseModel):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__


class SyntheticEHRData(_DataBase):
    """Synthetic stand-in for the BLSA PheCode cohort: binary code vectors with a sex label."""

    name: Literal["synthetic_ehr"]
    n_samples: int = Field(3127, ge=50, description="Participants.")
    n_features: int = Field(1866, ge=20, description="Binary PheCode-like columns.")
    n_factors: int = Field(16, ge=1, description="Latent comorbidity factors shared across participants.")
    common_fraction: float = Field(
        0.05, ge=0.0, le=0.5, description="Fraction of codes most participants share (global similarity)."
    )
    sex_fraction: float = Field(
        0.04, ge=0.0, le=0.5, description="Fraction of codes whose prevalence depends on sex."
    )
    individuality: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Knob of the paper's hypothesis: 0 = codes driven by shared factors only, "
        "1 = strong participant-specific (local) differences.",
    )
    seed: int = Field(0, ge=0, description="Generator seed.")
    label: Literal["sex"] = Field("sex", description="Label column the downstream model predicts.")

    def n_samples_total(self) -> int:
        return self.n_samples


class PhantomMRIData(_DataBase):
    """Synthetic stand-in for BraTS slices: a shared head phantom with a lesion on one side."""

    name: Literal["phantom_mri"]
    n_samples: int = Field(1200, ge=50, description="Slices (one subject each).")
    size: int = Field(32, ge=16, le=256, description="Image height and width in pixels.")
    lesion_radius: tuple[float, float] = Field(
        (0.06, 0.14), description="Range of lesion radii as a fraction of the image size."
    )
    anatomy_jitter: float = Field(
        0.05, ge=0.0, le=0.3, description="Per-subject variation of the shared anatomy (global similarity)."
    )
    lesion_contrast: float = Field(
        0.1, gt=0.0, le=1.0, description="Peak brightness the lesion adds to brain tissue (0.45): lower is subtler."
    )
    noise: float = Field(0.1, ge=0.0, le=1.0, description="Standard deviation of pixel noise.")
    seed: int = Field(0, ge=0, description="Generator seed.")
    label: Literal["laterality", "position"] = Field(
        "laterality", description="laterality (left/right, classification) or position (signed x, regression)."
    )

    def target_task(self) -> str:
        return "regression" if self.label == "position" else "classification"

    def n_samples_total(self) -> int:
        return self.n_samples


class DigitsData(_DataBase):
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, real data)."""

    name: Literal["digits"]
    as_images: bool = Field(False, description="Keep the 8x8 image shape (for conv models) instead of 64 features.")
    label: Literal["digit"] = "digit"

    def n_samples_total(self) -> int:
        return 1797


class Mnist1dData(_DataBase):
    """MNIST-1D (Greydanus 2020), generated locally by its PyPI package: 40-sample 1-D signals, 10 classes."""

    name: Literal["mnist1d"]
    n_samples: int = Field(4000, ge=100, description="Samples to generate (rounded down to a multiple of 10).")
    seed: int = Field(42, ge=0, description="Generator seed (the package's published data set uses 42).")
    label: Literal["digit"] = "digit"

    def n_samples_total(self) -> int:
        return 10 * (self.n_samples // 10)


class NoisyQuadraticData(_DataBase):
    """The noisy quadratic model (NQM): a quadratic with a power-law spectrum whose SGD has a known answer.

    form additive (the default) is Zhang et al.'s (2019) NQM, learned by model.kind `quadratic`; form
    regression is linear regression on Gaussian inputs, learned by model.kind `linear`. SGD on either has an
    exact expected-loss recursion (batchlab.analysis.nqm), so its critical batch size is known; the
    validation split has exact moments, so its loss is the population loss (batchlab.data.noisy_quadratic).
    """

    name: Literal["noisy_quadratic"]
    form: Literal["additive", "regression"] = Field(
        "additive",
        description="additive: Zhang et al.'s NQM, samples z ~ N(w*, sigma^2 H^-1) and loss 0.5 sum_j h_j (w_j - z_j)^2 "
        "(model.kind quadratic), whose gradient noise (covariance sigma^2 H) is independent of the weights, so a single "
        "run's error is Gaussian (no heavy tails); regression: linear regression on inputs x ~ N(0, H), y = w*.x + "
        "sigma eps (model.kind linear), whose gradient noise x x^T e is multiplicative, so single runs are heavy-tailed.",
    )
    n_features: int = Field(32, ge=2, description="Dimension d.")
    power: float = Field(
        1.5, gt=0.0, description="The Hessian H = diag(j^-power), j = 1..d: its power-law spectrum (the input "
        "covariance of the regression form; the quadratic model's power must equal it)."
    )
    noise: float = Field(
        1.0,
        gt=0.0,
        description="Noise sigma: the samples' spread z_j ~ N(w*_j, sigma^2 / h_j) (additive, loss floor d sigma^2 / 2) "
        "or the label noise y = w*.x + sigma eps (regression, loss floor sigma^2 / 2).",
    )
    scale: float = Field(
        1.0,
        gt=0.0,
        description="Initial error: w*_j = scale / sqrt(h_j) with a seeded sign, so each direction starts with "
        "excess loss scale^2 / 2 from the zero model.",
    )
    n_samples: int = Field(70000, ge=100, description="Samples in all (train, validation and test).")
    seed: int = Field(0, ge=0, description="Generator seed (samples, noise and the signs of w*).")
    label: Literal["y"] = Field(
        "y", description="The regression target (regression form); all zeros in the additive form, whose loss reads no label."
    )

    def target_task(self) -> str:
        return "regression"

    def n_samples_total(self) -> int:
        return self.n_samples

    @model_validator(mode="after")
    def _exact_validation_moments(self) -> "NoisyQuadraticData":
        """The validation split's exact moments need more samples than features."""
        n_val = split_sizes(self.n_samples, self.split)[1]
        if n_val <= self.n_features:
            raise ValueError(
                f"the validation split ({n_val} samples) must exceed n_features ({self.n_features}) for its exact "
                "moments (its loss is the population loss); raise n_samples or split.val_fraction"
            )
        return self


class FileData(_FileBacked):
    """A user's own table (CSV, Parquet) or NPZ: how to run the real BLSA or BraTS study."""

    name: Literal["file"]
    path: Path = Field(description="CSV, Parquet or NPZ file, relative to the working directory.")
    features: list[str] | None = Field(
        None, description="Feature columns (tables) or the array key (NPZ, one name); default: every other column."
    )
    label: str | None = Field(
        None,
        description="Label column (tables) or array key (NPZ), in `path` or in `labels`; leave out for unlabelled "
        "data, which serves an autoencoder or contrastive model and has its downstream step skipped.",
    )
    labels: Path | None = Field(
        None,
        description="A separate CSV, Parquet or NPZ file holding the label `label` names, one row per sample of "
        "`path` in the same order; training reads only `path`, the downstream SVMs read the label.",
    )
    task: Literal["classification", "regression"] = Field("classification", description="Kind of label.")
    synthetic: bool = Field(False, description="Set true if the file holds synthetic data; the report says so.")

    @field_validator("path", "labels")
    @classmethod
    def _exists(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        if path is None:
            return path
        if path.suffix.lower() not in {".csv", ".parquet", ".pq", ".npz"}:
            raise ValueError(f"{path}: unsupported file type {path.suffix!r} (use .csv, .parquet or .npz)")
        if _inspector(info) is not None and not path.is_file():
            raise ValueError(f"{path}: no such file")
        return path

    @field_validator("features")
    @classmethod
    def _nonempty(cls, features: list[str] | None) -> list[str] | None:
        if features is not None and not features:
            raise ValueError("features must name at least one column (or be left out)")
        return features

    def target_task(self) -> str:
        """The label's task, or "none" for unlabelled data."""
        return "none" if self.label is None else self.task

    def n_samples_total(self) -> int:
        return self.summary().n_rows

    def input_files(self) -> list[Path]:
        return [self.path] if self.labels is None else [self.path, self.labels]

    def smallest_class(self) -> int | None:
        return self.summary().smallest_class

    def origin(self) -> str:
        return str(self.path)

    def summary(self):
        """The checked file's row count and rarest class, as the inspector read them at validation."""
        return self._checked_facts()

    @model_validator(mode="after")
    def _readable(self, info: ValidationInfo) -> "FileData":
        if self.labels is not None and self.label is None:
            raise ValueError(f"labels names {self.labels}, but label names no column or array in it (data.label)")
        self._read_files(info)  # the inspector raises ValueError naming the file and the column
        return self


BRATS_MODALITIES = ("flair", "t1", "t1ce", "t2")



class BratsData(_FileBacked):
    """BraTS cases as NIfTI volumes: axial slices of the chosen modalities, labelled by tumour laterality."""

    name: Literal["brats"]
    path: Path = Field(
        description="Folder with one subfolder per case, each holding *_flair, *_t1, *_t1ce, *_t2 and *_seg "
        "NIfTI files (.nii or .nii.gz); files beside the case folders are ignored."
    )
    modalities: list[Literal[BRATS_MODALITIES]] = Field(
        list(BRATS_MODALITIES), min_length=1, description="Modalities stacked as the image's channels, in this order."
    )
    slices: PositiveInt = Field(
        1, description="Axial slices per case: 1 = the slice with the largest tumour area; n = n slices centred on it."
    )
    slice_step: PositiveInt = Field(1, description="Voxels between neighbouring chosen slices when slices > 1.")
    size: int = Field(64, ge=8, le=512, description="Height and width of every slice after resampling, in pixels.")
    midline_margin_mm: float = Field(
        5.0,
        ge=0.0,
        description="Cases whose tumour centroid lies within this many mm of the brain's midline are left out and counted.",
    )
    label: Literal["laterality"] = Field(
        "laterality", description="Tumour side in the patient's frame (left/right of the brain's midline)."
    )
    synthetic: bool = Field(False, description="Set true if the folder holds synthetic volumes; the report says so.")

    @field_validator("path")
    @classmethod
    def _folder(cls, path: Path, info: ValidationInfo) -> Path:
        return _existing(path, "folder", check=_inspector(info) is not None)

    @field_validator("modalities")
    @classmethod
    def _unique(cls, modalities: list[str]) -> list[str]:
        return _no_repeats(modalities, "modalities")

    def cases(self):
        """The case folders and their files, as the inspector listed and checked them (it reads no volume)."""
        return self._checked_facts()

    def n_samples_total(self) -> int:
        return len(self.cases()) * self.slices

    def origin(self) -> str:
        return str(self.path)

    def n_train_full(self) -> int:
        """Whole cases go to one side of the split, so the split is drawn over cases."""
        return split_sizes(len(self.cases()), self.split)[0] * self.slices

    def input_files(self) -> list[Path]:
        return [f for case in self.cases() for f in case.files()]

    @model_validator(mode="after")
    def _whole_cases(self, info: ValidationInfo) -> "BratsData":
        self._read_files(info)  # the inspector raises ValueError naming each case that lacks a file
        if self.train_samples is not None and self.train_samples % self.slices:
            raise ValueError(
                f"train_samples ({self.train_samples}) must be a multiple of slices ({self.slices}): cases are kept whole"
            )
        return self


class EHRCodesData(_FileBacked):
    """EHR as a long table of ICD codes, mapped to a person x PheCode binary matrix with labels from demographics."""

    name: Literal["ehr_codes"]
    codes: CodeTable = Field(description="The long table of (person, code, vocabulary, optional date).")
    phecode_maps: list[PhecodeMap] = Field(
        min_length=1, description="ICD -> PheCode maps (e.g. the catalogue's ICD-9-CM and ICD-10-CM files)."
    )
    demographics: Demographics = Field(description="One row per person: sex and other labels.")
    label: str = Field("sex", description="The label the downstream SVM predicts: sex or a demographics.labels column.")
    min_prevalence: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Keep PheCodes carried by at least this fraction of persons; 0 keeps every PheCode of the maps.",
    )
    synthetic: bool = Field(False, description="Set true if the tables hold synthetic data; the report says so.")

    def target_task(self) -> str:
        return self.demographics.label_tasks()[self.label]

    def smallest_class(self) -> int | None:
        return self.summary().smallest_class

    def origin(self) -> str:
        return str(self.demographics.path)

    def summary(self):
        """What validation needs from the tables, as the inspector read them: the persons with every label."""
        return self._checked_facts()

    def n_samples_total(self) -> int:
        return self.summary().n_persons

    def input_files(self) -> list[Path]:
        return [self.codes.path, self.demographics.path, *(m.path for m in self.phecode_maps)]

    @model_validator(mode="after")
    def _label_and_tables(self, info: ValidationInfo) -> "EHRCodesData":
        if self.label not in self.demographics.label_tasks():
            raise ValueError(
                f"label {self.label!r} is neither sex nor a demographics.labels column {sorted(self.demographics.labels)}"
            )
        self._read_files(info)  # the inspector raises ValueError naming the file, the column and the field
        return self


DataSpec = Annotated[
    Union[
        SyntheticEHRData, PhantomMRIData, DigitsData, Mnist1dData, NoisyQuadraticData, FileData, BratsData, EHRCodesData
    ],
    Field(discriminator="name"),
]
DATASET_NAMES = ("synthetic_ehr", "phantom_mri", "digits", "mnist1d", "noisy_quadratic", "file", "brats", "ehr_codes")
