# The front door: `make run` and `make test` each set up .venv themselves.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
PRETRAINED := models/pretrained/mnist.safetensors

.PHONY: install run test lint format clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet torch==2.13.0  # the CPU build on our machines
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $@

run: install  ## sample grids from the shipped model into samples/ (the web explorer comes next)
	$(PYTHON) -m models.sample $(PRETRAINED) --out samples

test: install
	$(PYTHON) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) samples .pytest_cache .ruff_cache *.egg-info
