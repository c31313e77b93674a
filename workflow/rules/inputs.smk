# The input functions and parameters of each stage, one section per file of rules (Snakemake's
# linter wants functions kept apart from the files that hold rules).
from functools import partial

from batchlab.finished_run import scorecard_files, table_files


# ---- data.smk
def data_json(wildcards):
    return STUDIES[wildcards.study].data.model_dump_json()


# ---- train.smk
def cell_json(wildcards):
    """The study as one training cell sees it."""
    return STUDIES[wildcards.study].cell_view(int(wildcards.bs)).model_dump_json()


def train_priority(wildcards):
    """Longest cells first (their estimated seconds), so that the longest does not start last.

    Only the order of jobs changes, never a result; a priority is no rerun trigger.
    """
    return CELL_SECONDS.get((wildcards.study, int(wildcards.bs), "sweep"), 0.0)


# ---- downstream.smk
def downstream_json(wildcards):
    return STUDIES[wildcards.study].downstream.model_dump_json()


def latent_dim(wildcards):
    return STUDIES[wildcards.study].model.latent


def baselines_threads(wildcards):
    """Workers of the baselines job: one per (baseline, fold) fit."""
    downstream = STUDIES[wildcards.study].downstream
    return _workers(len(downstream.baselines) * downstream.folds)


def baselines_priority(wildcards):
    """Before any training cell: a baseline needs only the data, and the raw-input SVM can take a minute."""
    return max(CELL_SECONDS.values(), default=0.0) + 1.0


# ---- to_target.smk
TO_TARGET = {
    name: study for name, study in STUDIES.items() if study.to_target is not None
}


def to_target_cell_json(wildcards):
    """The to-target study as one of its training cells sees it."""
    return (
        _arm_study(wildcards, "to_target")
        .cell_view(int(wildcards.bs))
        .model_dump_json()
    )


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
    return CELL_SECONDS.get((wildcards.study, int(wildcards.bs), "to_target"), 0.0)


def to_target_study_json(wildcards):
    """What the throughput measurement needs of the train-to-target runs' study (data, model, optimizer, training):
    a training cell's view, so that report and SVM settings rerun nothing."""
    view = _arm_study(wildcards, "to_target")
    return view.cell_view(min(view.batch_sizes)).model_dump_json()


# The study-wide gradient job of the to-target cells: the sweep's input functions on Study.to_target_view().
to_target_cells_json = partial(cells_json, arm="to_target")
to_target_gradients_json = partial(gradients_json, arm="to_target")
to_target_batch_sizes = partial(batch_sizes, arm="to_target")


# ---- advise.smk
ADVISE = {name: study for name, study in STUDIES.items() if study.advise is not None}


def advise_json(wildcards):
    return STUDIES[wildcards.study].advise.model_dump_json()


def advise_batch_sizes(wildcards):
    study = STUDIES[wildcards.study]
    return " ".join(str(b) for b in study.advise.sizes(study))


def advise_runtime(wildcards):
    """The cap in minutes, and some for the job's start-up and the data."""
    return int(STUDIES[wildcards.study].advise.minutes) + 5


# ---- equal_steps.smk
EQUAL_STEPS = {
    name: study for name, study in STUDIES.items() if study.equal_steps is not None
}


def equal_steps_cell_json(wildcards):
    """The equal-steps arm's study as one of its training cells sees it."""
    return (
        _arm_study(wildcards, "equal_steps")
        .cell_view(int(wildcards.bs))
        .model_dump_json()
    )


# The arm's study-wide gradient job, for the studies whose claims score its spread (Study.measures_arm_spread).
ARM_SPREAD = {
    name: study for name, study in EQUAL_STEPS.items() if study.measures_arm_spread()
}
equal_steps_cells_json = partial(cells_json, arm="equal_steps")
equal_steps_gradients_json = partial(gradients_json, arm="equal_steps")
equal_steps_batch_sizes = partial(batch_sizes, arm="equal_steps")


def equal_steps_priority(wildcards):
    return CELL_SECONDS.get((wildcards.study, int(wildcards.bs), "equal_steps"), 0.0)


# ---- critical.smk
def target_json(wildcards):
    return STUDIES[wildcards.study].steps_to_target.model_dump_json()


def model_json(wildcards):
    return STUDIES[wildcards.study].model.model_dump_json()


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


# ---- report.smk
def study_json(wildcards):
    """The whole validated study (for the report)."""
    return STUDIES[wildcards.study].model_dump_json()


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


def report_threads(wildcards):
    """Processes drawing a study page's 12 figures at once: at most 4, since the slowest figure takes a
    fifth of the drawing (0.6 of 3.0 s for the EHR study) and bounds the job beyond that.
    """
    return min(4, _workers(12))


def report_to_target(wildcards):
    if wildcards.study not in TO_TARGET:
        return []
    base = f"results/{wildcards.study}/to_target"
    return [
        f"{base}/runs.parquet",
        f"{base}/curves.parquet",
        f"{base}/gradients.parquet",
    ]


def report_throughput(wildcards):
    if wildcards.study not in TO_TARGET:
        return []
    return [f"results/{wildcards.study}/to_target/throughput.parquet"]


def throughput_arg(wildcards, input):
    return f"--throughput {input.throughput}" if input.throughput else ""


def report_equal_steps(wildcards):
    if wildcards.study not in EQUAL_STEPS:
        return []
    base = f"results/{wildcards.study}/equal_steps"
    spread = [f"{base}/spread.parquet"] if wildcards.study in ARM_SPREAD else []
    return [f"{base}/runs.parquet", *spread]


def report_advise(wildcards):
    if wildcards.study not in ADVISE:
        return []
    return [f"results/{wildcards.study}/advise/pilot.parquet"]


def advise_arg(wildcards, input):
    return f"--advise {input.advise}" if input.advise else ""


def equal_steps_arg(wildcards, input):
    """--equal-steps RUNS [--equal-steps-spread SPREAD]: the arm's runs and, where a claim scores it, its spread."""
    if not input.equal_steps:
        return ""
    runs, *spread = input.equal_steps
    return f"--equal-steps {runs}" + (
        f" --equal-steps-spread {spread[0]}" if spread else ""
    )


def to_target_arg(wildcards, input):
    return f"--to-target {input.to_target}" if input.to_target else ""
