# `make demo` and `make test` are all a new machine needs: they create .venv when it is missing.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint clean system

# First, within seconds: the Debian packages in scripts/system-packages.txt (installed if we may, else the
# apt-get line to run) and a $(PYTHON) that can create the venv. Order-only, so it runs even when .venv is ready.
system:
	@bash scripts/check-system --python $(PYTHON)

$(STAMP): pyproject.toml | system
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "$(PYTHON) -m venv failed; on Debian: sudo apt-get install -y --no-install-recommends python3-venv" >&2; exit 1; }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/run.py $(BENCH)

lint: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev]'
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/mypy

clean:
	rm -rf build .pytest_cache
