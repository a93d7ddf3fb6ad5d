#!/usr/bin/env bash
# Quick start, command 2: install what the tests need, then run the suite.
# Extra arguments go to pytest (e.g. -m "not slow", -k refinenet).
#
#   bash tools/run_tests.sh [--stack newest] [pytest args]
#       the whole suite, in $PYTHON's environment (newest stack)
#   bash tools/run_tests.sh --stack oldest [pytest args]
#       the model, config, tool, converter and resume tests on the oldest
#       supported stack (torch 2.1.2), in a virtual environment of their own
#       ($OLDEST_VENV, default ~/.cache/mmseg_refinenet/venv-oldest, outside
#       the repository so that tests copying the checkout leave it out),
#       created and installed the first time (tools/install.sh --stack
#       oldest) and reused after
set -euo pipefail
cd "$(dirname "$0")/.."

# the tests run on the oldest stack: everything that builds, trains, tests,
# resumes, converts or exports a model (not the benchmark and
# CamVid-experiment tooling, which runs on the newest stack)
OLDEST_STACK_TESTS=(
  tests/models
  tests/test_all_configs.py
  tests/test_refinenet_configs.py
  tests/test_frrn_configs.py
  tests/test_released_configs.py
  tests/test_model_index.py
  tests/test_package.py
  tests/test_bad_inputs.py
  tests/test_checkpoint_loading.py
  tests/test_kill_resume.py
  tests/tools/test_train_test_tools.py
  tests/tools/test_test_tool_inputs.py
  tests/tools/test_infer.py
  tests/tools/test_quickstart.py
  tests/tools/test_model_converters.py
  tests/tools/test_dataset_converters.py
  tests/tools/test_onnx_export.py
  tests/tools/test_analysis_tools.py
)

stack=newest
if [ "${1:-}" = "--stack" ]; then
  stack=${2:-}
  shift 2 || shift
fi
case "$stack" in
  newest|oldest) ;;
  *) echo "run_tests.sh: --stack must be newest or oldest, got '$stack'" >&2; exit 2 ;;
esac
if [ "$stack" = oldest ]; then
  venv=${OLDEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/mmseg_refinenet/venv-oldest}
  if [ ! -x "$venv/bin/python" ]; then
    echo "[tests] creating $venv (Python 3.11) for the oldest stack"
    mkdir -p "$(dirname "$venv")"
    "${PYTHON:-python3}" -m venv "$venv"
  fi
  PYTHON="$venv/bin/python" bash tools/install.sh --stack oldest --tests
  exec "$venv/bin/python" -m pytest "${OLDEST_STACK_TESTS[@]}" "$@"
fi
bash tools/install.sh --tests
exec "${PYTHON:-python3}" -m pytest tests "$@"
