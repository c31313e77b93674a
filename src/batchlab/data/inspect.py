"""What config validation reads from a user's data files, passed to it as the `inspect` of load_config.

The config package never imports this one (the data package imports the config); the workflow's parse
and `batchlab validate` pass `inspect_files`, so each file is read and checked once, before any job.
"""

from __future__ import annotations

from batchlab.config import BratsData, EHRCodesData, FileData


def inspect_files(spec):
    """Read and check a file-backed data spec's files; return what its checks need (cached per file version).

    file: the row count and rarest class; brats: the case folders and their files; ehr_codes: the persons
    with every label and the rarest class. The readers are imported only for the kind at hand.
    """
    if isinstance(spec, FileData):
        from batchlab.data.files import inspect_file

        return inspect_file(spec)
    if isinstance(spec, BratsData):
        from batchlab.data.brats import cached_cases

        return cached_cases(spec.path, spec.modalities)
    if isinstance(spec, EHRCodesData):
        from batchlab.data.ehr_codes import inspect_tables

        return inspect_tables(spec)
    raise TypeError(f"{type(spec).__name__} is not read from files")
