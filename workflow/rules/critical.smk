# The critical batch size of a study: steps to target, the S(B) fit and B_simple at the target.


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


rule critical_batch:
    input:
        unpack(critical_inputs),
        data="data/{study}.npz",
    output:
        steps="results/{study}/steps_to_target.parquet",
        table="results/{study}/critical_batch.parquet",
    log:
        "logs/{study}/critical_batch.log",
    benchmark:
        "logs/{study}/critical_batch.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        target=target_json,
        model=model_json,
        target_runs=target_runs_arg,
    shell:
        "{BATCHLAB} critical --study {wildcards.study} --target-json {params.target:q} "
        "--model-json {params.model:q} {params.target_runs} "
        "--data {input.data} --curves {input.curves} "
        "--noise {input.noise} --steps {output.steps} --out {output.table} > {log} 2>&1"
