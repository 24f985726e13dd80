# Two commands on a fresh machine with Python 3.11:
#   make run    set everything up and start the program on the bundled demonstration study
#   make test   set everything up and run the whole test suite (lint, import contracts, pytest)

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test lint system-deps clean

setup: $(STAMP)

# Re-install when the dependencies change. requirements.lock pins the exact versions CI tests
# (scripts/lock.sh regenerates it from pyproject.toml's ranges).
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is needed"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[gui,train,dev]'
	touch $@

# the window needs the same Debian packages as the tests (Qt's xcb plugin: libxcb-cursor0, ...)
run: setup system-deps
	$(BIN)/tfesi-desktop --demo

# Debian packages the window and the tests need (Qt's xcb plugin, Xvfb, PDF rendering); installed
# when missing and we may (root), otherwise named with the command that installs them.
system-deps:
	@sh scripts/system-deps.sh

lint: setup
	$(BIN)/ruff check tfesi_desktop tests scripts
	$(BIN)/lint-imports

test: setup system-deps lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
