#!/usr/bin/env bash
# Quick start, command 2: install what the tests need, then run the suite.
# Extra arguments go to pytest (e.g. -m "not slow", -k refinenet).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install.sh --tests
exec "${PYTHON:-python3}" -m pytest tests "$@"
