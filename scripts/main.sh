#!/usr/bin/env bash
# The main job: install the dependencies, build tinyemo, train a Metric
# Projector on the Emotion6 CLIP ViT-L/14 features with the best recipe
# (docs/projector.md) and print its evaluation on the held-out files (20% of
# every emotion, chosen by --split-seed and recorded in the model file).
# FEATURES and MODEL override the input folder and the output model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j2 --target tinyemo_cli
features=${FEATURES:-../shared/data/emotion6-clip-vit-l-14/train}
model=${MODEL:-out/emotion6-projector.safetensors}
mkdir -p "$(dirname "$model")"
build/tinyemo projector train --features "$features" --out "$model" --recipe best --val-fraction 0.2 --split-seed 0
echo "== evaluation on the held-out files =="
build/tinyemo projector eval --model "$model" --features "$features" --split val
build/tinyemo projector eval --model "$model" --features "$features" --split val --json
