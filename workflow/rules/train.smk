rule train:
    input:
        data="data/{study}.npz",
    output:
        runs="results/{study}/bs{bs}/runs.parquet",
        curves="results/{study}/bs{bs}/curves.parquet",
        embeddings="results/{study}/bs{bs}/embeddings.npz",
        checkpoints="results/{study}/bs{bs}/checkpoints.pt",
        lr_search="results/{study}/bs{bs}/lr_search.parquet",
    log:
        "logs/{study}/train_bs{bs}.log",
    benchmark:
        "logs/{study}/train_bs{bs}.benchmark.tsv"
    priority: train_priority
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=TRAIN_GPUS,
    params:
        study=cell_json,
        device=CFG.device,
        cuda_graphs=cuda_graphs,
    shell:
        "{BATCHLAB} train --study {wildcards.study} --study-json {params.study:q} "
        "--batch-size {wildcards.bs} --data {input.data} --device {params.device} "
        "--cuda-graphs {params.cuda_graphs} "
        "--checkpoint-every-s {CFG.checkpoint_every_s} {GPU_SLOTS} "
        "--out-dir $(dirname {output.runs}) > {log} 2>&1"
