# Two commands set everything up on a fresh machine:
#   make demo   runs the example graph on the embedded SQLite default
#   make test   runs the test suite
VENV ?= .venv
PY := $(VENV)/bin/python

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

.PHONY: install demo test bench
install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/railgraph run examples/triage.py:graph --config examples/triage.toml --session demo && \
	  $(VENV)/bin/railgraph errors demo --config examples/triage.toml

test: $(VENV)/.installed
	$(PY) -m pytest

bench: $(VENV)/.installed
	$(VENV)/bin/pip install -q -e '.[dev,bench]'
	$(PY) bench/run.py
