"""Typed configuration: the pydantic models every part of batchlab reads, one module per concern.

Every name is re-exported here, so `from batchlab.config import Study` works as before the split. This
package imports nothing of batchlab.data: a user's files are read through the inspector passed to
validate_config / load_config (batchlab.data.inspect.inspect_files).
"""

from batchlab.config.advise import Advise
from batchlab.config.base import ConfigError, FilesNotChecked, Strict
from batchlab.config.claims import (
    CLAIM_EXPECTATIONS, CLAIM_METRICS, CURVE_METRICS, DEFAULT_TOLERANCE, GRADIENT_METRICS, ONLY_WITH,
    SCALING_EXPECTATIONS, TREND_EXPECTATIONS, Claim, Scaling, Verdicts,
)
from batchlab.config.data import (
    BRATS_MODALITIES, DATASET_NAMES, BratsData, DataSpec, DigitsData, EHRCodesData, FileData, Mnist1dData,
    NoisyQuadraticData, PhantomMRIData, Split, SyntheticEHRData, split_sizes,
)
from batchlab.config.load import (
    data_from_json, format_validation_error, json_schema, load_config, study_from_json, validate_config,
)
from batchlab.config.measures import (
    SPREAD_SUBSET_SHARE, TO_TARGET_KINDS, Downstream, EqualSteps, GradientNoise, RateGrid, Sharpness, StepsToTarget,
    ToTarget, WeightAveraging,
)
from batchlab.config.models import (
    CLASSIFIER_KINDS, CNNClassifier, ContrastiveEncoder, ConvAE, DenseAE, DiagonalQuadratic, LinearRegression,
    MLPClassifier, ModelSpec, PythonModel, import_factory, is_classifier, widened,
)
from batchlab.config.study import STUDY_NAME, Config, Study, variant_name
from batchlab.config.tables import TABLE_SUFFIXES, VOCABULARIES, CodeTable, Demographics, PhecodeMap
from batchlab.config.training import Budget, Optim, Training

__all__ = [
    "Advise",
    "BRATS_MODALITIES", "CLAIM_EXPECTATIONS", "CLAIM_METRICS", "CLASSIFIER_KINDS", "CURVE_METRICS", "DATASET_NAMES",
    "DEFAULT_TOLERANCE", "GRADIENT_METRICS", "ONLY_WITH", "SCALING_EXPECTATIONS", "SPREAD_SUBSET_SHARE", "STUDY_NAME",
    "TABLE_SUFFIXES", "TO_TARGET_KINDS", "TREND_EXPECTATIONS", "VOCABULARIES",
    "BratsData", "Budget", "CNNClassifier", "Claim", "CodeTable", "Config", "ConfigError", "ContrastiveEncoder",
    "ConvAE", "DataSpec", "Demographics", "DenseAE", "DiagonalQuadratic", "DigitsData", "Downstream", "EHRCodesData", "EqualSteps",
    "FileData", "FilesNotChecked", "GradientNoise", "LinearRegression", "MLPClassifier", "Mnist1dData", "ModelSpec",
    "NoisyQuadraticData", "Optim", "PythonModel",
    "PhantomMRIData", "PhecodeMap", "RateGrid", "Scaling", "Sharpness", "Split", "StepsToTarget", "Strict", "Study", "SyntheticEHRData", "ToTarget",
    "Training", "Verdicts", "WeightAveraging",
    "data_from_json", "format_validation_error", "json_schema", "load_config", "split_sizes", "study_from_json",
    "import_factory", "is_classifier", "validate_config", "variant_name", "widened",
]  # fmt: skip
