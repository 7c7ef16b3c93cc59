#!/usr/bin/env bash
# The vLLM connector's tests: a virtualenv (KVFABRIC_VENV, default .venv) with the pinned vLLM and its torch
# (connectors/vllm/requirements-test.txt), the connector installed from connectors/vllm as a user would
# (`pip install ./connectors/vllm`), then pytest against real kvfabric-node processes (needs `npm ci` first).
# Extra arguments go to pytest. A vLLM that cannot be installed fails this script, loudly: the tests never stand
# in for vLLM's classes.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${KVFABRIC_VENV:-$root/.venv}"
python="${KVFABRIC_PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "test-python: creating the virtualenv $venv with $("$python" --version)"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
if ! "${pip[@]}" install -q --progress-bar off -r "$root/connectors/vllm/requirements-test.txt"; then
  echo "test-python: FAILED to install $(grep -v '^#' "$root/connectors/vllm/requirements-test.txt" | xargs) into $venv" >&2
  echo "test-python: (disk: $(df -h --output=avail "$venv" | tail -1) free); the connector's contract tests need the real vLLM" >&2
  exit 1
fi
"${pip[@]}" install -q --no-deps --force-reinstall "$root/connectors/vllm"
echo "test-python: $("$venv/bin/python" -c 'import vllm, torch; print(f"vllm {vllm.__version__}, torch {torch.__version__}, CUDA {torch.cuda.is_available()}")' 2>/dev/null)"
cd "$root/connectors/vllm"
"$venv/bin/ruff" format --check --quiet . && "$venv/bin/ruff" check --quiet . || {
  echo "test-python: connectors/vllm is not ruff-clean (\`ruff format\` and \`ruff check --fix\` there)" >&2
  exit 1
}
exec env -u PYTHONHASHSEED HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 DO_NOT_TRACK=1 "$venv/bin/python" -m pytest -ra -p no:cacheprovider "$@"
