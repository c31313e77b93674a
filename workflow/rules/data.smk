rule make_data:
    output:
        "data/{study}.npz",
    params:
        data=data_json,
    log:
        "logs/{study}/make_data.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "{BATCHLAB} data --data-json {params.data:q} "
        "--out {output} > {log} 2>&1"
