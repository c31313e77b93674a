# The equal-steps arm of a study with an `equal_steps` block (Hoffer et al. 2017): its batch sizes trained for
# the same number of optimizer steps each, their runs collected and, where a claim scores it, the gradient spread
# at each run's own batch size measured at the end (equal iterations, as Vaessen & van Leeuwen compared). The
# report's vanishes_at_equal_steps and `arm: equal_steps` claims read them (inputs.smk: report_equal_steps).
rule train_equal_steps:
    input:
        data="data/{study}.npz",
    output:
        runs="results/{study}/equal_steps/bs{bs}/runs.parquet",
        curves="results/{study}/equal_steps/bs{bs}/curves.parquet",
        embeddings="results/{study}/equal_steps/bs{bs}/embeddings.npz",
        checkpoints="results/{study}/equal_steps/bs{bs}/checkpoints.pt",
        lr_search="results/{study}/equal_steps/bs{bs}/lr_search.parquet",
    log:
        "logs/{study}/train_equal_steps_bs{bs}.log",
    benchmark:
        "logs/{study}/train_equal_steps_bs{bs}.benchmark.tsv"
    wildcard_constraints:
        study=_one_of(EQUAL_STEPS),
    priority: equal_steps_priority
    threads: 1
    resources:
        mem_mb=4000,
        runtime=120,
        gpu=TRAIN_GPUS,
    params:
        study=equal_steps_cell_json,
        device=CFG.device,
        cuda_graphs=cuda_graphs,
    shell:
        "{BATCHLAB} train --study {wildcards.study} --study-json {params.study:q} "
        "--batch-size {wildcards.bs} --data {input.data} --device {params.device} "
        "--cuda-graphs {params.cuda_graphs} "
        "--checkpoint-every-s {CFG.checkpoint_every_s} {GPU_SLOTS} "
        "--out-dir $(dirname {output.runs}) > {log} 2>&1"


rule collect_equal_steps:
    input:
        runs=cell_files("runs.parquet", arm="equal_steps"),
        curves=cell_files("curves.parquet", arm="equal_steps"),
    output:
        runs="results/{study}/equal_steps/runs.parquet",
        curves="results/{study}/equal_steps/curves.parquet",
    log:
        "logs/{study}/collect_equal_steps.log",
    benchmark:
        "logs/{study}/collect_equal_steps.benchmark.tsv"
    wildcard_constraints:
        study=_one_of(EQUAL_STEPS),
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    shell:
        "{BATCHLAB} collect --runs {input.runs} --curves {input.curves} "
        "--runs-out {output.runs} --curves-out {output.curves} > {log} 2>&1"


# The spread at each run's own batch size where the arm's runs ended: no noise statistics, no probe sweep.
rule gradients_equal_steps:
    input:
        data="data/{study}.npz",
        checkpoints=cell_files("checkpoints.pt", arm="equal_steps"),
    output:
        noise="results/{study}/equal_steps/gradients.parquet",
        spread="results/{study}/equal_steps/spread.parquet",
    log:
        "logs/{study}/gradients_equal_steps.log",
    benchmark:
        "logs/{study}/gradients_equal_steps.benchmark.tsv"
    wildcard_constraints:
        study=_one_of(ARM_SPREAD),
    threads: gradient_threads
    resources:
        mem_mb=4000,
        runtime=60,
        gpu=TRAIN_GPUS,
    params:
        study=equal_steps_cells_json,
        gradients=equal_steps_gradients_json,
        batch_sizes=equal_steps_batch_sizes,
        device=CFG.device,
    shell:
        "{BATCHLAB} gradients --study {wildcards.study} --study-json {params.study:q} "
        "--gradients-json {params.gradients:q} --batch-sizes {params.batch_sizes} --data {input.data} "
        "--checkpoints {input.checkpoints} --device {params.device} {GPU_SLOTS} --own-spread-only "
        "--cache results/{wildcards.study}/equal_steps/cache --workers {threads} "
        "--out {output.noise} --spread {output.spread} > {log} 2>&1"
