rule report_study:
    input:
        data="data/{study}.npz",
        table="results/{study}/table.parquet",
        curves="results/{study}/curves.parquet",
        baselines="results/{study}/baselines.parquet",
        noise="results/{study}/gradients.parquet",
        spread="results/{study}/spread.parquet",
        steps="results/{study}/steps_to_target.parquet",
        critical="results/{study}/critical_batch.parquet",
        lr_search="results/{study}/lr_search.parquet",
        to_target=report_to_target,
        equal_steps=report_equal_steps,
        throughput=report_throughput,
        advise=report_advise,
    output:
        html="reports/{study}/index.html",
        summary="reports/{study}/summary.json",
        recommendation="reports/{study}/recommendation.json",
        tables=multiext(
            "reports/{study}/",
            "runs.csv",
            "summary.csv",
            "baselines.csv",
            "curves.csv",
            "gradient_noise.csv",
            "gradient_spread.csv",
            "steps_to_target.csv",
            "critical_batch.csv",
            "scorecard.csv",
            "lr_search.csv",
        ),
        provenance=multiext("reports/{study}/", "config.yaml", "provenance.json"),
        data_inputs="reports/{study}/data_inputs.csv",
        data_examples=report(
            "reports/{study}/data_examples.png",
            caption="../report/data_examples.rst",
            category="Data",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "example inputs"},
        ),
        loss=report(
            "reports/{study}/loss_vs_batch.png",
            caption="../report/loss_vs_batch.rst",
            category="Loss",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "loss vs batch size"},
        ),
        downstream=report(
            "reports/{study}/downstream_vs_batch.png",
            caption="../report/downstream_vs_batch.rst",
            category="Downstream",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "SVM score vs batch size"},
        ),
        curves_samples=report(
            "reports/{study}/loss_curves_samples.png",
            caption="../report/loss_curves.rst",
            category="Loss curves",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "loss vs samples seen"},
        ),
        curves_steps=report(
            "reports/{study}/loss_curves_steps.png",
            caption="../report/loss_curves.rst",
            category="Loss curves",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "loss vs steps"},
        ),
        throughput=report(
            "reports/{study}/throughput_vs_batch.png",
            caption="../report/throughput.rst",
            category="Throughput",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "samples/s vs batch size"},
        ),
        lr_search_fig=report(
            "reports/{study}/lr_search.png",
            caption="../report/lr_search.rst",
            category="Learning rate",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "validation loss vs learning rate"},
        ),
        geometry_fig=report(
            "reports/{study}/geometry_vs_batch.png",
            caption="../report/geometry.rst",
            category="Where training ended",
            subcategory="{study}",
            labels={
                "study": "{study}",
                "figure": "distance, sharpness, gap vs batch size",
            },
        ),
        spread_fig=report(
            "reports/{study}/gradient_spread.png",
            caption="../report/gradient_spread.rst",
            category="Gradient noise",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "gradient spread vs batch size"},
        ),
        b_simple_fig=report(
            "reports/{study}/b_simple.png",
            caption="../report/b_simple.rst",
            category="Gradient noise",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "B_simple over training"},
        ),
        steps_fig=report(
            "reports/{study}/steps_to_target.png",
            caption="../report/steps_to_target.rst",
            category="Critical batch size",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "steps to target vs batch size"},
        ),
        tradeoff_fig=report(
            "reports/{study}/tradeoff.png",
            caption="../report/tradeoff.rst",
            category="Critical batch size",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "samples vs steps"},
        ),
        recommendation_fig=report(
            "reports/{study}/recommendation.png",
            caption="../report/recommendation.rst",
            category="Critical batch size",
            subcategory="{study}",
            labels={"study": "{study}", "figure": "time and samples to target"},
        ),
    log:
        "logs/{study}/report.log",
    benchmark:
        "logs/{study}/report.benchmark.tsv"
    localrule: True
    threads: report_threads
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        study=study_json,
        to_target=to_target_arg,
        throughput=throughput_arg,
        equal_steps=equal_steps_arg,
        advise=advise_arg,
    shell:
        "{BATCHLAB} report --study {wildcards.study} --study-json {params.study:q} "
        "--data {input.data} --table {input.table} --curves {input.curves} "
        "--baselines {input.baselines} --noise {input.noise} --spread {input.spread} "
        "--steps {input.steps} --critical {input.critical} --lr-search {input.lr_search} {params.to_target} {params.equal_steps} {params.throughput} "
        "{params.advise} --workers {threads} --out-dir $(dirname {output.html}) > {log} 2>&1"


rule report_scaling:
    input:
        data=grid_data,
        steps=grid_files("steps_to_target.parquet"),
        tables=grid_files("table.parquet"),
    output:
        html="reports/{grid}/index.html",
        summary="reports/{grid}/summary.json",
        tables=multiext("reports/{grid}/", "scaling.csv", "scorecard.csv"),
        provenance=multiext("reports/{grid}/", "config.yaml", "provenance.json"),
        figure=report(
            "reports/{grid}/critical_vs_scale.png",
            caption="../report/critical_vs_scale.rst",
            category="Critical batch size",
            subcategory="{grid}",
            labels={"study": "{grid}", "figure": "B_crit vs data and model size"},
        ),
    log:
        "logs/{grid}/report_scaling.log",
    benchmark:
        "logs/{grid}/report_scaling.benchmark.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        study=grid_json,
    shell:
        "{BATCHLAB} scaling --study {wildcards.grid} --study-json {params.study:q} "
        "--data {input.data} --steps {input.steps} --tables {input.tables} "
        "--out-dir $(dirname {output.html}) > {log} 2>&1"


rule index:
    input:
        summaries=study_summaries,
        comparison=comparison_summary,
    output:
        "reports/index.html",
    log:
        "logs/index.log",
    benchmark:
        "logs/index.benchmark.tsv"
    localrule: True
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        comparison=lambda wildcards, input: (
            f"--comparison {input.comparison}" if input.comparison else ""
        ),
    shell:
        "{BATCHLAB} index --summaries {input.summaries} "
        "{params.comparison} --out {output} 2> {log}"


if CFG.compare_with is not None:

    rule compare:
        input:
            tables=expand("results/{study}/table.parquet", study=STUDIES),
            scorecards=expand("reports/{page}/scorecard.csv", page=[*STUDIES, *GRIDS]),
            other=other_run_files,
        output:
            html="reports/comparison.html",
            summary="reports/comparison.json",
            metrics="reports/comparison_metrics.csv",
        log:
            "logs/compare.log",
        benchmark:
            "logs/compare.benchmark.tsv"
        localrule: True
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        params:
            other=str(CFG.compare_with),
        shell:
            "{BATCHLAB} compare --tables {input.tables} --scorecards {input.scorecards} --other {params.other:q} "
            "--out-dir $(dirname {output.html}) > {log} 2>&1"
