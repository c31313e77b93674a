# One job per study, cached per cell like the downstream job (workflow/rules/downstream.smk).
rule gradients:
    input:
        data="data/{study}.npz",
        checkpoints=cell_files("checkpoints.pt"),
    output:
        noise="results/{study}/gradients.parquet",
        spread="results/{study}/spread.parquet",
    log:
        "logs/{study}/gradients.log",
    benchmark:
        "logs/{study}/gradients.benchmark.tsv"
    threads: gradient_threads
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=TRAIN_GPUS,
    params:
        study=cells_json,
        gradients=gradients_json,
        batch_sizes=batch_sizes,
        device=CFG.device,
    shell:
        "{BATCHLAB} gradients --study {wildcards.study} --study-json {params.study:q} "
        "--gradients-json {params.gradients:q} --batch-sizes {params.batch_sizes} --data {input.data} "
        "--checkpoints {input.checkpoints} --device {params.device} {GPU_SLOTS} "
        "--cache results/{wildcards.study}/cache --workers {threads} "
        "--out {output.noise} --spread {output.spread} > {log} 2>&1"


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
