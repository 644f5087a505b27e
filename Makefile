# The front door: `make run` and `make test` each set up .venv themselves.
VENV ?= .venv
PYTHON := $(VENV)/bin/python

.PHONY: install run test lint format clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet torch==2.13.0  # the CPU build on our machines
	$(PYTHON) -m pip install --quiet -e '.[dev]'
	touch $@

run: install  ## serve the explorer (page, REST API, /docs) on http://127.0.0.1:8000
	$(PYTHON) -m uvicorn backend.app:app --host 127.0.0.1 --port 8000

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

.PHONY: compose-test
compose-test: install  ## opt-in, minutes: build the image, run the compose stack and its train profile for real (Docker engine, Compose v2)
	RUN_COMPOSE_TEST=1 $(PYTHON) -m pytest tests/test_compose.py
