#!/bin/sh
# Installs what bench/runtime.py needs on top of scripts/setup: the PyTorch + transformers
# reference (bench/requirements.txt) and gcc for bench/sgemm_bandwidth.c (libopenblas-dev comes
# with scripts/setup). torch comes from PyPI (`pip install torch`, large: it pulls the CUDA
# libraries too, which the CPU benchmark does not use). TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# installs the much smaller CPU-only wheel instead where that index is reachable.
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

have_cblas() { [ -e /usr/include/cblas.h ] || ls /usr/include/*/cblas.h >/dev/null 2>&1; }
if ! command -v gcc >/dev/null 2>&1 || ! have_cblas; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get install -y --no-install-recommends gcc libopenblas-dev
fi

if [ -n "${TORCH_INDEX_URL:-}" ]; then
    $PY -m pip install --index-url "$TORCH_INDEX_URL" torch
fi
$PY -m pip install -r bench/requirements.txt
$PY -c 'import torch, transformers, safetensors, numpy; print("bench: torch", torch.__version__, "transformers", transformers.__version__)'
