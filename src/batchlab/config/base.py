"""What every config model shares: the strict base, the error type and small validation helpers."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationInfo


class ConfigError(ValueError):
    """A configuration problem, with a message that names the file, study and field."""


class FilesNotChecked(RuntimeError):
    """A file-backed data spec was asked for facts read from its files, but was validated without file checks."""


def _no_repeats(values: list, what: str) -> list:
    """The list itself when no value repeats; else a ValueError saying which list."""
    if len(set(values)) != len(values):
        raise ValueError(f"{what} repeat: {values}")
    return values


def _inspector(info: ValidationInfo):
    """The file inspector the validation context carries; None when a user's files are not to be touched."""
    return (info.context or {}).get("inspect")


def _existing(path: Path, kind: str, suffixes: tuple[str, ...] = (), check: bool = True) -> Path:
    """The path itself if it is an existing file or folder of the right type; else a ValueError naming it.

    With check false only the type is checked: a job rebuilding its study from JSON does not touch the files.
    """
    if suffixes and not path.name.lower().endswith(suffixes):
        raise ValueError(f"{path}: unsupported file type (use {' or '.join(suffixes)})")
    if not check:
        return path
    exists = path.is_dir() if kind == "folder" else path.is_file()
    if not exists:
        raise ValueError(f"{path}: no such {kind}")
    return path


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, so typos are caught."""

    model_config = ConfigDict(extra="forbid", validate_default=True)
