#!/usr/bin/env bash
# The prepared run for a lent GPU (issue 7): one command of under ten minutes, the most a device lease allows.
#   1. training throughput on that GPU (generator on the GPU): the shipped network at batch 1 and 4, the wide one
#      (configs/wide-2mm.yaml's network) at batch 4 — short `synthseg train` runs, steps/s read from their log.csv;
#   2. a training chunk of the shipped recipe from scratch at batch 4, its cosine decay sized to MINUTES at the
#      probe's rate, exported to $OUT/model for evaluation on the CPU afterwards:
#      python benchmarks/accuracy.py --model FILES_AT/model --no-experts --no-tta --amp off
#
# Before the lease, here, in the repository root (the device machine has torch, not monai or nibabel, and no
# ../shared; `.whl/` and `work/` are git-ignored):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl monai==1.6.1 nibabel==5.4.2
#   synthseg templates import ../shared/data/templates/synthseg/training_seg_*.nii.gz --recipe aseg-charm \
#       -o work/templates/aseg-charm
# Then the device tool's run: command "bash benchmarks/gpu_sprint.sh 5", carry [".whl", "work/templates/aseg-charm"],
# timeout_s 590 (what travels: the tree ≈ 30 MB, templates 17 MB, wheels 5 MB, under the lease's 64 MiB; what comes
# back: five files in $OUT). Dry run on the CPU (3 min; monai and nibabel installed
# here instead of carried): OUT=/tmp/sprint SITE=/tmp/sprint_site PROBE_STEPS=4 bash benchmarks/gpu_sprint.sh 1
set -euo pipefail
MINUTES=${1:-5}
PROBE_STEPS=${PROBE_STEPS:-40}
OUT=${OUT:-out/gpu_sprint}
RUNS=${RUNS:-$(mktemp -d)}
mkdir -p "$OUT"
SITE=${SITE:-/tmp/site}  # this project and the carried wheels, installed offline beside the machine's torch
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir --upgrade \
    --target "$SITE" . $(compgen -G ".whl/*.whl" || true)
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec > >(tee "$OUT/sprint.log") 2>&1
(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2> /dev/null || echo "no nvidia-smi") \
    | sed 's/^/device: /'
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

train() {  # train RUN_NAME KEY=VALUE ...: the shipped recipe, no real-scan validation (no ../shared there);
           # with LIMIT set, stopped by SIGTERM after LIMIT seconds (the trainer checkpoints and exits)
    local name=$1 sets=() kv
    shift
    for kv in "validation.real_images=''" validation.real_every=0 loop.png_every=0 "$@"; do
        sets+=(--set "$kv")
    done
    ${LIMIT:+timeout -s TERM "$LIMIT"} "$SITE/bin/synthseg" train --config configs/shipped-2mm.yaml \
        -o "$RUNS/$name" "${sets[@]}"
}

rate() {  # steps/s of a run from its log.csv (median step; the first ten steps, warm-up, left out when there are more)
    python3 -c '
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1] + "/log.csv")))
rows = [r for r in rows if int(r["step"]) > 10] or rows
step = statistics.median(float(r["step_s"]) for r in rows)
generate = statistics.median(float(r["generate_s"]) for r in rows)
print(f"{1 / step:.2f} steps/s (step {step:.3f} s, generation {generate:.3f} s)")' "$1"
}

for probe in "shipped 1" "shipped 4" "wide 4"; do
    read -r net batch <<< "$probe"
    extra=()
    [ "$net" = wide ] && extra=("model.channels=[32,64,128,256,512]" model.num_res_units=2)
    train "probe_${net}_b$batch" loop.steps="$PROBE_STEPS" loop.batch_size="$batch" loop.log_every=1 \
        loop.val_every=100000 loop.val_samples=1 "${extra[@]}" 2> "$RUNS/probe.err" > /dev/null \
        || { cat "$RUNS/probe.err"; exit 1; }
    echo "probe: $net network, batch $batch: $(rate "$RUNS/probe_${net}_b$batch")"
done

# 85 % of MINUTES at the probe's rate: validation, checkpoints and start-up take the rest
steps_per_s=$(rate "$RUNS/probe_shipped_b4" | cut -d' ' -f1)
total=$(python3 -c "print(max(20, int(0.85 * $steps_per_s * 60 * $MINUTES)))")
echo "chunk: batch 4, cosine decay over $total steps"
status=0
LIMIT=$((MINUTES * 60 + 60)) train chunk loop.batch_size=4 loop.steps="$total" optim.total_steps="$total" \
    loop.checkpoint_every_minutes=2 loop.val_every=$(( total / 4 > 0 ? total / 4 : 1 )) \
    2> "$OUT/chunk.log" > /dev/null || status=$?
[ "$status" -eq 0 ] || [ "$status" -eq 124 ] || { tail -20 "$OUT/chunk.log"; echo "chunk failed ($status)"; exit 1; }
latest=$(ls "$RUNS/chunk/checkpoints/"step_*.pt | sort | tail -1)
echo "chunk: $(basename "$latest"), $(rate "$RUNS/chunk")"
grep "val Dice" "$OUT/chunk.log" || true
"$SITE/bin/synthseg" export "$latest" -o "$OUT/model"
cp "$RUNS/chunk/log.csv" "$OUT/chunk_log.csv"
