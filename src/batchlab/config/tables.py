"""The tables of an EHR code data set: the code table, the ICD -> PheCode maps and the demographics."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from batchlab.config.base import Strict, _existing, _inspector

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
    def _table(cls, path: Path, info: ValidationInfo) -> Path:
        return _existing(path, "file", TABLE_SUFFIXES, check=_inspector(info) is not None)


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
    def _table(cls, path: Path, info: ValidationInfo) -> Path:
        return _existing(path, "file", TABLE_SUFFIXES, check=_inspector(info) is not None)

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
    def _table(cls, path: Path, info: ValidationInfo) -> Path:
        return _existing(path, "file", TABLE_SUFFIXES, check=_inspector(info) is not None)

    def label_tasks(self) -> dict[str, str]:
        """Every label of the data set (sex first) and its kind, by label name."""
        return {"sex": "classification", **self.labels}

    def label_columns(self) -> dict[str, str]:
        """The table column of every label, by label name."""
        return {"sex": self.sex, **{name: name for name in self.labels}}
