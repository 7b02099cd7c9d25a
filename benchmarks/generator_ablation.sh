#!/usr/bin/env bash
# Which family of generator draws holds the model's fit back? Fine-tune the shipped weights for the
# same number of steps on the shipped config with one family of draws removed, export, and measure the
# fit on the *full* training distribution and on clean T1 renders (generator_fit.py, same seeds for all).
#
#   bash benchmarks/generator_ablation.sh OUT_DIR [NAME ...]     (STEPS=300 by default; ≈ 7.5 min each on 2 cores)
#
# Names: control (nothing removed), prior (no random contrasts), sharp (no blur/thick slices),
# flat (no within-class spread or texture), nomorph (no morphology, no partial volume),
# noct (no CT), noacq (no bias, gamma, noise, motion), t1fixed (one contrast: T1 priors, no jitter, no gamma).
# Results: OUT_DIR/NAME/fit.txt (generator fit) and OUT_DIR/NAME/train.log (last line: IXI, 4 cases).
set -euo pipefail
out_root=${1:?usage: generator_ablation.sh OUT_DIR [NAME ...]}
shift
names=${*:-control prior sharp flat nomorph noct noacq t1fixed}
steps=${STEPS:-300}
config=configs/shipped-2mm.yaml
common=(--set model.init_weights=models/synthseg-2mm --set optim.lr=0.0005 --set optim.warmup_steps=20
        --set optim.total_steps="$steps" --set optim.min_lr_ratio=0.1 --set loop.steps="$steps"
        --set loop.val_every="$steps" --set validation.real_every="$steps" --set loop.png_every=0
        --set loop.checkpoint_every_minutes=100)
declare -A removed=(
  [control]=""
  [prior]="generator.mr_prior_probability=1.0"
  [sharp]="generator.resolution_native_probability=1.0 generator.resolution_isotropic_probability=0.0"
  [flat]="generator.std=[0,3] generator.texture_probability=0.0"
  [nomorph]="generator.morphology_probability=0.0 generator.partial_volume_probability=0.0"
  [noct]="generator.ct_probability=0.0"
  [noacq]="generator.bias_probability=0.0 generator.gamma_std=0.0 generator.noise_probability=0.0 generator.motion_probability=0.0"
  [t1fixed]="generator.mode=t1 generator.prior_jitter=0.0 generator.gamma_std=0.0"
)
for name in $names; do
  [[ -v removed[$name] ]] || { echo "generator_ablation.sh: unknown ablation '$name'" >&2; exit 2; }
  overrides=()
  for item in ${removed[$name]}; do overrides+=(--set "$item"); done
  dir=$out_root/$name
  rm -rf "$dir" && mkdir -p "$dir"
  synthseg train --config "$config" -o "$dir/run" "${common[@]}" "${overrides[@]}" > "$dir/train.log" 2>&1
  synthseg export "$(ls "$dir"/run/checkpoints/step_*.pt | tail -1)" -o "$dir/model" >> "$dir/train.log" 2>&1
  python benchmarks/generator_fit.py --model "$dir/model" --config "$config" --samples 40 > "$dir/fit.txt"
  echo "$name: $(grep -A12 '^group' "$dir/fit.txt" | grep -E '^(drawn|clean T1) ' | tr -s ' ' | tr '\n' ';')"
done
