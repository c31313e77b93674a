#!/usr/bin/env bash
# The default run on one GPU box, as a user runs it (the workstation profile, no extra flags), timed by
# benchmarks/pipeline_time.py (docs/benchmarks.md): the wall time, each rule's jobs, the training jobs'
# phases (device, capture, data, train, measure, write) and the chain the run waited on. Then the same
# with the study-wide jobs at 4 threads (do 8-thread jobs wait for free cores?), and with every job
# started cold (what the warm start saves). Given a finished CPU run of the same config, the first run's
# report lists the verdicts that differ from it (compare_with) and compare_runs.py writes every metric's
# differences. Each part has a time limit; its output lands in OUT_DIR as it goes.
#   bash benchmarks/gpu_pipeline.sh OUT_DIR [CPU_RUN]
# CONFIG= another config; RUNS= some of "warm study_threads_4 cold" (cold compares with warm: run warm too);
# LIMIT_S= seconds a run may take (240).
set -uo pipefail
out=${1:?usage: gpu_pipeline.sh OUT_DIR [CPU_RUN]}
cpu_run=${2:-}
config=${CONFIG:-config/config.yaml}
limit=${LIMIT_S:-240}
mkdir -p "$out"
out=$(cd "$out" && pwd)
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
scratch=$(mktemp -d)
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no GPU") | tee "$out/gpu.txt"

run() {  # NAME [SNAKEMAKE ARGS...]: one timed run of the config in its own scratch copy
    local name=$1; shift
    local extra=("$@")
    timeout "$limit" "$py" benchmarks/pipeline_time.py --config "$config" --scratch "$scratch/$name" --json "$out/$name.json" \
        ${extra[@]:+-- "${extra[@]}"} > "$out/$name.txt" 2>&1
    echo "$name: rc $?; $(grep -m1 '^wall time' "$out/$name.txt")"
    grep -L "started warm" $(find "$scratch/$name/logs" -name '*.log' ! -name warm_start.log) > "$out/$name.not_warm.txt" 2>/dev/null
}

for name in ${RUNS:-warm study_threads_4 cold}; do
    case $name in
    warm)
        if [ -n "$cpu_run" ]; then
            run warm --config compare_with="$cpu_run"
            cp "$scratch/warm/reports/index.html" "$scratch"/warm/reports/comparison.* "$out/" 2>/dev/null
            "$py" benchmarks/compare_runs.py "$scratch/warm" "$cpu_run" --labels gpu cpu --out "$out/gpu_vs_cpu.md" > /dev/null
        else
            run warm
        fi
        echo "warm run, jobs not started warm: $(wc -l < "$out/warm.not_warm.txt")" ;;
    study_threads_4) run study_threads_4 --set-threads downstream=4 baselines=4 ;;
    cold)
        run cold --config warm_start=false
        "$py" scripts/compare_results.py "$scratch/warm" "$scratch/cold" > "$out/warm_vs_cold.txt" 2>&1
        echo "warm against cold: $(tail -1 "$out/warm_vs_cold.txt")" ;;
    *) echo "unknown run $name (warm, study_threads_4, cold)"; exit 2 ;;
    esac
done
