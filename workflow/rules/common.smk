# Not rules: config validation, the command the rules call, and input functions.
import re
import sys
from functools import partial
from pathlib import Path

from snakemake.exceptions import WorkflowError

from batchlab.cli import ENTRY, warm_preload
from batchlab.config import ConfigError, validate_config
from batchlab.training.cost import print_estimate
from batchlab.finished_run import scorecard_files, table_files
from batchlab.jobs.gpu_slots import GpuSlotError, plan_slots, visible_gpus
from batchlab.training.device import resolve_device
from batchlab.jobs.warm import start_for_run


def _config_source():
    files = [str(f) for f in getattr(workflow, "configfiles", [])]
    return ", ".join(files) or "config"


try:
    CFG = validate_config(config, source=_config_source())
except ConfigError as err:
    raise WorkflowError(str(err))

BATCHLAB = f'"{sys.executable}" -m batchlab'
STUDIES = CFG.runnable_studies()  # scaling grids expanded into their cells
GRIDS = CFG.scaling_studies()


def _one_of(names):
    """A wildcard pattern matching exactly these names (nothing when there are none)."""
    return "|".join(re.escape(name) for name in names) or "(?!)"


DEVICE = resolve_device(CFG.device)
TRAIN_GPUS = 1 if DEVICE.type == "cuda" else 0


# GPU sharing on one machine: the profile's `gpu` resource is the number of GPU slots in all (slots
# per GPU x GPUs), `gpu_devices` optionally the number of GPUs to use. Checked here, before any job
# starts; each GPU job then takes a free slot itself (batchlab.jobs.gpu_slots): Snakemake's local executor
# counts the resource but hands out no device IDs. Passed outside `params`: it changes no result.
def _global_resource(name):
    """The value of a `resources:` entry of the profile or `--resources`, or None."""
    found = workflow.global_resources.get(name)
    return None if found is None else found.value


try:
    GPU_PLAN = plan_slots(
        _global_resource("gpu"),
        _global_resource("gpu_devices"),
        visible_gpus() if CFG.device != "cpu" else 0,
        CFG.device,
    )
except GpuSlotError as err:
    raise WorkflowError(str(err))
GPU_SLOTS = GPU_PLAN.cli_args() if GPU_PLAN and TRAIN_GPUS else ""

# The cost of every cell, printed before the run and used to start the longest training cells first.
CELL_SECONDS = {}
if workflow.is_main_process:
    CELL_SECONDS = {
        (cell.study, cell.batch_size, cell.to_target): cell.seconds or 0.0
        for cells in print_estimate(
            CFG, device=DEVICE, source=_config_source(), stream=sys.stderr
        ).values()
        for cell in cells
    }


# Every job of a local run starts warm: forked from a server that has already loaded its libraries
# (batchlab.jobs.warm), for as long as the run lasts. Off with `warm_start: false`; no result changes.
WARM_SERVERS = []


def stop_warm_servers():
    while WARM_SERVERS:
        WARM_SERVERS.pop().stop()


onstart:
    servers = start_for_run(
        CFG.warm_start,
        workflow.local_exec,
        warm_preload(),
        Path("logs/warm_start.log"),
        ENTRY,
    )
    WARM_SERVERS.extend([servers] if servers else [])


onsuccess:
    stop_warm_servers()


onerror:
    stop_warm_servers()


wildcard_constraints:
    study=_one_of(STUDIES),
    grid=_one_of(GRIDS),
    bs=r"[1-9][0-9]*",


# Each job gets, through `params`, only the part of its study it depends on: a change to that part
# reruns it, and nothing else does (adding a batch size trains only the new cell).
def study_json(wildcards):
    """The whole validated study (for the report)."""
    return STUDIES[wildcards.study].model_dump_json()


def cell_json(wildcards):
    """The study as one training cell sees it."""
    return STUDIES[wildcards.study].cell_view(int(wildcards.bs)).model_dump_json()


def data_json(wildcards):
    return STUDIES[wildcards.study].data.model_dump_json()


def data_inputs(wildcards):
    """The files a study's data set is read from (a user's table, EHR tables and maps, every BraTS case file)."""
    return [str(f) for f in STUDIES[wildcards.study].data.input_files()]


def downstream_json(wildcards):
    return STUDIES[wildcards.study].downstream.model_dump_json()


def latent_dim(wildcards):
    return STUDIES[wildcards.study].model.latent


def _sweep(wildcards, to_target=False):
    """The study in the wildcards, or the study its train-to-target cells are (Study.to_target_view)."""
    study = STUDIES[wildcards.study]
    return study.to_target_view() if to_target else study


def cell_files(filename, to_target=False):
    """Input function: one file per batch size of the study in the wildcards (or of its to-target cells)."""
    folder = "to_target/" if to_target else ""

    def files(wildcards):
        sizes = _sweep(wildcards, to_target).batch_sizes
        return [f"results/{wildcards.study}/{folder}bs{b}/{filename}" for b in sizes]

    return files


def study_summaries(wildcards):
    return [f"reports/{name}/summary.json" for name in [*STUDIES, *GRIDS]]


def comparison_summary(wildcards):
    """The comparison with `compare_with`'s run that the index lists, when the config names one."""
    return [] if CFG.compare_with is None else ["reports/comparison.json"]


def other_run_files(wildcards):
    """The run tables and scorecards of `compare_with`'s run: comparing again when that run changes."""
    return [
        str(p)
        for p in [*table_files(CFG.compare_with), *scorecard_files(CFG.compare_with)]
    ]


def grid_json(wildcards):
    return GRIDS[wildcards.grid].model_dump_json()


def grid_files(filename):
    """Input function: one file per cell of the scaling grid in the wildcards, in grid order."""

    def files(wildcards):
        return [
            f"results/{name}/{filename}"
            for name in GRIDS[wildcards.grid].variants(wildcards.grid)
        ]

    return files


def grid_data(wildcards):
    return f"data/{next(iter(GRIDS[wildcards.grid].variants(wildcards.grid)))}.npz"


def gradients_json(wildcards, to_target=False):
    return _sweep(wildcards, to_target).gradients.model_dump_json()


def cells_json(wildcards, to_target=False):
    """The study as its training cells see it, with all its batch sizes (a study-wide job's cells)."""
    study = _sweep(wildcards, to_target)
    view = study.cell_view(min(study.batch_sizes))
    return view.model_copy(update={"batch_sizes": study.batch_sizes}).model_dump_json()


def batch_sizes(wildcards, to_target=False):
    return " ".join(str(b) for b in _sweep(wildcards, to_target).batch_sizes)


def _workers(units):
    """Workers of a study-wide job of `units` independent pieces: up to half the cores, so that other
    jobs fit beside it.

    On two cores that is one: two study-wide jobs side by side keep both cores busy, where one job of
    two workers would leave a core idle whenever a one-thread job held the other. On a cluster (no
    --cores) one, which every node can give; `--set-threads downstream=N gradients=N` asks for more.
    """
    try:
        return max(1, min(units, workflow.cores // 2))
    except WorkflowError:
        return 1


def study_threads(wildcards):
    """Workers of a study-wide job over its cells: one per cell."""
    return _workers(len(STUDIES[wildcards.study].batch_sizes))


def baselines_threads(wildcards):
    """Workers of the baselines job: one per (baseline, fold) fit."""
    downstream = STUDIES[wildcards.study].downstream
    return _workers(len(downstream.baselines) * downstream.folds)


def report_threads(wildcards):
    """Processes drawing a study page's 12 figures at once: at most 4, since the slowest figure takes a
    fifth of the drawing (0.6 of 3.0 s for the EHR study) and bounds the job beyond that.
    """
    return min(4, _workers(12))


def gradient_threads(wildcards):
    """On a GPU the cells are measured one after another in one process (one GPU slot)."""
    return 1 if TRAIN_GPUS else study_threads(wildcards)


class Untracked:
    """A rule parameter that Snakemake leaves out of its rerun triggers, as it records parameters of
    builtin types only, and this is not one. For settings that change how a job runs, not its numbers
    (tests/test_workflow.py checks that editing one reruns nothing)."""

    def __init__(self, value):
        self.value = value

    def __str__(self):
        return str(self.value)


def cuda_graphs(wildcards):
    return Untracked(STUDIES[wildcards.study].training.cuda_graphs)


def train_priority(wildcards):
    """Longest cells first (their estimated seconds), so that the longest does not start last.

    Only the order of jobs changes, never a result; a priority is no rerun trigger.
    """
    return CELL_SECONDS.get((wildcards.study, int(wildcards.bs), False), 0.0)


def baselines_priority(wildcards):
    """Before any training cell: a baseline needs only the data, and the raw-input SVM can take a minute."""
    return max(CELL_SECONDS.values(), default=0.0) + 1.0


def target_json(wildcards):
    return STUDIES[wildcards.study].steps_to_target.model_dump_json()


def model_json(wildcards):
    return STUDIES[wildcards.study].model.model_dump_json()


# ---- train-to-target analyses (workflow/rules/to_target.smk)
TO_TARGET = {
    name: study for name, study in STUDIES.items() if study.to_target is not None
}


def to_target_cell_json(wildcards):
    """The to-target study as one of its training cells sees it."""
    return _sweep(wildcards, True).cell_view(int(wildcards.bs)).model_dump_json()


def to_target_json(wildcards):
    return STUDIES[wildcards.study].to_target.model_dump_json()


def pilot_runs(wildcards):
    """A pilot_fraction target's pilot: the fixed-budget sweep's smallest batch size (none for other kinds)."""
    study = STUDIES[wildcards.study]
    if study.to_target.kind != "pilot_fraction":
        return []
    return [f"results/{wildcards.study}/bs{min(study.batch_sizes)}/runs.parquet"]


def pilot_arg(wildcards, input):
    return f"--pilot {input.pilot}" if input.pilot else ""


def to_target_priority(wildcards):
    return CELL_SECONDS.get((wildcards.study, int(wildcards.bs), True), 0.0)


# The study-wide gradient job of the to-target cells: the sweep's input functions on Study.to_target_view().
to_target_cells_json = partial(cells_json, to_target=True)
to_target_gradients_json = partial(gradients_json, to_target=True)
to_target_batch_sizes = partial(batch_sizes, to_target=True)


def critical_inputs(wildcards):
    """The critical-batch analysis's curves and gradient noise: the train-to-target runs' when the study has them."""
    if wildcards.study in TO_TARGET:
        base = f"results/{wildcards.study}/to_target"
        return {
            "curves": f"{base}/curves.parquet",
            "noise": f"{base}/gradients.parquet",
            "target_runs": f"{base}/runs.parquet",
        }
    return {
        "curves": f"results/{wildcards.study}/curves.parquet",
        "noise": f"results/{wildcards.study}/gradients.parquet",
    }


def target_runs_arg(wildcards, input):
    return f"--target-runs {input.target_runs}" if "target_runs" in input.keys() else ""


def report_to_target(wildcards):
    if wildcards.study not in TO_TARGET:
        return []
    base = f"results/{wildcards.study}/to_target"
    return [
        f"{base}/runs.parquet",
        f"{base}/curves.parquet",
        f"{base}/gradients.parquet",
    ]


def to_target_arg(wildcards, input):
    return f"--to-target {input.to_target}" if input.to_target else ""
