# Two entry points for a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# Python 3.12: the pyenv one when present, else whatever python3.12 is on PATH.
PYTHON312 ?= $(shell (command -v pyenv >/dev/null && pyenv root >/dev/null 2>&1 && ls -d $$(pyenv root)/versions/3.12*/bin/python 2>/dev/null | tail -n1) || command -v python3.12)

.PHONY: demo test venv bench lint clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || { test -n "$(PYTHON312)" || { echo "Python 3.12 not found (install it with pyenv: pyenv install 3.12)"; exit 1; }; $(PYTHON312) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	@touch $@

venv: $(VENV)/.installed

# The dashboard at http://127.0.0.1:5006 over a simulated day at 30x (Ctrl-C stops both); `make demo ARGS=--headless`
# simulates the whole day at once and prints its JSON summary; ARGS="--speed 60 --symbols 500" and so on.
demo: venv
	$(VENV)/bin/workbench demo $(ARGS)

test: venv
	$(PY) -m pytest -q

bench: venv
	$(PY) bench/bench_tick.py
	$(PY) bench/bench_backtest.py
	$(PY) bench/bench_indicators.py
	$(PY) bench/bench_parse.py
	$(PY) bench/bench_store.py

lint: venv
	$(VENV)/bin/ruff check workbench flows tests bench

clean:
	rm -rf $(VENV) data/*.duckdb data/*.duckdb.wal
