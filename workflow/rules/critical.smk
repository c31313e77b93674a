# The critical batch size of a study: steps to target, the S(B) fit and B_simple at the target.


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
