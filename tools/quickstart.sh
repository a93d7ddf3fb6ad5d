#!/usr/bin/env bash
# Quick start, command 1: install what is missing, then run the main job:
# train a small RefineNet on a generated dataset, evaluate it, draw predictions.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh
exec "${PYTHON:-python3}" tools/quickstart.py "$@"
