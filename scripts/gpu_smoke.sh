#!/usr/bin/env bash
# GPU smoke test: measured training throughput of the full text3 preset's models on
# CUDA, the full preset's projected training time from it, and a short end-to-end slice of the
# preset (every stage once). About 5 minutes on one H100 with the defaults.
#   scripts/gpu_smoke.sh                      # CUDA
#   scripts/gpu_smoke.sh --device cpu --preset quick --steps 2 --slice-steps 4 --slice-draws 32   # test on CPU
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
exec "$PY" -m modgen_bench.bench.smoke "$@"
