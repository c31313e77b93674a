"""The data section of a study's report: where the samples came from, what was left out, and examples."""

from __future__ import annotations

import csv
import io as io_text
from pathlib import Path

import numpy as np

from batchlab import io
from batchlab.data import Dataset
from batchlab.report import figures

EXAMPLES = 8
TABLE_ROWS, TABLE_COLUMNS = 40, 300
MAX_LISTED_INPUTS = 20  # provenance.json lists the input files themselves up to this many (tables, maps)


def example_indices(data: Dataset, limit: int) -> np.ndarray:
    """Up to `limit` samples spread over the target's classes, one per group (case) where there are groups."""
    first = np.unique(data.groups, return_index=True)[1] if data.groups is not None else np.arange(len(data.x))
    y = data.labels[data.target][first]
    if data.tasks[data.target] != "classification":
        return np.sort(first[np.linspace(0, len(first) - 1, min(limit, len(first))).astype(int)])
    per_class = [first[y == k] for k in np.unique(y)]
    take = max(1, limit // len(per_class))
    return np.concatenate([members[:take] for members in per_class])


def label_names(data: Dataset, indices: np.ndarray) -> list[str]:
    y = data.labels[data.target][indices]
    classes = (data.source or {}).get("classes")
    if data.tasks[data.target] == "classification":
        return [f"{data.target}: {classes[int(v)] if classes else int(v)}" for v in y]
    return [f"{data.target}: {float(v):.3g}" for v in y]


def describe_data(data: Dataset, out_dir: str | Path) -> tuple[dict, tuple]:
    """Write data_inputs.csv (the input files with their checksums); return the page's data section and the
    call that draws data_examples.png (figure function and arguments), drawn with the study's other figures."""
    out = Path(out_dir)
    source = data.source or {}
    limit = TABLE_ROWS if data.x.ndim == 2 else EXAMPLES
    idx = example_indices(data, limit)
    x = data.x[idx][:, :TABLE_COLUMNS] if data.x.ndim == 2 else data.x[idx]
    channels = (source.get("channels") or [f"channel {c}" for c in range(data.x.shape[1])]) if data.x.ndim == 4 else []
    features = source.get("features", [])[:TABLE_COLUMNS] if data.x.ndim == 2 else []
    examples = (
        figures.data_examples,
        (x, label_names(data, idx), channels, out / "data_examples.png", f"{data.name}: example inputs", features),
    )
    io.write_text(source.get("inputs_csv", "role,path,bytes,sha256\n"), out / "data_inputs.csv")
    n_groups = len(np.unique(data.groups)) if data.groups is not None else None
    inputs = [{**row, "bytes": int(row["bytes"])} for row in csv.DictReader(io_text.StringIO(source.get("inputs_csv", "")))]
    section = {
        "counts": source.get("counts", []),
        "left_out": source.get("left_out", []),
        "unmapped": source.get("unmapped", []),
        "grouped_by": source.get("grouped_by") if n_groups is not None else None,
        "n_groups": n_groups,
        "n_samples": int(len(data.x)),
        "inputs_kind": source.get("inputs_kind"),
        "inputs_sha256": source.get("inputs_sha256"),
        "inputs": inputs,
        "caption": source.get("examples_caption", "Example inputs with their labels.")
        + (f" One per {source['grouped_by']}." if n_groups is not None else ""),
    }
    return section, examples


def data_provenance(section: dict) -> dict:
    """What provenance.json records of the data: the input manifest's checksum, the counts, and few-file inputs in full."""
    if not section["inputs"]:
        return {}
    return {
        "inputs_kind": section["inputs_kind"],
        "inputs_file": "data_inputs.csv",
        "inputs_sha256": section["inputs_sha256"],
        "n_input_files": len(section["inputs"]),
        **({"inputs": section["inputs"]} if len(section["inputs"]) <= MAX_LISTED_INPUTS else {}),
        "counts": {str(name): value for name, value in section["counts"]},
    }
