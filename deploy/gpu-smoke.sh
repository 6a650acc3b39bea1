#!/usr/bin/env bash
# The torch step's image environment on a GPU machine, in one short run (a few minutes): torch
# installed the way deploy/images/Dockerfile.cuda installs it (torch 2.13.0's CUDA wheel and CUDA
# libraries, pinned by requirements.lock and deploy/requirements-cuda.lock), then the network
# trained on CUDA as torch_model trains it, on one week's exported training window.
#
#   here, once:  make gpu-smoke-bundle     (build/gpu/week.parquet from the lake; polars wheels in .whl/)
#   there:       bash deploy/gpu-smoke.sh  (with build/gpu and .whl carried along; figures in $OUT or build/gpu)
#
# A machine that reaches no package index cannot install the image's wheel (several GB with its
# CUDA libraries, too large to carry): the script says so and trains with the torch the machine
# has, reporting its version next to the image's.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-build/gpu}
site=/tmp/gpu-smoke-site
mkdir -p "$out" "$site"
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1

echo "== GPU"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

echo "== torch as the CUDA image installs it: $(grep '^torch==' deploy/requirements-cuda.lock)"
if python3 -m pip index versions torch --retries 0 --timeout 15 > /dev/null 2>&1; then
  grep -v '^torch==' requirements.lock > /tmp/gpu-smoke-constraints.txt
  python3 -m pip install --quiet --target "$site" \
    --constraint /tmp/gpu-smoke-constraints.txt --constraint deploy/requirements-cuda.lock torch
  echo "installed into $site"
else
  echo "NOT installed: no package index is reachable from this machine (and the wheel with its CUDA"
  echo "libraries, several GB, is too large to carry). Training with this machine's own torch:"
  python3 -c 'import torch; print(" ", torch.__version__, "built for CUDA", torch.version.cuda)'
fi

echo "== polars (carried wheels)"
python3 -m pip install --quiet --no-index --no-deps --target "$site" .whl/*.whl

echo "== the network on CUDA, as torch_model trains it"
PYTHONPATH="$site:$PWD" python3 -m ml_assets.bench.gpu_step \
  --features build/gpu/week.parquet --json "$out/gpu-step.json" --require-cuda
