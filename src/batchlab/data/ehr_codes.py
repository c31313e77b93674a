"""EHR as a long table of ICD codes: mapped to PheCodes, one binary row per person, labels from demographics.

The code table holds one row per (person, code) event with the code's vocabulary, ICD-9-CM or
ICD-10-CM, since some codes are spelled alike in both. Each code is looked up in the PheCode maps of its
own vocabulary (the PheWAS catalogue's ICD -> PheCode CSVs); matching ignores dots, spaces and case.
A person is a row of the matrix when the demographics table has them with every label; persons who
appear only in the code table are dropped and counted. A PheCode is a column when at least
`min_prevalence` of the persons carry it (with 0, every PheCode of the maps is a column).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from batchlab.config import EHRCodesData, PhecodeMap
from batchlab.data import Dataset, with_split
from batchlab.data.files import read_table, table_columns
from batchlab.provenance import inputs_manifest

SPELLINGS = {
    "ICD9CM": "ICD-9-CM", "ICD9": "ICD-9-CM", "9": "ICD-9-CM",
    "ICD10CM": "ICD-10-CM", "10": "ICD-10-CM",
}  # fmt: skip
UNMAPPED_SHOWN = 20


def as_text(values: pd.Series) -> pd.Series:
    """Identifiers as strings: integer-valued numbers without a '.0', missing values kept missing."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        finite = values.dropna()
        if len(finite) and np.all(np.mod(finite, 1) == 0):
            values = values.astype("Int64")
    return values.astype("string").str.strip()


def canonical_codes(values: pd.Series) -> pd.Series:
    """ICD codes in one spelling: upper case, no dots or spaces (250.00 and 25000 match)."""
    return as_text(values).str.upper().str.replace(r"[.\s]", "", regex=True)


def canonical_vocabularies(values: pd.Series, where: str, field: str) -> pd.Series:
    """Vocabulary values as ICD-9-CM or ICD-10-CM; any other value is an error naming the file and the field."""
    key = as_text(values).str.upper().str.replace(r"[\s._-]", "", regex=True)
    out = key.map(SPELLINGS)
    unknown = values[out.isna()]
    if len(unknown):
        shown = sorted({"(missing)" if pd.isna(v) else str(v) for v in unknown})[:5]
        raise ValueError(
            f"{where}: {len(unknown)} row(s) with an unknown vocabulary value {shown} ({field}); "
            "expected ICD-9-CM or ICD-10-CM (also written ICD9CM, ICD9 or 9, and ICD10CM or 10)"
        )
    return out


def columns_present(path, wanted: dict[str, str]) -> None:
    """Raise a ValueError naming the file, each missing column and its config field."""
    have = table_columns(path)
    missing = [f"{column!r} ({field})" for field, column in wanted.items() if column not in have]
    if missing:
        raise ValueError(f"{path}: no column {', '.join(missing)}; the file's columns are {have[:20]}")


def _code_columns(spec: EHRCodesData) -> dict[str, str]:
    c = spec.codes
    wanted = {"data.codes.person": c.person, "data.codes.code": c.code, "data.codes.vocabulary": c.vocabulary}
    return wanted | ({"data.codes.date": c.date} if c.date else {})


def _map_columns(m: PhecodeMap, i: int) -> dict[str, str]:
    wanted = {f"data.phecode_maps[{i}].code": m.code, f"data.phecode_maps[{i}].phecode": m.phecode}
    return wanted | ({f"data.phecode_maps[{i}].vocabulary_column": m.vocabulary_column} if m.vocabulary_column else {})


@dataclass(frozen=True)
class Demographics:
    """The persons with every label, their encoded labels, and who was dropped for a missing label."""

    persons: pd.Index
    labels: dict[str, np.ndarray]
    classes: dict[str, list[str]]
    missing: dict[str, int]  # label name -> persons dropped for lacking it
    n_rows: int


def read_demographics(spec: EHRCodesData) -> Demographics:
    d = spec.demographics
    columns = d.label_columns()
    wanted = {"data.demographics.person": d.person} | {
        ("data.demographics.sex" if name == "sex" else f"data.demographics.labels.{name}"): col
        for name, col in columns.items()
    }
    columns_present(d.path, wanted)
    table = read_table(d.path, list(dict.fromkeys(wanted.values())), text=True)
    persons = as_text(table[d.person])
    if persons.isna().any():
        raise ValueError(f"{d.path}: {int(persons.isna().sum())} row(s) without a person id (data.demographics.person)")
    repeated = persons[persons.duplicated()]
    if len(repeated):
        raise ValueError(
            f"{d.path}: person id(s) {sorted(set(repeated))[:5]} appear more than once (data.demographics.person)"
        )
    keep = np.ones(len(table), dtype=bool)
    missing = {}
    values = {}
    for name, column in columns.items():
        field = "data.demographics.sex" if name == "sex" else f"data.demographics.labels.{name}"
        raw = table[column]
        if d.label_tasks()[name] == "regression":
            number = pd.to_numeric(raw, errors="coerce")
            bad = number.isna() & raw.notna()
            if bad.any():
                raise ValueError(f"{d.path}: label column {column!r} has non-numeric value(s) {sorted(set(raw[bad]))[:5]} ({field})")
            values[name] = number
        else:
            values[name] = as_text(raw)
        absent = values[name].isna().to_numpy()
        missing[name] = int((absent & keep).sum())
        keep &= ~absent
    labels, classes = {}, {}
    for name, column in columns.items():
        field = "data.demographics.sex" if name == "sex" else f"data.demographics.labels.{name}"
        kept = values[name][keep]
        if d.label_tasks()[name] == "regression":
            labels[name] = kept.to_numpy(dtype=np.float32)
            continue
        names, codes = np.unique(kept.to_numpy(dtype=str), return_inverse=True)
        if len(names) < 2:
            shown = f"one class ({str(names[0])!r})" if len(names) else "no values"
            raise ValueError(f"{d.path}: label column {column!r} has {shown} among the persons kept ({field})")
        labels[name], classes[name] = codes.astype(np.int64), names.tolist()
    return Demographics(pd.Index(persons[keep].to_numpy(dtype=str)), labels, classes, missing, len(table))


@dataclass(frozen=True)
class TablesSummary:
    """What config validation needs to know before any job runs."""

    n_persons: int
    smallest_class: int | None


_SUMMARIES: dict[tuple, TablesSummary] = {}


def inspect_tables(spec: EHRCodesData) -> TablesSummary:
    """Check every table's columns (headers only) and read the demographics; cached per file version."""
    files = [spec.codes.path, spec.demographics.path, *(m.path for m in spec.phecode_maps)]
    key = (spec.model_dump_json(), *((f.stat().st_size, f.stat().st_mtime_ns) for f in files))
    if key not in _SUMMARIES:
        columns_present(spec.codes.path, _code_columns(spec))
        for i, m in enumerate(spec.phecode_maps):
            columns_present(m.path, _map_columns(m, i))
        demo = read_demographics(spec)
        y = demo.labels[spec.label]
        smallest = None if spec.target_task() == "regression" else int(np.bincount(y).min())
        _SUMMARIES[key] = TablesSummary(len(demo.persons), smallest)
    return _SUMMARIES[key]


def read_maps(spec: EHRCodesData) -> pd.DataFrame:
    """Every map's (vocabulary, code, phecode) rows, codes in canonical spelling, without repeats."""
    frames = []
    for i, m in enumerate(spec.phecode_maps):
        wanted = _map_columns(m, i)
        columns_present(m.path, wanted)
        table = read_table(m.path, list(dict.fromkeys(wanted.values())), text=True)
        vocabulary = (
            canonical_vocabularies(table[m.vocabulary_column], str(m.path), f"data.phecode_maps[{i}].vocabulary_column")
            if m.vocabulary_column
            else pd.Series(m.vocabulary, index=table.index)
        )
        frame = pd.DataFrame(
            {"vocabulary": vocabulary, "code": canonical_codes(table[m.code]), "phecode": as_text(table[m.phecode])}
        )
        frames.append(frame.dropna())
    maps = pd.concat(frames, ignore_index=True).drop_duplicates()
    if maps.empty:
        raise ValueError(f"{spec.phecode_maps[0].path}: the PheCode maps hold no (code, PheCode) row (data.phecode_maps)")
    return maps


def read_codes(spec: EHRCodesData) -> tuple[pd.DataFrame, int, tuple[str, str] | None]:
    """The code table's usable rows, the number without a person or code, and the range of the dates.

    Rows: person, code (canonical spelling), written (as in the file) and vocabulary.
    """
    c = spec.codes
    wanted = _code_columns(spec)
    columns_present(c.path, wanted)
    table = read_table(c.path, list(dict.fromkeys(wanted.values())), text=True)
    rows = pd.DataFrame(
        {"person": as_text(table[c.person]), "code": canonical_codes(table[c.code]), "written": as_text(table[c.code])}
    )
    incomplete = (rows["person"].isna() | rows["code"].eq("").fillna(True)).to_numpy(dtype=bool)
    rows["vocabulary"] = canonical_vocabularies(table[c.vocabulary], str(c.path), "data.codes.vocabulary")
    dates = None
    if c.date:
        parsed = pd.to_datetime(table[c.date], errors="coerce")
        bad = parsed.isna() & table[c.date].notna()
        if bad.any():
            raise ValueError(
                f"{c.path}: {int(bad.sum())} date(s) that do not parse, first {table[c.date][bad].iloc[0]!r} (data.codes.date)"
            )
        if parsed.notna().any():
            dates = (str(parsed.min().date()), str(parsed.max().date()))
    return rows[~incomplete].reset_index(drop=True), int(incomplete.sum()), dates


def phecode_order(phecodes) -> list[str]:
    """PheCodes in numeric order (008 < 008.5 < 250 < 1000), any non-numeric ones after, alphabetically."""

    def key(p: str) -> tuple[float, str]:
        try:
            return float(p), p
        except ValueError:
            return float("inf"), p

    return sorted(set(phecodes), key=key)


def phecode_matrix(
    rows: pd.DataFrame, maps: pd.DataFrame, persons: pd.Index, min_prevalence: float
) -> tuple[np.ndarray, list[str], pd.DataFrame]:
    """The persons x PheCodes binary matrix, its PheCode columns, and the rows that matched no PheCode.

    rows: (person, vocabulary, code); maps: (vocabulary, code, phecode). Persons not in `persons` are
    ignored. Columns: PheCodes carried by at least `min_prevalence` of the persons; every PheCode of the
    maps when it is 0.
    """
    matched = rows.merge(maps, on=["vocabulary", "code"], how="left")
    unmapped = matched[matched["phecode"].isna()]
    pairs = matched.dropna(subset=["phecode"])
    pairs = pairs[pairs["person"].isin(persons)].drop_duplicates(["person", "phecode"])
    carried = pairs["phecode"].value_counts()
    if min_prevalence == 0:
        columns = phecode_order(maps["phecode"])
    else:
        columns = phecode_order(carried.index[(carried / len(persons) >= min_prevalence).to_numpy()])
    kept = pairs[pairs["phecode"].isin(columns)]
    x = np.zeros((len(persons), len(columns)), dtype=np.float32)
    x[persons.get_indexer(kept["person"]), pd.Index(columns).get_indexer(kept["phecode"])] = 1.0
    return x, columns, unmapped


def unmapped_summary(unmapped: pd.DataFrame) -> list[dict]:
    """The most frequent codes that matched no PheCode: code (as first written), vocabulary, rows and persons."""
    if unmapped.empty:
        return []
    grouped = unmapped.groupby(["code", "vocabulary"]).agg(
        written=("written", "first"), rows=("person", "size"), persons=("person", "nunique")
    )
    top = grouped.sort_values(["rows", "persons"], ascending=False, kind="stable").head(UNMAPPED_SHOWN).reset_index()
    return [
        {"code": r["written"], "vocabulary": r["vocabulary"], "rows": int(r["rows"]), "persons": int(r["persons"])}
        for r in top.to_dict("records")
    ]


def make(spec: EHRCodesData) -> Dataset:
    """The person x PheCode matrix with labels from the demographics table, and the report's counts."""
    demo = read_demographics(spec)
    maps = read_maps(spec)
    rows, incomplete, dates = read_codes(spec)
    x, phecodes, unmapped = phecode_matrix(rows, maps, demo.persons, spec.min_prevalence)
    coded = set(rows["person"])
    no_demographics = len(coded - set(demo.persons))
    no_codes = len(set(demo.persons) - coded)
    carried = int((x.sum(axis=0) > 0).sum()) if spec.min_prevalence == 0 else len(phecodes)
    counts = [
        ["code rows read", len(rows) + incomplete],
        *([["code rows without a person or a code (left out)", incomplete]] if incomplete else []),
        ["distinct codes", int(rows[["vocabulary", "code"]].drop_duplicates().shape[0])],
        ["code rows that matched no PheCode", len(unmapped)],
        ["distinct codes that matched no PheCode", int(unmapped[["vocabulary", "code"]].drop_duplicates().shape[0])],
        *([["first and last event date", f"{dates[0]} to {dates[1]}"]] if dates else []),
        ["persons in the demographics table", demo.n_rows],
        *[[f"persons dropped: no {name} recorded", n] for name, n in demo.missing.items() if n],
        ["persons in the code table without demographics (dropped)", no_demographics],
        ["persons used", len(demo.persons)],
        ["persons used who have no code (all-zero rows)", no_codes],
        ["PheCodes in the maps", int(maps["phecode"].nunique())],
        ["PheCodes carried by a person used", carried],
        [f"PheCodes kept (prevalence at least {spec.min_prevalence:g})", len(phecodes)],
    ]
    inputs = [
        {"role": "code table", "path": str(spec.codes.path)},
        {"role": "demographics", "path": str(spec.demographics.path)},
        *({"role": f"PheCode map {i}", "path": str(m.path)} for i, m in enumerate(spec.phecode_maps)),
    ]
    inputs_csv, inputs_sha256 = inputs_manifest(inputs)
    source = {
        "kind": "ehr_codes",
        "counts": counts,
        "unmapped": unmapped_summary(unmapped),
        "classes": demo.classes.get(spec.label),
        "features": phecodes,
        "inputs_csv": inputs_csv,
        "inputs_sha256": inputs_sha256,
        "inputs_kind": "input tables",
        "examples_caption": "Persons (rows, sorted by the label) against PheCode columns; black: the person carries "
        "the PheCode.",
    }
    tasks = spec.demographics.label_tasks()
    kind = "synthetic" if spec.synthetic else "user-provided"
    return with_split(
        x,
        demo.labels,
        dict(tasks),
        spec.label,
        spec.split,
        "ehr_codes",
        synthetic=spec.synthetic,
        description=f"{kind.capitalize()} EHR from {spec.codes.path.name}: {len(demo.persons):,} persons x "
        f"{len(phecodes):,} binary PheCodes ({len(rows) + incomplete:,} code rows mapped through "
        f"{len(spec.phecode_maps)} ICD -> PheCode map(s)); label: {spec.label} ({tasks[spec.label]}).",
        source=source,
    )
