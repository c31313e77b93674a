rule make_data:
    output:
        "data/{study}.npz",
    log:
        "logs/{study}/make_data.log",
    benchmark:
        "logs/{study}/make_data.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        data=data_json,
    shell:
        "{BATCHLAB} data --data-json {params.data:q} " "--out {output} > {log} 2>&1"
