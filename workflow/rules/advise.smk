# The advise pilot of a study with an `advise` block: its batch sizes x rates trained toward to_target's target by
# successive halving on an equal wall-time budget, within the block's cap in minutes (one seed, no interval). The
# study report's recommendation shows its winner and halving table (inputs.smk: report_advise).
rule advise:
    input:
        data="data/{study}.npz",
        pilot=pilot_runs,  # a pilot_fraction target: the sweep's smallest batch size first
    output:
        "results/{study}/advise/pilot.parquet",
    log:
        "logs/{study}/advise.log",
    benchmark:
        "logs/{study}/advise.benchmark.tsv"
    wildcard_constraints:
        study=_one_of(ADVISE),
    threads: 1
    resources:
        mem_mb=4000,
        runtime=advise_runtime,
        gpu=TRAIN_GPUS,
    params:
        study=to_target_study_json,
        target=to_target_json,
        advise=advise_json,
        batch_sizes=advise_batch_sizes,
        pilot=pilot_arg,
        device=CFG.device,
    shell:
        "{BATCHLAB} advise --study {wildcards.study} --study-json {params.study:q} "
        "--to-target-json {params.target:q} --advise-json {params.advise:q} "
        "--batch-sizes {params.batch_sizes} --data {input.data} --device {params.device} "
        "{params.pilot} {GPU_SLOTS} --out {output} > {log} 2>&1"
