# One job per study: every cell's SVMs in one process (scikit-learn imported once), each cell cached
# under results/{study}/cache/ by the content of its embeddings and the settings, so a new batch size
# computes only its own cell.
rule downstream:
    input:
        data="data/{study}.npz",
        embeddings=cell_files("embeddings.npz"),
    output:
        "results/{study}/downstream.parquet",
    log:
        "logs/{study}/downstream.log",
    benchmark:
        "logs/{study}/downstream.benchmark.tsv"
    threads: study_threads
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        downstream=downstream_json,
        batch_sizes=batch_sizes,
    shell:
        "{BATCHLAB} downstream --study {wildcards.study} --downstream-json {params.downstream:q} "
        "--batch-sizes {params.batch_sizes} --data {input.data} --embeddings {input.embeddings} "
        "--cache results/{wildcards.study}/cache --workers {threads} --out {output} > {log} 2>&1"


rule baselines:
    input:
        data="data/{study}.npz",
    output:
        "results/{study}/baselines.parquet",
    log:
        "logs/{study}/baselines.log",
    benchmark:
        "logs/{study}/baselines.benchmark.tsv"
    priority: baselines_priority
    threads: baselines_threads
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        downstream=downstream_json,
        latent=latent_dim,
    shell:
        "{BATCHLAB} baselines --study {wildcards.study} --downstream-json {params.downstream:q} "
        "--latent {params.latent} --workers {threads} "
        "--data {input.data} --out {output} > {log} 2>&1"
