"""Typed configuration: the pydantic models every part of batchlab reads.

The YAML in config/ is validated against these models when the Snakefile is parsed,
so a typo or an impossible value stops the run before any job starts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from batchlab import finished_run

STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class ConfigError(ValueError):
    """A configuration problem, with a message that names the file, study and field."""


def _no_repeats(values: list, what: str) -> list:
    """The list itself when no value repeats; else a ValueError saying which list."""
    if len(set(values)) != len(values):
        raise ValueError(f"{what} repeat: {values}")
    return values


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, so typos are caught."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


# ---------------------------------------------------------------- data sets


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

    @model_validator(mode="after")
    def _limit_fits(self) -> "_DataBase":
        if self.train_samples is not None and self.train_samples > self.n_train_full():
            raise ValueError(
                f"train_samples ({self.train_samples}) exceeds the training split ({self.n_train_full()} samples)"
            )
        return self


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


class FileData(_DataBase):
    """A user's own table (CSV, Parquet) or NPZ: how to run the real BLSA or BraTS study."""

    name: Literal["file"]
    path: Path = Field(description="CSV, Parquet or NPZ file, relative to the working directory.")
    features: list[str] | None = Field(
        None, description="Feature columns (tables) or the array key (NPZ, one name); default: every other column."
    )
    label: str = Field(description="Label column (tables) or array key (NPZ).")
    task: Literal["classification", "regression"] = Field("classification", description="Kind of label.")
    synthetic: bool = Field(False, description="Set true if the file holds synthetic data; the report says so.")

    @field_validator("path")
    @classmethod
    def _exists(cls, path: Path) -> Path:
        if path.suffix.lower() not in {".csv", ".parquet", ".pq", ".npz"}:
            raise ValueError(f"{path}: unsupported file type {path.suffix!r} (use .csv, .parquet or .npz)")
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        return path

    @field_validator("features")
    @classmethod
    def _nonempty(cls, features: list[str] | None) -> list[str] | None:
        if features is not None and not features:
            raise ValueError("features must name at least one column (or be left out)")
        return features

    def target_task(self) -> str:
        return self.task

    def n_samples_total(self) -> int:
        return self.summary().n_rows

    def input_files(self) -> list[Path]:
        return [self.path]

    def smallest_class(self) -> int | None:
        return self.summary().smallest_class

    def origin(self) -> str:
        return str(self.path)

    def summary(self):
        """The checked file's row count and rarest class (read once per file version)."""
        from batchlab.data.files import inspect_file  # deferred: the data package imports this module

        return inspect_file(self)

    @model_validator(mode="after")
    def _readable(self) -> "FileData":
        self.summary()  # raises ValueError naming the file and the column
        return self


BRATS_MODALITIES = ("flair", "t1", "t1ce", "t2")


def _existing(path: Path, kind: str, suffixes: tuple[str, ...] = ()) -> Path:
    """The path itself if it is an existing file or folder of the right type; else a ValueError naming it."""
    if suffixes and not path.name.lower().endswith(suffixes):
        raise ValueError(f"{path}: unsupported file type (use {' or '.join(suffixes)})")
    exists = path.is_dir() if kind == "folder" else path.is_file()
    if not exists:
        raise ValueError(f"{path}: no such {kind}")
    return path


class BratsData(_DataBase):
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
    def _folder(cls, path: Path) -> Path:
        return _existing(path, "folder")

    @field_validator("modalities")
    @classmethod
    def _unique(cls, modalities: list[str]) -> list[str]:
        return _no_repeats(modalities, "modalities")

    def cases(self):
        """The case folders and their files, checked for completeness (lists the folder; reads no volume)."""
        from batchlab.data.brats import cached_cases  # deferred: the data package imports this module

        return cached_cases(self.path, self.modalities)

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
    def _whole_cases(self) -> "BratsData":
        self.cases()  # raises ValueError naming each case that lacks a file
        if self.train_samples is not None and self.train_samples % self.slices:
            raise ValueError(
                f"train_samples ({self.train_samples}) must be a multiple of slices ({self.slices}): cases are kept whole"
            )
        return self


VOCABULARIES = ("ICD-9-CM", "ICD-10-CM")
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


class CodeTable(Strict):
    """The long table of diagnosis codes: one row per (person, code) event."""

    path: Path = Field(description="CSV or Parquet file, relative to the working directory.")
    person: str = Field("person_id", description="Column of person identifiers (matched to the demographics table).")
    code: str = Field("code", description="Column of ICD codes (with or without the dot).")
    vocabulary: str = Field(
        "vocabulary", description="Column saying which vocabulary each code is from: ICD-9-CM or ICD-10-CM."
    )
    date: str | None = Field(None, description="Optional column of event dates (checked and summarised, not filtered).")

    @field_validator("path")
    @classmethod
    def _table(cls, path: Path) -> Path:
        return _existing(path, "file", TABLE_SUFFIXES)


class PhecodeMap(Strict):
    """One ICD -> PheCode map file (the PheWAS catalogue's CSVs), with its column names."""

    path: Path = Field(description="CSV or Parquet file of the map, relative to the working directory.")
    code: str = Field(description="Column of ICD codes, e.g. ICD9 in the catalogue's ICD-9-CM map.")
    phecode: str = Field(description="Column of PheCodes, e.g. PheCode.")
    vocabulary: Literal[VOCABULARIES] | None = Field(
        None, description="The vocabulary of every code in the file (give this or vocabulary_column)."
    )
    vocabulary_column: str | None = Field(
        None, description="Column giving each row's vocabulary, for a map that holds both (give this or vocabulary)."
    )

    @field_validator("path")
    @classmethod
    def _table(cls, path: Path) -> Path:
        return _existing(path, "file", TABLE_SUFFIXES)

    @model_validator(mode="after")
    def _one_vocabulary_source(self) -> "PhecodeMap":
        if (self.vocabulary is None) == (self.vocabulary_column is None):
            raise ValueError(f"{self.path}: give exactly one of vocabulary and vocabulary_column")
        return self


class Demographics(Strict):
    """The per-person table: sex and any other label columns."""

    path: Path = Field(description="CSV or Parquet file, one row per person, relative to the working directory.")
    person: str = Field("person_id", description="Column of person identifiers.")
    sex: str = Field("sex", description="Column of sex (any two or more values; coded in sorted order).")
    labels: dict[str, Literal["classification", "regression"]] = Field(
        {}, description="Other label columns and their kind, e.g. {age: regression}."
    )

    @field_validator("path")
    @classmethod
    def _table(cls, path: Path) -> Path:
        return _existing(path, "file", TABLE_SUFFIXES)

    def label_tasks(self) -> dict[str, str]:
        """Every label of the data set (sex first) and its kind, by label name."""
        return {"sex": "classification", **self.labels}

    def label_columns(self) -> dict[str, str]:
        """The table column of every label, by label name."""
        return {"sex": self.sex, **{name: name for name in self.labels}}


class EHRCodesData(_DataBase):
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
        """What validation needs from the tables: column checks and the persons with every label (cached)."""
        from batchlab.data.ehr_codes import inspect_tables  # deferred: the data package imports this module

        return inspect_tables(self)

    def n_samples_total(self) -> int:
        return self.summary().n_persons

    def input_files(self) -> list[Path]:
        return [self.codes.path, self.demographics.path, *(m.path for m in self.phecode_maps)]

    @model_validator(mode="after")
    def _label_and_tables(self) -> "EHRCodesData":
        if self.label not in self.demographics.label_tasks():
            raise ValueError(
                f"label {self.label!r} is neither sex nor a demographics.labels column {sorted(self.demographics.labels)}"
            )
        self.summary()  # raises ValueError naming the file, the column and the field
        return self


DataSpec = Annotated[
    Union[SyntheticEHRData, PhantomMRIData, DigitsData, Mnist1dData, FileData, BratsData, EHRCodesData],
    Field(discriminator="name"),
]
DATASET_NAMES = ("synthetic_ehr", "phantom_mri", "digits", "mnist1d", "file", "brats", "ehr_codes")

# ---------------------------------------------------------------- models


class DenseAE(Strict):
    """Fully connected autoencoder (the EHR model): dense layers with ReLU down to the latent, mirrored decoder."""

    kind: Literal["dense_ae"]
    hidden: list[PositiveInt] = Field([256, 64], description="Encoder widths; the decoder mirrors them.")
    latent: PositiveInt = Field(32, description="Latent dimension.")
    output: Literal["sigmoid", "linear"] = Field("sigmoid", description="Output activation.")
    loss: Literal["bce", "mse"] = Field("bce", description="Reconstruction loss (bce needs data in [0, 1]).")


class ConvAE(Strict):
    """Convolutional autoencoder for 2-D images or 1-D signals (dimension taken from the data)."""

    kind: Literal["conv_ae"]
    channels: list[PositiveInt] = Field([16, 32], description="Channels of the stride-2 conv layers.")
    latent: PositiveInt = Field(32, description="Latent dimension.")
    output: Literal["sigmoid", "linear"] = Field("linear", description="Output activation.")
    loss: Literal["bce", "mse"] = Field("mse", description="Reconstruction loss.")


class MLPClassifier(Strict):
    """Fully connected classifier: ReLU layers, a `latent`-wide embedding layer, then a linear head."""

    kind: Literal["mlp"]
    hidden: list[PositiveInt] = Field([128], description="Widths of the hidden layers before the embedding layer.")
    latent: PositiveInt = Field(32, description="Width of the last hidden layer, the embedding scored downstream.")


class CNNClassifier(Strict):
    """Small convolutional classifier for 1-D signals or 2-D images: stride-2 convs, embedding layer, head."""

    kind: Literal["cnn"]
    channels: list[PositiveInt] = Field([16, 32], description="Channels of the stride-2 conv layers.")
    latent: PositiveInt = Field(64, description="Width of the embedding layer before the head.")


class ContrastiveEncoder(Strict):
    """Conv encoder trained with InfoNCE on two augmented views, negatives from the batch (SimCLR-style)."""

    kind: Literal["contrastive"]
    channels: list[PositiveInt] = Field([32, 64], description="Channels of the stride-2 conv layers.")
    latent: PositiveInt = Field(64, description="Width of the representation scored downstream.")
    projection: PositiveInt = Field(32, description="Width of the projection head the loss compares.")
    temperature: PositiveFloat = Field(0.2, description="Softmax temperature of InfoNCE.")
    shift: int = Field(4, ge=0, description="Augmentation: largest circular shift along the last axis, in samples.")
    scale: float = Field(0.2, ge=0.0, lt=1.0, description="Augmentation: amplitude scaled by 1 +- up to this.")
    noise: float = Field(0.05, ge=0.0, description="Augmentation: standard deviation of added Gaussian noise.")


CLASSIFIER_KINDS = ("mlp", "cnn")


def widened(model, factor: float):
    """The model spec with its hidden widths (dense `hidden` or conv `channels`) times factor; latent kept."""
    field = "hidden" if hasattr(model, "hidden") else "channels"
    widths = [max(1, int(round(w * factor))) for w in getattr(model, field)]
    return model.model_copy(update={field: widths})
ModelSpec = Annotated[
    Union[DenseAE, ConvAE, MLPClassifier, CNNClassifier, ContrastiveEncoder], Field(discriminator="kind")
]

# ---------------------------------------------------------------- training


class Optim(Strict):
    """Optimizer and learning-rate rule."""

    name: Literal["adam", "sgd"] = Field("adam", description="Adam, or SGD with momentum.")
    lr: PositiveFloat = Field(1e-3, description="Learning rate (at base_batch_size when a scaling rule is used).")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum (ignored by Adam).")
    weight_decay: float = Field(0.0, ge=0.0, description="L2 weight decay.")
    lr_rule: Literal["fixed", "linear", "sqrt", "tuned"] = Field(
        "fixed",
        description="fixed: the same lr at every batch size (the autoencoder paper's 'none'); "
        "linear / sqrt: lr x (B / base_batch_size) or its square root (Goyal et al. 2017); "
        "tuned: every lr of lr_grid at every batch size, the best chosen on validation loss (Shallue et al. 2019).",
    )
    lr_grid: list[PositiveFloat] = Field(
        [], description="Learning rates tried at every batch size when lr_rule is tuned (at least 2)."
    )
    base_batch_size: PositiveInt = Field(32, description="Batch size at which lr applies unscaled.")
    warmup: float = Field(0.0, ge=0.0, lt=1.0, description="Fraction of steps with linear lr warmup from 0.")

    @field_validator("lr_rule", mode="before")
    @classmethod
    def _none_is_fixed(cls, rule: object) -> object:
        return "fixed" if rule == "none" else rule

    @model_validator(mode="after")
    def _grid_for_tuned(self) -> "Optim":
        if self.lr_rule == "tuned" and len(set(self.lr_grid)) < 2:
            raise ValueError("lr_rule 'tuned' needs lr_grid with at least 2 distinct learning rates")
        if self.lr_rule != "tuned" and self.lr_grid:
            raise ValueError(f"lr_grid is only used by lr_rule 'tuned', not {self.lr_rule!r}")
        return self

    def candidate_lrs(self) -> list[float]:
        """The base learning rates a cell trains: the grid when tuned, else lr alone."""
        return sorted(set(self.lr_grid)) if self.lr_rule == "tuned" else [self.lr]


class Budget(Strict):
    """How much training every run gets: the same samples for every batch size, or the same steps."""

    unit: Literal["epochs", "samples", "steps"] = Field(
        "epochs", description="epochs or samples: fixed data budget (steps = budget / batch size); steps: fixed updates."
    )
    amount: PositiveFloat = Field(description="Budget in the chosen unit.")

    def steps(self, batch_size: int, n_train: int) -> int:
        """Optimizer steps for one run at this batch size (at least one)."""
        if self.unit == "steps":
            return max(1, int(round(self.amount)))
        samples = self.amount * n_train if self.unit == "epochs" else self.amount
        return max(1, int(round(samples / batch_size)))


class Training(Strict):
    """How runs are executed: the engine, micro-batching and precision."""

    engine: Literal["auto", "batched", "reference"] = Field(
        "auto",
        description="batched: the runs of a cell (seeds x lr grid) trained together, sharing every kernel launch "
        "(batchlab.training.engine); reference: one run after another by the reference trainer (batchlab.training.reference); "
        "auto: batched on a GPU, reference on a CPU (where batching runs does not pay: docs/benchmarks.md).",
    )
    micro_batch_size: PositiveInt | None = Field(
        None,
        description="Split each batch into micro-batches of this size and accumulate their gradients (same "
        "effective batch); default: the whole batch, halved automatically by the batched engine on CUDA out-of-memory.",
    )
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="fp32, or bf16 autocast of the forward pass (parameters and optimizer state stay fp32)."
    )
    cuda_graphs: Literal["auto", "require", "off"] = Field(
        "auto",
        description="Batched engine on CUDA: replay each step as a captured CUDA graph. auto: capture, and if capture "
        "fails train eagerly, with the reason in the job log and the run table's cuda_graph_fallback column; require: a "
        "failed capture fails the job; off: eager steps. It changes how fast a cell trains, not its numbers, so editing "
        "it retrains nothing.",
    )

    @field_validator("cuda_graphs", mode="before")
    @classmethod
    def _bool_is_auto_or_off(cls, value: object) -> object:
        """true/false, the setting's earlier form, read as auto/off."""
        return {True: "auto", False: "off"}.get(value, value) if isinstance(value, bool) else value


class Downstream(Strict):
    """SVM on the latent embeddings in stratified k-fold cross-validation (the paper's protocol)."""

    folds: int = Field(10, ge=2, le=50, description="Cross-validation folds.")
    kernel: Literal["rbf", "linear"] = Field("rbf", description="SVM kernel.")
    C: PositiveFloat = Field(1.0, description="SVM regularisation.")
    baselines: list[Literal["raw", "pca"]] = Field(
        ["raw", "pca"], description="Reference embeddings: the raw inputs, and PCA with the latent's dimension."
    )


SPREAD_SUBSET_SHARE = 4  # a probe minibatch is at most this fraction of the subset: draws stay mostly distinct


class GradientNoise(Strict):
    """Gradient statistics measured at checkpoints of each run (McCandlish et al. 2018; Vaessen & van Leeuwen 2024)."""

    checkpoints: list[Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        [0.0, 0.25, 1.0], min_length=1, description="Fractions of each run's steps at which to measure (0 = initialisation)."
    )
    seeds: PositiveInt = Field(1, description="Measure the runs of the first this many seeds (cost grows with it).")
    eval_samples: PositiveInt | None = Field(
        None, description="Fixed random subset of the training split the statistics use (default: min(256, training set))."
    )
    method: Literal["per_example", "two_batch"] = Field(
        "per_example",
        description="per_example: exact unbiased tr(Sigma), |G|^2 from torch.func per-example gradients; "
        "two_batch: McCandlish's estimator from minibatch gradient norms at two batch sizes (cheaper).",
    )
    two_batch_sizes: tuple[PositiveInt, PositiveInt] = Field((4, 64), description="B_small and B_big of two_batch.")
    two_batch_draws: PositiveInt = Field(64, description="Minibatch draws per batch size for two_batch.")
    spread_batch_sizes: list[PositiveInt] | None = Field(
        None,
        min_length=2,
        description="Probe batch sizes of the spread sweep, drawn without replacement from the evaluation subset, "
        "each at most a quarter of eval_samples (default: 1, 2, 4, ... up to min(128, eval_samples / 4)).",
    )
    spread_draws: int = Field(10, ge=2, description="Minibatches drawn per batch size for the spread (10 in Vaessen's code).")
    chunk_size: PositiveInt = Field(64, description="Examples per vmap chunk (bounds memory; no effect on results).")

    @field_validator("checkpoints")
    @classmethod
    def _sorted_unique(cls, fractions: list[float]) -> list[float]:
        return sorted(set(fractions))

    @model_validator(mode="after")
    def _increasing(self) -> "GradientNoise":
        small, big = self.two_batch_sizes
        if small >= big:
            raise ValueError(f"two_batch_sizes must be increasing, got {small}, {big}")
        return self

    def eval_size(self, n_train: int) -> int:
        return self.eval_samples if self.eval_samples is not None else min(256, n_train)

    def spread_sizes(self, n_train: int) -> list[int]:
        if self.spread_batch_sizes is not None:
            return sorted(set(self.spread_batch_sizes))
        top = min(128, max(1, self.eval_size(n_train) // SPREAD_SUBSET_SHARE))
        return [2**k for k in range(top.bit_length()) if 2**k <= top]


class Sharpness(Strict):
    """Where each run ended: sharpness of the minimum (Keskar et al. 2017), measured after training."""

    samples: int = Field(
        512, ge=0, description="Fixed training examples the Hessian of the loss is taken on (0: not measured)."
    )
    iters: PositiveInt = Field(20, description="Most Hessian-vector products of the power iteration.")
    tol: PositiveFloat = Field(1e-3, description="Stop when the eigenvalue estimate changes by less than this (relative).")


class StepsToTarget(Strict):
    """Target for steps-to-target and the critical-batch-size fit (McCandlish et al. 2018; Zhang et al. 2025)."""

    metric: Literal["val_loss", "train_loss"] = Field("val_loss", description="Logged curve the target applies to.")
    kind: Literal["fraction", "value", "within_best", "baseline_fraction"] = Field(
        "fraction",
        description="fraction: reach initial - value x (initial - best final of any run); value: reach this loss; "
        "within_best: reach best final x (1 + value); baseline_fraction: reach baseline - value x (baseline - best "
        "final), the baseline being the loss of the best constant prediction fitted on the training split "
        "(each feature's mean for an autoencoder, the class frequencies for a classifier).",
    )
    value: PositiveFloat = Field(0.5, description="The fraction (0-1], the loss value, or the relative margin.")
    interpolate: bool = Field(True, description="Place the crossing between logged points, linearly in log(step).")
    bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples of seeds for the intervals.")

    @model_validator(mode="after")
    def _fraction_range(self) -> "StepsToTarget":
        if self.kind in ("fraction", "baseline_fraction") and self.value > 1:
            raise ValueError(f"a {self.kind} target must be in (0, 1], got {self.value}")
        return self

    def describe(self) -> str:
        """The target in words, for captions and pages."""
        return {
            "value": f"{self.metric} {self.value:g}",
            "fraction": f"{self.value:g} of the best run's improvement in {self.metric} from the initial loss",
            "within_best": f"{self.metric} within {self.value:.0%} of the best run's final value",
            "baseline_fraction": f"{self.value:g} of the best run's improvement in {self.metric} below the data's "
            "baseline (the best constant prediction)",
        }[self.kind]


TO_TARGET_KINDS = ("value", "baseline_ratio", "pilot_fraction")


class ToTarget(Strict):
    """A train-to-target analysis of the critical batch size beside the fixed-budget sweep (McCandlish et al. 2018).

    Every batch size trains until its validation loss reaches a target known before training, or until the
    cap; the study's critical-batch estimates then come from these runs' steps to the target.
    """

    kind: Literal[TO_TARGET_KINDS] = Field(
        "pilot_fraction",
        description="value: reach this validation loss; baseline_ratio: reach value x the data's baseline (the loss "
        "of the best constant prediction); pilot_fraction: reach baseline - value x (baseline - pilot), the pilot being "
        "the mean final validation loss of the fixed-budget sweep's smallest batch size (value 1: the pilot's own loss).",
    )
    value: PositiveFloat = Field(0.5, description="The loss, the ratio to the baseline, or the share of the pilot's improvement.")
    cap: Budget = Field(description="Most training a run gets if it does not reach the target (epochs or samples).")
    batch_sizes: list[PositiveInt] | None = Field(None, min_length=1, description="Batch sizes (default: the study's).")
    seeds: list[Annotated[int, Field(ge=0)]] | None = Field(
        None, min_length=2, description="Seeds, at least 2 for the intervals (default: the study's first two)."
    )
    checks: int = Field(
        100, ge=4, le=1000, description="Log-spaced steps over the cap at which the target is checked and the curve logged."
    )
    gradient_seeds: PositiveInt = Field(
        2, description="Seeds whose gradient noise is measured where their runs stopped: at the target, when they reached it."
    )

    @field_validator("cap")
    @classmethod
    def _cap_in_samples(cls, cap: Budget) -> Budget:
        if cap.unit == "steps":
            raise ValueError("the cap must be in epochs or samples, the same data for every batch size")
        return cap

    @field_validator("batch_sizes")
    @classmethod
    def _sorted_unique(cls, sizes: list[int] | None) -> list[int] | None:
        return None if sizes is None else sorted(_no_repeats(sizes, "to_target.batch_sizes"))

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int] | None) -> list[int] | None:
        return None if seeds is None else _no_repeats(seeds, "to_target.seeds")

    @model_validator(mode="after")
    def _share_in_range(self) -> "ToTarget":
        if self.kind == "pilot_fraction" and self.value > 1:
            raise ValueError(f"a pilot_fraction target must be in (0, 1], got {self.value}")
        if self.gradient_seeds > len(self.seeds or [0, 1]):
            raise ValueError(f"gradient_seeds ({self.gradient_seeds}) exceeds the number of seeds")
        return self

    def describe(self) -> str:
        """The target in words, for captions and pages."""
        return {
            "value": f"validation loss {self.value:g}",
            "baseline_ratio": f"{self.value:g} x the data's baseline (the best constant prediction)",
            "pilot_fraction": f"{self.value:g} of the pilot's improvement below the data's baseline (the pilot: "
            "the fixed-budget sweep's smallest batch size)",
        }[self.kind]


CLAIM_METRICS = (
    "train_loss", "val_loss", "test_loss",
    "svm_roc_auc_mean", "svm_accuracy_mean", "svm_r2_mean", "svm_mae_mean",
    "distance_from_init", "sharpness", "generalization_gap",
    "train_accuracy", "val_accuracy", "test_accuracy", "accuracy_gap",
    "gradient_spread", "gradient_noise_scale", "critical_batch_size",
)
CLAIM_EXPECTATIONS = (
    "increases_with_batch_size", "decreases_with_batch_size",
    "predicted_by_samples_seen", "holds_until_critical_batch",
    "flattens_with_batch_size", "predicts_critical_batch",
    "increases_with_data_size", "flat_with_model_size",
)
SCALING_EXPECTATIONS = ("increases_with_data_size", "flat_with_model_size")
CURVE_METRICS = ("train_loss", "val_loss")
GRADIENT_METRICS = ("gradient_spread", "gradient_noise_scale")
# expectations that only one metric can carry, and that metric
ONLY_WITH = {
    "flattens_with_batch_size": "gradient_spread",
    "predicts_critical_batch": "gradient_noise_scale",
    **dict.fromkeys(SCALING_EXPECTATIONS, "critical_batch_size"),
}
DEFAULT_TOLERANCE = {
    "holds_until_critical_batch": 0.05,
    "flat_with_model_size": 0.25,
    "flattens_with_batch_size": 0.1,
    "predicts_critical_batch": 3.0,
}


class Claim(Strict):
    """A published finding the study tests; the report gives it a verdict (see batchlab.analysis.claims)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Short slug naming the claim.")
    source: str = Field(description="Where the claim comes from (paper, section).")
    metric: Literal[CLAIM_METRICS] = Field(
        description="A column of the study's run table; gradient_spread (the spread of minibatch gradients of each "
        "measured run at its own batch size, at the last checkpoint); gradient_noise_scale (B_simple at the "
        "checkpoint closest to each run's crossing of the target); or critical_batch_size (across a scaling grid)."
    )
    expect: Literal[CLAIM_EXPECTATIONS] = Field(
        description="What is claimed: increases_/decreases_with_batch_size (trend over the sweep); "
        "predicted_by_samples_seen (a curve metric follows samples seen better than steps or batch size); "
        "holds_until_critical_batch (the metric at the fixed budget matches the smallest batch size's up to "
        "the fitted B_crit and is worse beyond); flattens_with_batch_size (gradient_spread falls more slowly "
        "than B^-1/2); predicts_critical_batch (gradient_noise_scale: B_simple / B_crit lies within a factor "
        "of 1); increases_with_data_size / flat_with_model_size (critical_batch_size across a scaling grid)."
    )
    tolerance: PositiveFloat | None = Field(
        None,
        description="holds_until_critical_batch: largest relative change that counts as 'the same' (default 0.05); "
        "flat_with_model_size: largest |slope| of log B_crit on log width that counts as flat (default 0.25); "
        "flattens_with_batch_size: how far above -1/2 the slope of log spread on log B must lie (default 0.1); "
        "predicts_critical_batch: the factor within which B_simple must match B_crit (default 3, above 1).",
    )

    @model_validator(mode="after")
    def _metric_fits_expectation(self) -> "Claim":
        needed = ONLY_WITH.get(self.expect)
        if needed is not None and self.metric != needed:
            raise ValueError(f"claim {self.id!r}: expect {self.expect} goes with metric {needed}")
        if self.metric in ("critical_batch_size", "gradient_noise_scale") and self.expect not in ONLY_WITH:
            allowed = sorted(e for e, m in ONLY_WITH.items() if m == self.metric)
            raise ValueError(f"claim {self.id!r}: metric {self.metric} goes with expect {' or '.join(allowed)}")
        if self.expect == "predicted_by_samples_seen" and self.metric not in CURVE_METRICS:
            raise ValueError(f"claim {self.id!r}: predicted_by_samples_seen needs a logged curve metric {CURVE_METRICS}")
        if self.expect == "holds_until_critical_batch" and self.metric in GRADIENT_METRICS:
            raise ValueError(f"claim {self.id!r}: holds_until_critical_batch needs a run-table metric")
        if self.tolerance is not None and self.expect not in DEFAULT_TOLERANCE:
            raise ValueError(f"claim {self.id!r}: tolerance applies to {', '.join(DEFAULT_TOLERANCE)} only")
        if self.expect == "predicts_critical_batch" and self.tolerance is not None and self.tolerance <= 1:
            raise ValueError(f"claim {self.id!r}: the factor of predicts_critical_batch must exceed 1, got {self.tolerance}")
        return self

    def tolerance_or_default(self) -> float:
        return self.tolerance if self.tolerance is not None else DEFAULT_TOLERANCE.get(self.expect, 0.0)


class Scaling(Strict):
    """A data-size x model-size grid (Zhang et al. 2025): the study is run once per (train_samples, width)."""

    train_samples: list[PositiveInt] = Field(
        min_length=1, description="Training-set sizes (nested seeded subsets of the training split)."
    )
    width_factors: list[PositiveFloat] = Field(
        [1.0], min_length=1, description="Multipliers of the model's hidden widths (hidden or channels); latent kept."
    )

    @model_validator(mode="after")
    def _grid(self) -> "Scaling":
        if len(set(self.train_samples)) != len(self.train_samples):
            raise ValueError(f"train_samples repeat: {self.train_samples}")
        if len(set(self.width_factors)) != len(self.width_factors):
            raise ValueError(f"width_factors repeat: {self.width_factors}")
        if len(self.train_samples) * len(self.width_factors) < 2:
            raise ValueError("a scaling grid needs at least two cells (two train_samples or two width_factors)")
        self.train_samples.sort()
        self.width_factors.sort()
        return self

    def cells(self) -> list[tuple[int, float]]:
        """(train_samples, width_factor) of every cell, in the grid's order (sizes outer, widths inner)."""
        return [(n, w) for n in self.train_samples for w in self.width_factors]


def variant_name(study_name: str, train_samples: int, width: float) -> str:
    """The name of one cell of a scaling grid, e.g. mnist1d_scaling-n2000-w0p5."""
    return f"{study_name}-n{train_samples}-w{format(width, 'g').replace('.', 'p')}"


def _or_powers_of_two(schema: dict) -> None:
    """The batch sizes' JSON schema: a list, or the word the validator expands."""
    listed = {k: v for k, v in schema.items() if k not in ("title", "description")}
    for key in listed:
        del schema[key]
    schema["anyOf"] = [listed, {"const": "powers_of_two", "type": "string"}]


class Study(Strict):
    """One batch-size study: a data set, a model, a training protocol and the sweep."""

    description: str = Field("", description="One line shown at the top of the study's report.")
    data: DataSpec
    model: ModelSpec
    optim: Optim = Field(default_factory=Optim)
    budget: Budget
    training: Training = Field(default_factory=Training, description="Training engine, micro-batching and precision.")
    batch_sizes: list[PositiveInt] = Field(
        min_length=1,
        description="Batch sizes of the sweep, or powers_of_two: 1, 2, 4, ... up to the training split.",
        json_schema_extra=_or_powers_of_two,
    )
    seeds: list[Annotated[int, Field(ge=0)]] = Field([0, 1, 2], min_length=1, description="Training seeds.")
    curve_points: int = Field(40, ge=2, le=1000, description="Log-spaced points of each logged loss curve.")
    eval_batch_size: PositiveInt = Field(1024, description="Batch size for evaluation passes (no effect on results).")
    downstream: Downstream = Field(default_factory=Downstream)
    gradients: GradientNoise = Field(default_factory=GradientNoise)
    steps_to_target: StepsToTarget = Field(default_factory=StepsToTarget)
    sharpness: Sharpness = Field(default_factory=Sharpness)
    claims: list[Claim] = Field([], description="Published claims to test; the report's scorecard gives each a verdict.")
    scaling: Scaling | None = Field(
        None, description="Run the study over a grid of training-set sizes and model widths (Zhang et al. 2025)."
    )
    to_target: ToTarget | None = Field(
        None,
        description="Also train every batch size to a target known before training; the critical batch size is then "
        "measured from those runs (config/README.md: to_target).",
    )

    @field_validator("batch_sizes", mode="before")
    @classmethod
    def _powers_of_two(cls, sizes: object, info: ValidationInfo) -> object:
        if sizes != "powers_of_two":
            return sizes
        data = info.data.get("data")
        if data is None:  # the data block is invalid and already reported; this field adds nothing
            return [1]
        return [2**k for k in range(data.n_train().bit_length())]

    @field_validator("batch_sizes")
    @classmethod
    def _fit_training_set(cls, sizes: list[int], info: ValidationInfo) -> list[int]:
        if len(set(sizes)) != len(sizes):
            raise ValueError(f"batch sizes repeat: {sizes}")
        data = info.data.get("data")
        if data is not None:
            n_train = data.n_train()
            too_big = [b for b in sizes if b > n_train]
            if too_big:
                raise ValueError(f"batch size {too_big[0]} is larger than the training set ({n_train} samples)")
        return sorted(sizes)

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        return _no_repeats(seeds, "seeds")

    def variants(self, name: str) -> dict[str, "Study"]:
        """The studies a scaling grid runs, by name (the study itself when it has no grid).

        Each cell trains on `train_samples` of the training split with widths times the factor; it keeps the
        per-batch-size claims, while the grid's own claims are tested across cells (batchlab.analysis.scaling).
        """
        if self.scaling is None:
            return {name: self}
        return {
            variant_name(name, n, w): self.model_copy(
                update={
                    "description": f"{self.description} [scaling cell: {n} training samples, width x{w:g}]".strip(),
                    "data": self.data.model_copy(update={"train_samples": n}),
                    "model": widened(self.model, w),
                    "claims": [c for c in self.claims if c.expect not in SCALING_EXPECTATIONS],
                    "scaling": None,
                }
            )
            for n, w in self.scaling.cells()
        }

    def cell_view(self, batch_size: int) -> "Study":
        """The study as one training cell sees it: only what changes its runs.

        Jobs receive this view (not the whole study) so that adding a batch size or editing the
        description, downstream settings or operational settings (`training.cuda_graphs`) reruns no
        training job; the train rule passes those apart, as parameters Snakemake does not track.
        """
        return self.model_copy(
            update={
                "batch_sizes": [batch_size],
                "description": "",
                "downstream": Downstream(),
                "gradients": GradientNoise(checkpoints=self.gradients.checkpoints, seeds=self.gradients.seeds),
                "steps_to_target": StepsToTarget(),
                "claims": [],
                "scaling": None,
                "to_target": None,
                "training": self.training.model_copy(update={"cuda_graphs": "auto"}),
            }
        )

    def to_target_view(self) -> "Study":
        """The study the train-to-target runs are: the cap as the budget, its batch sizes and seeds, the target
        checked at `checks` log-spaced steps, weights kept where a run stops; no sharpness, SVMs or claims."""
        t = self.to_target
        if t is None:
            raise ValueError("the study has no to_target block")
        seeds = t.seeds or self.seeds[:2]
        g = self.gradients
        return self.model_copy(
            update={
                "budget": t.cap,
                "batch_sizes": t.batch_sizes or self.batch_sizes,
                "seeds": seeds,
                "curve_points": t.checks,
                "gradients": g.model_copy(update={"checkpoints": [1.0], "seeds": t.gradient_seeds}),
                "sharpness": Sharpness(samples=0),
                "steps_to_target": StepsToTarget(metric="val_loss", kind="value", value=1.0,
                                                 interpolate=self.steps_to_target.interpolate,
                                                 bootstrap=self.steps_to_target.bootstrap),
                "claims": [],
                "scaling": None,
                "to_target": None,
            }
        )

    @property
    def is_classifier(self) -> bool:
        return self.model.kind in CLASSIFIER_KINDS

    @model_validator(mode="after")
    def _loss_fits_data(self) -> "Study":
        if getattr(self.model, "loss", None) == "bce" and self.model.output != "sigmoid":
            raise ValueError("model.loss 'bce' needs model.output 'sigmoid'")
        if self.is_classifier and self.data.target_task() == "regression":
            raise ValueError(f"model.kind {self.model.kind!r} is a classifier, but the data's label is a regression target")
        if self.steps_to_target.kind == "baseline_fraction" and self.model.kind == "contrastive":
            raise ValueError(
                "steps_to_target.kind 'baseline_fraction' needs a baseline the data define (a constant prediction), "
                "which a contrastive loss has not; use fraction, within_best or value"
            )
        n_train = self.data.n_train()
        n_eval = self.gradients.eval_size(n_train)
        if n_eval > n_train:
            raise ValueError(f"gradients.eval_samples ({n_eval}) exceeds the training set ({n_train})")
        too_big = [b for b in self.gradients.spread_sizes(n_train) if b * SPREAD_SUBSET_SHARE > n_eval]
        if too_big:
            raise ValueError(
                f"gradients.spread_batch_sizes {too_big} exceed a quarter of gradients.eval_samples ({n_eval}): "
                "minibatches drawn without replacement from the subset would overlap so much that their spread "
                "shrinks by construction (to 0 at the subset's size); lower them or raise eval_samples"
            )
        smallest, folds = self.data.smallest_class(), self.downstream.folds
        if smallest is not None and smallest < folds:
            raise ValueError(
                f"data: {self.data.origin()}: the rarest class of {self.data.label!r} has {smallest} samples, "
                f"fewer than downstream.folds ({folds}); lower the folds or add samples"
            )
        if isinstance(self.data, (FileData, EHRCodesData)) and self.data.n_samples_total() < folds:
            raise ValueError(f"data: {self.data.origin()}: fewer samples than downstream.folds ({folds})")
        ids = [c.id for c in self.claims]
        if len(set(ids)) != len(ids):
            raise ValueError(f"claims: ids repeat: {ids}")
        scaling_claims = [c.id for c in self.claims if c.expect in SCALING_EXPECTATIONS]
        if scaling_claims and self.scaling is None:
            raise ValueError(f"claims {scaling_claims} are about a scaling grid, but the study has no `scaling` block")
        if self.scaling is not None:
            too_big = [n for n in self.scaling.train_samples if n > self.data.n_train_full()]
            if too_big:
                raise ValueError(
                    f"scaling.train_samples {too_big} exceed the training split ({self.data.n_train_full()} samples)"
                )
            small = min(self.scaling.train_samples)
            if max(self.batch_sizes) > small:
                raise ValueError(f"batch size {max(self.batch_sizes)} is larger than scaling.train_samples {small}")
            wanted = {c.expect for c in self.claims}
            if "increases_with_data_size" in wanted and len(self.scaling.train_samples) < 2:
                raise ValueError("a claim about data size needs at least two scaling.train_samples")
            if "flat_with_model_size" in wanted and len(self.scaling.width_factors) < 2:
                raise ValueError("a claim about model size needs at least two scaling.width_factors")
        if self.to_target is not None:
            t = self.to_target
            default = StepsToTarget()  # compared with the defaults, not model_fields_set: JSON round trips set every field
            unused = [k for k in ("kind", "metric", "value") if getattr(self.steps_to_target, k) != getattr(default, k)]
            if unused:
                raise ValueError(
                    f"steps_to_target.{', steps_to_target.'.join(unused)} would not be used: with to_target the critical "
                    "batch size is measured at to_target's target; remove them (interpolate and bootstrap still apply)"
                )
            if t.kind != "value" and self.model.kind == "contrastive":
                raise ValueError(
                    f"to_target.kind {t.kind!r} needs the data's baseline (a constant prediction), which a contrastive "
                    "loss has not; use kind: value"
                )
            if t.seeds is None and len(self.seeds) < 2:
                raise ValueError("to_target needs at least 2 seeds: set to_target.seeds or add study seeds")
            limit = self.data.n_train() if self.scaling is None else min(self.scaling.train_samples)
            too_big = [b for b in (t.batch_sizes or []) if b > limit]
            if too_big:
                raise ValueError(f"to_target.batch_sizes {too_big} exceed the training set ({limit} samples)")
        if self.gradients.seeds > len(self.seeds):
            raise ValueError(f"gradients.seeds ({self.gradients.seeds}) exceeds the number of seeds ({len(self.seeds)})")
        gradient_claims = [c.id for c in self.claims if c.metric in GRADIENT_METRICS]
        if gradient_claims and self.gradients.seeds < 2:
            raise ValueError(
                f"claims {gradient_claims} resample the seeds whose gradients were measured: set gradients.seeds to at least 2"
            )
        if gradient_claims and max(self.gradients.checkpoints) == 0:
            raise ValueError(f"claims {gradient_claims} need a gradients.checkpoints fraction above 0 (a trained model)")
        if gradient_claims and self.to_target is not None and self.to_target.gradient_seeds < 2:
            raise ValueError(f"claims {gradient_claims} resample the seeds measured at the target: set to_target.gradient_seeds to at least 2")
        noise_claims = [c.id for c in self.claims if c.metric == "gradient_noise_scale"]
        if noise_claims and self.model.kind == "contrastive":
            raise ValueError(f"claims {noise_claims}: the gradient noise scale is not defined for an in-batch (contrastive) loss")
        if self.model.kind == "contrastive" and self.training.cuda_graphs == "require":
            raise ValueError(
                "training.cuda_graphs: require cannot be met by a contrastive model, whose views are drawn on the host "
                "at every step (a graph would replay one step's views); use auto or off"
            )
        return self


class Config(Strict):
    """The whole configuration file."""

    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: a GPU when one is present.")
    checkpoint_every_s: PositiveFloat = Field(
        300.0,
        description="Seconds between saves of a training run's state, from which a killed job resumes (no effect on results).",
    )
    warm_start: bool = Field(
        True,
        description="Start each job of a local run in a process forked from a server that has already loaded its "
        "libraries (Linux; no effect on results). false: every job starts its own interpreter.",
    )
    warn_above_hours: PositiveFloat = Field(
        2.0,
        description="Warn (batchlab validate, and every run as it starts) when the config's estimated time on this "
        "machine exceeds this many hours, naming the costliest cells (no effect on results).",
    )
    compare_with: Path | None = Field(
        None,
        description="The working folder (results/ and reports/) of a finished run of this config elsewhere, for "
        "example on another device; relative paths from the folder the pipeline runs in. The report then lists every "
        "claim whose verdict differs between the two runs and each metric's differences (no effect on results).",
    )
    studies: dict[str, Study] = Field(min_length=1, description="Studies by name (letters, digits, _ and -).")

    @field_validator("compare_with")
    @classmethod
    def _finished_run(cls, path: Path | None) -> Path | None:
        if path is None:
            return None
        if _existing(path, "folder").resolve() == Path.cwd().resolve():
            raise ValueError(f"{path}: is this run's own folder; name another run's")
        if not finished_run.table_files(path):
            raise ValueError(f"{path}: not a finished run's working folder (it has no {finished_run.RUN_TABLES})")
        return path

    @field_validator("studies")
    @classmethod
    def _names_are_paths(cls, studies: dict[str, Study]) -> dict[str, Study]:
        for name in studies:
            if not STUDY_NAME.match(name):
                raise ValueError(f"study name {name!r} must use only letters, digits, '_' and '-'")
        seen: set[str] = set(studies)
        for name, study in studies.items():
            if study.scaling is None:
                continue
            clash = seen & set(study.variants(name))
            if clash:
                raise ValueError(f"study names {sorted(clash)} clash with the scaling cells of {name!r}")
            seen |= set(study.variants(name))
        return studies

    def runnable_studies(self) -> dict[str, Study]:
        """Every study the pipeline trains: plain studies as written, scaling grids expanded into their cells."""
        return {k: v for name, study in self.studies.items() for k, v in study.variants(name).items()}

    def scaling_studies(self) -> dict[str, Study]:
        """The studies with a scaling grid, whose cells are analysed together."""
        return {name: study for name, study in self.studies.items() if study.scaling is not None}


# ---------------------------------------------------------------- loading


def _location(loc: tuple) -> str:
    parts = [str(p) for p in loc]
    if len(parts) >= 2 and parts[0] == "studies":
        field = ".".join(_drop_union_tags(parts[2:]))
        return f"study {parts[1]!r}, field {field!r}" if field else f"study {parts[1]!r}"
    return f"field {'.'.join(parts) or '(top level)'!r}"


def _drop_union_tags(parts: list[str]) -> list[str]:
    tags = set(DATASET_NAMES) | {"dense_ae", "conv_ae"}
    return [p for p in parts if p not in tags]


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line per problem: the file, the study, the field and what is wrong."""
    lines = [f"{source}: invalid configuration ({err.error_count()} problem(s))"]
    for e in err.errors():
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"  {source}: {_location(e['loc'])}: {msg}")
    return "\n".join(lines)


def validate_config(raw: object, source: str = "<config>") -> Config:
    """Validate a parsed config mapping; raise ConfigError naming file, study and field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the configuration must be a mapping, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def load_config(path: str | Path) -> Config:
    """Read a YAML config safely (no tags, no code) and validate it."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: malformed YAML: {err}") from None
    return validate_config(raw, str(path))


def study_from_json(text: str) -> Study:
    """Rebuild a validated study from the JSON the workflow passes to each job."""
    return Study.model_validate_json(text)


def data_from_json(text: str) -> _DataBase:
    """Rebuild a validated `data` block from JSON."""
    return TypeAdapter(DataSpec).validate_json(text)


def json_schema() -> dict:
    """JSON schema of the config file (draft 2020-12), for editors and the drift test."""
    schema = Config.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": "batchlab config"}
