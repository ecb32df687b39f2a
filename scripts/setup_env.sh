#!/usr/bin/env bash
# Creates .venv/ with everything the tests and the CPU demo need, in the order UPSTREAM facts require:
# pinned CPU torch first (an unpinned one pulls multi-GB CUDA builds), the two hosts without their
# declared dependencies (SkyThought 0.1.0 pins vllm and Python < 3.11), their real runtime needs, the
# test-only torchaudio import stand-in, then this project (editable). Idempotent: a stamp of the inputs
# makes a second run return at once.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
STAMP="$VENV/.vr-setup-stamp"
want=$(cat scripts/setup_*.sh requirements/*.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
bash scripts/setup_system.sh
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2>&1 | grep -vE "^WARNING: (Location|The candidate)|is ignored" || true; }
pip install "torch==2.13.0"
pip install --no-deps "llamafactory==0.9.5"
pip install --no-deps --ignore-requires-python "skythought==0.1.0"
pip install -r requirements/hosts-runtime.txt -r requirements/dev.txt
# Math-Verify beside SkyThought's latex2sympy2: one ANTLR runtime (4.9.3) serves both; see the file.
pip install --no-deps -r requirements/verify-nodeps.txt
"$VENV/bin/python" -m pip --disable-pip-version-check -q install --no-build-isolation "deepspeed==0.19.8" >/dev/null 2>&1 \
  || echo "setup: deepspeed could not be installed; ZeRO tests will be skipped" >&2
# LLaMA-Factory 0.9.5 imports torchaudio at module level (data/mm_plugin.py) and no PyPI torchaudio
# loads beside the CPU torch 2.13 wheel: a test-environment import stand-in, never shipped in the package.
"$VENV/bin/python" scripts/torchaudio_standin.py
pip install --no-deps --no-build-isolation -e .
# The plugin guide's worked example (docs/plugins.md), installed the way a user installs a plugin:
# the tests use its estimator, verifier and eval task through the entry point only.
pip install --no-deps --no-build-isolation -e examples/vr-example-plugin
"$VENV/bin/python" -c "import torch, llamafactory, vr_plugins; import skythought.evals.tasks" >/dev/null
echo "$want" > "$STAMP"
echo "setup: $VENV ready"
