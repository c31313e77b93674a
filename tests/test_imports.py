"""A job pays only for what its step uses: no heavy library is imported by a step that does not need it.

Each subcommand names the modules its step needs (batchlab.cli); each is imported here in a fresh
interpreter and the heavy libraries it pulled in are checked against what the step uses. The jobs of
the end-to-end run are checked the same way from their logs (tests/test_workflow.py).
"""

import json
import subprocess
import sys

import pytest

from batchlab.cli import HEAVY, parser
from conftest import ROOT

# What each step may load: the libraries its own work needs.
USES = {
    "validate": set(),
    "schema": set(),
    "data": {"sklearn", "scipy"},  # the split; the mnist1d package adds matplotlib (DATA_SOURCES)
    "train": {"torch", "pandas"},
    "throughput": {"torch", "pandas"},
    "advise": {"torch", "pandas"},
    "downstream": {"sklearn", "scipy", "pandas"},
    "baselines": {"sklearn", "scipy", "pandas"},
    "gradients": {"torch", "pandas"},
    "critical": {"pandas", "scipy", "torch"},  # torch: a baseline_fraction target's constant-prediction loss
    "aggregate": {"pandas"},
    "collect": {"pandas"},
    "report": {"pandas", "scipy", "matplotlib", "seaborn"},
    "scaling": {"pandas", "scipy", "matplotlib", "seaborn"},
    "compare": {"pandas"},
    "index": set(),
}
DATA_SOURCES = {
    "synthetic_ehr": {"scipy"},
    "phantom_mri": set(),
    "digits": {"sklearn", "scipy", "pandas"},  # sklearn.datasets imports pandas itself
    "mnist1d_data": {"scipy", "matplotlib"},  # the mnist1d package imports both itself
    "noisy_quadratic": set(),
    "files": {"pandas"},
    "brats": {"torch", "scipy"},  # the slices are resampled with torch's interpolate
    "ehr_codes": {"pandas"},
}


def heavy_after(code: str) -> set[str]:
    """The heavy libraries in sys.modules after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def step_imports() -> dict[str, tuple[str, ...]]:
    subparsers = next(a for a in parser()._actions if a.dest == "command")
    return {name: sp.get_default("imports") for name, sp in subparsers.choices.items()}


def test_every_step_is_listed():
    assert set(step_imports()) == set(USES)


@pytest.mark.parametrize("step", sorted(USES))
def test_step_imports_only_what_it_uses(step):
    modules = ("batchlab.cli", *step_imports()[step])
    loaded = heavy_after("\n".join(f"import {m}" for m in modules))
    assert loaded <= USES[step], f"batchlab {step} imports {sorted(loaded - USES[step])}, which it does not use"


@pytest.mark.parametrize("source", sorted(DATA_SOURCES))
def test_data_source_imports_only_what_it_uses(source):
    loaded = heavy_after(f"import batchlab.data.{source}")
    assert loaded <= USES["data"] | DATA_SOURCES[source], sorted(loaded)


def test_config_and_data_import_nothing_heavy():
    assert heavy_after("import batchlab.config, batchlab.data, batchlab.io, batchlab.training.cost, batchlab.jobs.gpu_slots") == set()


def test_validate_with_known_rates_imports_nothing_heavy():
    """The cost estimate reads its rates from a file (or the cache) and counts the work from the config alone."""
    code = (
        "from batchlab.cli import main\n"
        f"assert main(['validate', {str(ROOT / 'config/config.yaml')!r}, '--rates', "
        f"{str(ROOT / 'tests/config/rates.json')!r}]) == 0"
    )
    assert heavy_after(code) == set()


def test_the_check_catches_a_heavy_import():
    """The probe itself: a module that imports torch is seen to."""
    assert "torch" in heavy_after("import batchlab.io\nimport batchlab.measure.noise")
