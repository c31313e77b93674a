#!/usr/bin/env bash
# The batched engine's GPU checks in one go (docs/benchmarks.md): every step variant captured and free
# of host syncs, throughput against the eager loop and the hand-written reference, contrastive runs batched
# against one after another, where a step's device time goes, the optimizer update alone three ways, and the Lanczos sharpness against
# its exact value and the CPU's, and the critical batch size's known answer with the rate tuned per batch size in the
# engine, B_simple's jackknife, the weight average and the throughput measurement on the device, and the own-model
# example with its advise pilot. Each part has a time limit, and its output lands in OUT_DIR as it goes.
#   bash benchmarks/gpu_checks.sh OUT_DIR [STEPS]
set -uo pipefail
out=${1:?usage: gpu_checks.sh OUT_DIR [STEPS]}
steps=${2:-1000}
mkdir -p "$out"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv | tee "$out/gpu.txt"
"$py" -c "import torch; print('torch', torch.__version__)" | tee -a "$out/gpu.txt"
timeout 150 "$py" benchmarks/engine_capture.py --json "$out/capture.json" 2>&1 | tee "$out/capture.txt"
timeout 200 "$py" benchmarks/train_throughput.py --device cuda --steps "$steps" --json "$out/throughput.json" 2>&1 \
    | tee "$out/throughput.txt"
timeout 120 "$py" benchmarks/contrastive_throughput.py --device cuda --batch-sizes 2 8 64 512 --json "$out/contrastive.json" \
    2>&1 | tee "$out/contrastive.txt"
for shape in "256 1" "64 64" "64 1024"; do
    set -- $shape
    timeout 45 "$py" benchmarks/engine_profile.py --runs "$1" --batch-size "$2" 2>&1 | tee "$out/profile_${1}_${2}.txt"
done
timeout 80 "$py" benchmarks/optimizer_update.py --device cuda --runs 64 256 --json "$out/update.json" 2>&1 | tee "$out/update.txt"
timeout 60 "$py" benchmarks/sharpness_device.py --device cuda --json "$out/sharpness.json" 2>&1 | tee "$out/sharpness.txt"
# the critical batch size's known answer with the rate tuned per batch size, trials stacked in the engine on the GPU
timeout 120 "$py" benchmarks/nqm_known_answer.py --device cuda --engine batched 2>&1 | tee "$out/nqm_known_answer.txt"
# B_simple's jackknife over 1,024 examples on the GPU against the CPU (index_add_ of the group sums on the device)
timeout 120 "$py" benchmarks/jackknife_device.py --device cuda --json "$out/jackknife.json" 2>&1 | tee "$out/jackknife.txt"
# the weight average in the engine on the GPU (CUDA graphs) against the CPU reference, and the recommendation's
# throughput and measured memory ceiling on the GPU
timeout 120 "$py" benchmarks/averaging_device.py --device cuda --json "$out/averaging.json" 2>&1 | tee "$out/averaging.txt"
# the own-model example (a 1-D CNN given as a factory) with its advise pilot, as a user runs it: its cost on one GPU,
# the engine fallback for a factory model on CUDA, and the pilot's halving on the device
CONFIG=examples/mnist1d_cnn/config.yaml RUNS=warm LIMIT_S=240 timeout 260 bash benchmarks/gpu_pipeline.sh "$out/example" \
    2>&1 | tee "$out/example.txt"
