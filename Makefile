# make train : set up (once) and run the default training job
# make test  : set up (once) and run the test suite
# Set-up is idempotent: a local virtual environment in .venv, rebuilt only when the requirements change.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.reasonrl-installed
ARGS   ?=
# On a machine with no CUDA device, torch 2.13.0 resolves to the CPU build (no multi-GB CUDA download).
TORCH  ?= torch==2.13.0

.PHONY: setup train test clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/base.txt requirements/dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -r requirements/dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

train: setup
	$(PY) train.py $(ARGS)

test: setup
	$(PY) -m pytest -q $(ARGS)

clean-venv:
	rm -rf $(VENV)
