"""Loading a config: YAML to validated models, errors as one line per problem, and the JSON schema."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import yaml
from pydantic import TypeAdapter, ValidationError

from batchlab.config.base import ConfigError
from batchlab.config.data import DATASET_NAMES, DataSpec, _DataBase
from batchlab.config.study import Config, Study

Inspector = Callable[[_DataBase], object]


def _location(loc: tuple) -> str:
    parts = [str(p) for p in loc]
    if len(parts) >= 2 and parts[0] == "studies":
        field = ".".join(_drop_union_tags(parts[2:]))
        return f"study {parts[1]!r}, field {field!r}" if field else f"study {parts[1]!r}"
    return f"field {'.'.join(parts) or '(top level)'!r}"


def _drop_union_tags(parts: list[str]) -> list[str]:
    tags = set(DATASET_NAMES) | {"dense_ae", "conv_ae", "linear", "quadratic", "python"}
    return [p for p in parts if p not in tags]


def format_validation_error(err: ValidationError, source: str) -> str:
    """One line per problem: the file, the study, the field and what is wrong."""
    lines = [f"{source}: invalid configuration ({err.error_count()} problem(s))"]
    for e in err.errors():
        msg = e["msg"].removeprefix("Value error, ")
        lines.append(f"  {source}: {_location(e['loc'])}: {msg}")
    return "\n".join(lines)


def validate_config(raw: object, source: str = "<config>", inspect: Inspector | None = None) -> Config:
    """Validate a parsed config mapping; raise ConfigError naming file, study and field.

    inspect (batchlab.data.inspect.inspect_files) reads and checks a user's data files; without it
    they are not read, and the checks that need what they hold are skipped.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the configuration must be a mapping, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw, context={"inspect": inspect})
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source)) from None


def load_config(path: str | Path, inspect: Inspector | None = None) -> Config:
    """Read a YAML config safely (no tags, no code) and validate it (with file checks when inspect is given)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: malformed YAML: {err}") from None
    return validate_config(raw, str(path), inspect)


def study_from_json(text: str) -> Study:
    """Rebuild a validated study from the JSON the workflow passes to each job; its files are not read again."""
    return Study.model_validate_json(text)


def data_from_json(text: str) -> _DataBase:
    """Rebuild a validated `data` block from JSON, without reading its files."""
    return TypeAdapter(DataSpec).validate_json(text)


def json_schema() -> dict:
    """JSON schema of the config file (draft 2020-12), for editors and the drift test."""
    schema = Config.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "title": "batchlab config"}
