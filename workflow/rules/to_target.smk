# The train-to-target analysis of a study with a `to_target` block: every batch size trained until its
# validation loss reaches a target known before training (or the cap), its runs collected, and the
# gradient noise measured where the runs stopped. The critical_batch rule reads these in place of the
# fixed-budget sweep's curves (inputs.smk: critical_inputs).
rule train_to_target:
    input:
        data="data/{study}.npz",
        pilot=pilot_runs,
    output:
        runs="results/{study}/to_target/bs{bs}/runs.parquet",
        curves="results/{study}/to_target/bs{bs}/curves.parquet",
        embeddings="results/{study}/to_target/bs{bs}/embeddings.npz",
        checkpoints="results/{study}/to_target/bs{bs}/checkpoints.pt",
        lr_search="results/{study}/to_target/bs{bs}/lr_search.parquet",
    log:
        "logs/{study}/train_to_target_bs{bs}.log",
    benchmark:
        "logs/{study}/train_to_target_bs{bs}.benchmark.tsv"
    wildcard_constraints:
        study=_one_of(TO_TARGET),
    priority: to_target_priority
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=TRAIN_GPUS,
    params:
        study=to_target_cell_json,
        target=to_target_json,
        pilot=pilot_arg,
        device=CFG.device,
        cuda_graphs=cuda_graphs,
    shell:
        "{BATCHLAB} train --study {wildcards.study} --study-json {params.study:q} "
        "--batch-size {wildcards.bs} --data {input.data} --device {params.device} "
        "--to-target-json {params.target:q} {params.pilot} "
        "--cuda-graphs {params.cuda_graphs} "
        "--checkpoint-every-s {CFG.checkpoint_every_s} {GPU_SLOTS} "
        "--out-dir $(dirname {output.runs}) > {log} 2>&1"


rule collect_to_target:
    input:
        runs=cell_files("runs.parquet", arm="to_target"),
        curves=cell_files("curves.parquet", arm="to_target"),
    output:
        runs="results/{study}/to_target/runs.parquet",
        curves="results/{study}/to_target/curves.parquet",
    log:
        "logs/{study}/collect_to_target.log",
    benchmark:
        "logs/{study}/collect_to_target.benchmark.tsv"
    wildcard_constraints:
        study=_one_of(TO_TARGET),
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    shell:
        "{BATCHLAB} collect --runs {input.runs} --curves {input.curves} "
        "--runs-out {output.runs} --curves-out {output.curves} > {log} 2>&1"


# B_simple at the target: the noise statistics only (no spread), at the weights where each run stopped.
rule gradients_to_target:
    input:
        data="data/{study}.npz",
        checkpoints=cell_files("checkpoints.pt", arm="to_target"),
    output:
        noise="results/{study}/to_target/gradients.parquet",
        spread="results/{study}/to_target/spread.parquet",
    log:
        "logs/{study}/gradients_to_target.log",
    benchmark:
        "logs/{study}/gradients_to_target.benchmark.tsv"
    wildcard_constraints:
        study=_one_of(TO_TARGET),
    threads: gradient_threads
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=TRAIN_GPUS,
    params:
        study=to_target_cells_json,
        gradients=to_target_gradients_json,
        batch_sizes=to_target_batch_sizes,
        device=CFG.device,
    shell:
        "{BATCHLAB} gradients --study {wildcards.study} --study-json {params.study:q} "
        "--gradients-json {params.gradients:q} --batch-sizes {params.batch_sizes} --data {input.data} "
        "--checkpoints {input.checkpoints} --device {params.device} {GPU_SLOTS} --no-spread "
        "--cache results/{wildcards.study}/to_target/cache --workers {threads} "
        "--out {output.noise} --spread {output.spread} > {log} 2>&1"


# X(B) and memory for the recommendation: the training step alone, warm and repeated, on the device the runs use.
rule throughput:
    input:
        data="data/{study}.npz",
    output:
        "results/{study}/to_target/throughput.parquet",
    log:
        "logs/{study}/throughput.log",
    benchmark:
        "logs/{study}/throughput.benchmark.tsv"
    wildcard_constraints:
        study=_one_of(TO_TARGET),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=TRAIN_GPUS,
    params:
        study=to_target_study_json,
        batch_sizes=to_target_batch_sizes,
        device=CFG.device,
    shell:
        "{BATCHLAB} throughput --study {wildcards.study} --study-json {params.study:q} "
        "--batch-sizes {params.batch_sizes} --data {input.data} --device {params.device} {GPU_SLOTS} "
        "--out {output} > {log} 2>&1"
