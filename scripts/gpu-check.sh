#!/usr/bin/env bash
# One command for a CUDA host (after `npm ci`; reaches PyPI once for the pinned vLLM): the GPU tests — the vLLM
# connector with vLLM's KV cache in GPU memory (region host: pinned staging, copies on the connector's CUDA stream;
# region cuda_ipc: the node opens the KV cache from its IPC handles), the addon's CUDA IPC region (pool <-> another
# process's GPU memory) and the node saving and loading through one (a real kvfabric-node) — then a short
# `vllm serve` of a tiny random-weight Llama with and without the connector, printing prefix hits and time to first
# token.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${KVFABRIC_VENV:-$root/.venv}"
nvidia-smi -L || { echo "gpu-check: no NVIDIA GPU here (nvidia-smi failed)" >&2; exit 1; }
echo "== connector GPU tests"
bash "$root/scripts/test-python.sh" tests/test_gpu.py
echo "== native CUDA IPC region, and the node saving and loading through one"
(cd "$root" && KVFABRIC_PYTHON="$venv/bin/python" node scripts/run-tests.mjs native/test/cuda-ipc-region \
  apps/node/src/cuda-ipc.process)
echo "== vllm serve with and without kvfabric"
exec env -u PYTHONHASHSEED "$venv/bin/python" "$root/connectors/vllm/tools/serve_check.py" "$@"
