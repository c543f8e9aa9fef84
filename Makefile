# Two entry points that work on a fresh machine with python3: `make train`, `make test`.
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TASK ?= gin/tasks/halfcheetah.gin

$(STAMP): pyproject.toml constraints-cpu.txt
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -c constraints-cpu.txt -e '.[test,bench,deploy,scale,tune,wandb]'
	touch $(STAMP)

.PHONY: setup train test bench
setup: $(STAMP)

train: $(STAMP)
	$(VENV)/bin/genpo train $(TASK)

test: $(STAMP)
	$(PYTHON) -m pytest

bench: $(STAMP)
	$(PYTHON) -m benchmarks.likelihood
	$(PYTHON) -m benchmarks.envs
