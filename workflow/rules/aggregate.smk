# One tidy table per study: every run's row with its downstream scores and measurements joined.
rule aggregate:
    input:
        runs=cell_files("runs.parquet"),
        downstream="results/{study}/downstream.parquet",
        curves=cell_files("curves.parquet"),
        lr_search=cell_files("lr_search.parquet"),
    output:
        table="results/{study}/table.parquet",
        curves="results/{study}/curves.parquet",
        lr_search="results/{study}/lr_search.parquet",
    log:
        "logs/{study}/aggregate.log",
    benchmark:
        "logs/{study}/aggregate.benchmark.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=5,
    shell:
        "{BATCHLAB} aggregate --runs {input.runs} --downstream {input.downstream} "
        "--curves {input.curves} --table {output.table} --curves-out {output.curves} "
        "--lr-search {input.lr_search} --lr-search-out {output.lr_search} > {log} 2>&1"
