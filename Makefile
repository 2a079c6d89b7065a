# modgen-bench: `make run` and `make test` bootstrap .venv from nothing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install corpora run test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,hf]'
	touch $(STAMP)

# The corpus check comes first: on a machine that cannot install them, `make run` stops in its
# first seconds (one message with the command to run) instead of at the real-world stage.
corpora:
	bash scripts/install_corpora.sh

run: corpora
	$(MAKE) --no-print-directory install
	bash scripts/run_default.sh

# The corpus packages are installed where that is possible (root, password-less sudo); elsewhere
# the script prints the one command to run and the corpus tests are skipped, named in one line.
test: install
	bash scripts/install_corpora.sh || echo "make test: going on; the corpus tests will be skipped" >&2
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/modgen-bench bench exact

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
