rule make_data:
    input:
        data_inputs,
    output:
        "data/{study}.npz",
    log:
        "logs/{study}/make_data.log",
    benchmark:
        "logs/{study}/make_data.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        data=data_json,
    shell:
        "{BATCHLAB} data --data-json {params.data:q} " "--out {output} > {log} 2>&1"
