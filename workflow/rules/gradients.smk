rule gradients:
    input:
        data="data/{study}.npz",
        checkpoints="results/{study}/bs{bs}/checkpoints.pt",
    output:
        noise="results/{study}/bs{bs}/gradients.parquet",
        spread="results/{study}/bs{bs}/spread.parquet",
    log:
        "logs/{study}/gradients_bs{bs}.log",
    benchmark:
        "logs/{study}/gradients_bs{bs}.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=TRAIN_GPUS,
    params:
        study=cell_json,
        gradients=gradients_json,
        init=init_checkpoint,
        device=CFG.device,
    shell:
        "{BATCHLAB} gradients --study {wildcards.study} --study-json {params.study:q} "
        "--gradients-json {params.gradients:q} --batch-size {wildcards.bs} --data {input.data} "
        "--checkpoints {input.checkpoints} --init {params.init} --device {params.device} "
        "--out {output.noise} --spread {output.spread} > {log} 2>&1"


rule critical_batch:
    input:
        curves="results/{study}/curves.parquet",
        noise=cell_files("gradients.parquet"),
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
    shell:
        "{BATCHLAB} critical --target-json {params.target:q} --curves {input.curves} "
        "--noise {input.noise} --steps {output.steps} --out {output.table} > {log} 2>&1"
