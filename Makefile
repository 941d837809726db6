# Convenience targets; each is one command from the README.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test tiny pretrain lint bench gpu-check mutate
setup:
	python3 -m venv $(VENV) && $(VENV)/bin/pip install -q torch==2.13.0 && $(VENV)/bin/pip install -q -e ".[dev]"
test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -q
tiny: setup
	OMP_NUM_THREADS=1 $(VENV)/bin/nano4d train --tiny
pretrain: setup
	OMP_NUM_THREADS=1 $(VENV)/bin/nano4d pretrain --tiny
lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
bench:
	OMP_NUM_THREADS=1 $(PY) benchmarks/recover_cameras.py && OMP_NUM_THREADS=1 $(PY) benchmarks/curate.py
gpu-check:
	PYTHONUNBUFFERED=1 $(PY) benchmarks/gpu_check.py
mutate: setup
	OMP_NUM_THREADS=1 $(PY) mutation/run.py
