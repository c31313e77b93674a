rule downstream:
    input:
        data="data/{study}.npz",
        embeddings="results/{study}/bs{bs}/embeddings.npz",
    output:
        "results/{study}/bs{bs}/downstream.parquet",
    log:
        "logs/{study}/downstream_bs{bs}.log",
    benchmark:
        "logs/{study}/downstream_bs{bs}.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        downstream=downstream_json,
    shell:
        "{BATCHLAB} downstream --study {wildcards.study} --downstream-json {params.downstream:q} "
        "--batch-size {wildcards.bs} --data {input.data} --embeddings {input.embeddings} "
        "--out {output} > {log} 2>&1"


rule baselines:
    input:
        data="data/{study}.npz",
    output:
        "results/{study}/baselines.parquet",
    log:
        "logs/{study}/baselines.log",
    benchmark:
        "logs/{study}/baselines.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        downstream=downstream_json,
        latent=latent_dim,
    shell:
        "{BATCHLAB} baselines --study {wildcards.study} --downstream-json {params.downstream:q} "
        "--latent {params.latent} "
        "--data {input.data} --out {output} > {log} 2>&1"
