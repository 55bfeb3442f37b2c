#!/usr/bin/env bash
# The GPU check in one go, for a machine with a GPU (and, often, no network):
#
#   WHEELS=/path/to/wheels bench/gpu_check.sh [OUT_DIR] [extra `python -m bench gpu` flags]
#
# 1. With WHEELS set: installs the project from that folder only (pip --no-index), then
#    flash-linear-attention and mamba-ssm when their wheels are there (optional: without them their
#    kernels are not compared, and the JSON says so). Without WHEELS the environment is used as it is.
#    Make the folder on a machine with a network: `pip download -d wheels . flash-linear-attention`
#    (mamba-ssm builds from source for a long time: download a prebuilt wheel that matches the
#    GPU machine's torch and CUDA, or leave it out).
# 2. Runs `python -m bench gpu` (bench/gpu.py) within 7 minutes and writes OUT_DIR/gpu.json
#    (default results/bench); the whole script stays under 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-results/bench}
shift || true
mkdir -p "$OUT"
if [ -n "${WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --find-links "$WHEELS" -e . || { echo "install from $WHEELS failed"; exit 1; }
  for opt in flash-linear-attention mamba-ssm; do
    if python3 -m pip install -q --no-index --find-links "$WHEELS" "$opt" 2>/dev/null; then
      echo "installed $opt"
    else
      echo "$opt: no wheel in $WHEELS (optional; its kernels are not compared)"
    fi
  done
fi
nvidia-smi -L || echo "nvidia-smi: not found"
timeout 450 python3 -m bench gpu --out "$OUT/gpu.json" --budget-s 420 "$@"
