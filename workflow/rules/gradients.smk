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
