from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/inputs.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/downstream.smk"
include: "workflow/rules/gradients.smk"
include: "workflow/rules/to_target.smk"
include: "workflow/rules/advise.smk"
include: "workflow/rules/equal_steps.smk"
include: "workflow/rules/critical.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/warm_start.smk"


rule all:
    default_target: True
    input:
        "reports/index.html",
