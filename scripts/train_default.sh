#!/usr/bin/env bash
# Train the bundled `default` model (configs/default.yaml) end to end, on a GPU or the CPU:
#   1. SynthHumans 256x176 training data (skipped when $DATA/manifest.yaml exists);
#   2. stage geometric: the layout network over the keypoint prior (cross-entropy only);
#   3. the same network without the prior, for the "network alone" row of benchmarks/layout.py;
#   4. stage appearance from (2): geometric frozen, the appearance network fed the predicted layout;
#   5. export (2)+(4) as $OUT_DIR/default.safetensors and (3) as $OUT_DIR/layout-noprior.safetensors.
# Each stage stops after its time budget (train.max_seconds) and saves; everything is set by variables:
#   PEOPLE=40 GEO_SECONDS=20 NOPRIOR_SECONDS=10 APP_SECONDS=20 BATCH=4 scripts/train_default.sh   (a CPU check)
set -euo pipefail
PY=${PY:-python3}
PEOPLE=${PEOPLE:-1500}; WORKERS=${WORKERS:-16}; LOADERS=${LOADERS:-8}; BATCH=${BATCH:-32}
GEO_SECONDS=${GEO_SECONDS:-200}; NOPRIOR_SECONDS=${NOPRIOR_SECONDS:-70}; APP_SECONDS=${APP_SECONDS:-190}
GEO_LR=${GEO_LR:-0.0005}; THREADS=${THREADS:-0}
DATA=${DATA:-data/synth-train-256}; RUNS=${RUNS:-runs/default}; OUT_DIR=${OUT_DIR:-runs/default-export}
mkdir -p "$OUT_DIR"
started=$(date +%s)
if [ ! -f "$DATA/manifest.yaml" ]; then
  $PY -m recapture synth --out "$DATA" --people "$PEOPLE" --poses 6 --size 256x176 --seed 1 --workers "$WORKERS"
fi
common=(--config configs/default.yaml --set "data.manifest=$DATA/manifest.yaml" --set "train.batch_size=$BATCH"
        --set "data.num_workers=$LOADERS" --set train.steps=10000000 --set "train.threads=$THREADS")
$PY -m recapture train "${common[@]}" --set train.stage=geometric --set "train.lr=$GEO_LR" \
  --set "train.max_seconds=$GEO_SECONDS" --set "train.run_dir=$RUNS-geometric"
$PY -m recapture train "${common[@]}" --set train.stage=geometric --set "train.lr=$GEO_LR" \
  --set model.geometric_prior=false --set "train.max_seconds=$NOPRIOR_SECONDS" --set "train.run_dir=$RUNS-noprior"
$PY -m recapture train "${common[@]}" --set train.stage=appearance --set "train.init_from=$RUNS-geometric" \
  --set "train.max_seconds=$APP_SECONDS" --set "train.run_dir=$RUNS-appearance"
device=$($PY -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')")
steps() { ls "$1/checkpoints" | tail -1 | sed 's/step_0*//'; }
meta=(--meta "trained_on=SynthHumans 256x176 (recapture synth --people $PEOPLE --poses 6 --seed 1), batch $BATCH"
      --meta "command=scripts/train_default.sh: geometric $(steps "$RUNS-geometric") steps, appearance $(steps "$RUNS-appearance") steps"
      --meta "wall_time=$(( $(date +%s) - started )) s on $device")
$PY -m recapture export "$RUNS-appearance" --out "$OUT_DIR/default.safetensors" "${meta[@]}"
$PY -m recapture export "$RUNS-noprior" --out "$OUT_DIR/layout-noprior.safetensors" --no-ema "${meta[@]}"
for run in geometric noprior appearance; do cp "$RUNS-$run"/events.out.tfevents.* "$OUT_DIR/$run.tfevents"; done
echo "done in $(( $(date +%s) - started )) s"
