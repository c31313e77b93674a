# What all the files of rules share: the validated config and its studies, the command the rules call, the
# device and GPU slots, the cost-based order of jobs, and the input functions of more than one stage
# (each stage's own are in inputs.smk).
import re
import sys

from snakemake.exceptions import WorkflowError

from batchlab.config import ConfigError, validate_config
from batchlab.data.inspect import inspect_files
from batchlab.training.cost import print_estimate
from batchlab.jobs.gpu_slots import GpuSlotError, plan_slots, visible_gpus
from batchlab.training.device import resolve_device


def _config_source():
    files = [str(f) for f in getattr(workflow, "configfiles", [])]
    return ", ".join(files) or "config"


try:
    CFG = validate_config(config, source=_config_source(), inspect=inspect_files)
    if any(study.model.kind == "python" for study in CFG.studies.values()):
        # a factory model: built and tried on a few samples before any job
        from batchlab.training.model_check import check_models

        CFG = check_models(CFG, _config_source())
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
        (cell.study, cell.batch_size, cell.arm): cell.seconds or 0.0
        for cells in print_estimate(
            CFG, device=DEVICE, source=_config_source(), stream=sys.stderr
        ).values()
        for cell in cells
    }


wildcard_constraints:
    study=_one_of(STUDIES),
    grid=_one_of(GRIDS),
    bs=r"[1-9][0-9]*",


def data_inputs(wildcards):
    """The files a study's data set is read from (a user's table, EHR tables and maps, every BraTS case file)."""
    return [str(f) for f in STUDIES[wildcards.study].data.input_files()]


# The results folder of each arm of a study: the fixed-budget sweep, its train-to-target cells, its equal-steps arm.
ARMS = {"sweep": "", "to_target": "to_target/", "equal_steps": "equal_steps/"}


# Each job gets, through `params`, only the part of its study it depends on: a change to that part
# reruns it, and nothing else does (adding a batch size trains only the new cell).
def _arm_study(wildcards, arm="sweep"):
    """The study in the wildcards, or the study its train-to-target cells or its equal-steps arm are."""
    study = STUDIES[wildcards.study]
    if arm == "to_target":
        return study.to_target_view()
    return study.equal_steps_view() if arm == "equal_steps" else study


def cell_files(filename, arm="sweep"):
    """Input function: one file per batch size of the study in the wildcards (or of its to-target cells or arm)."""

    def files(wildcards):
        sizes = _arm_study(wildcards, arm).batch_sizes
        return [f"results/{wildcards.study}/{ARMS[arm]}bs{b}/{filename}" for b in sizes]

    return files


def gradients_json(wildcards, arm="sweep"):
    return _arm_study(wildcards, arm).gradients.model_dump_json()


def cells_json(wildcards, arm="sweep"):
    """The study as its training cells see it, with all its batch sizes (a study-wide job's cells)."""
    study = _arm_study(wildcards, arm)
    view = study.cell_view(min(study.batch_sizes))
    return view.model_copy(update={"batch_sizes": study.batch_sizes}).model_dump_json()


def batch_sizes(wildcards, arm="sweep"):
    return " ".join(str(b) for b in _arm_study(wildcards, arm).batch_sizes)


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
