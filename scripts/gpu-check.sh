#!/usr/bin/env bash
# The GPU check (issue 15, item 5): 200 steps of every method on CPU and on CUDA from seed 0, the losses
# compared, and CUDA steps/s per method alone and with 2 and 4 runs sharing the GPU. Skipped (exit 0)
# where there is no CUDA device, as on CI. Record its table in benchmarks/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
exec "$PYTHON" scripts/gpu_check.py "$@"
