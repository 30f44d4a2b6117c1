# `make demo` and `make test` are all a new machine needs: they create .venv when it is missing.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint clean system messages docs-images

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

# The product's words: extract them from the code and templates (babel.cfg), then bring every catalogue in step
# (new messages arrive untranslated: tests/test_i18n.py names them until they are translated).
messages: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg --no-location --sort-output --width 120 --project=Addendum \
	  --copyright-holder=Addendum -o src/addendum/locale/addendum.pot .
	$(VENV)/bin/pybabel update -i src/addendum/locale/addendum.pot -d src/addendum/locale -D addendum \
	  --width 120 --no-fuzzy-matching --ignore-obsolete

# The README's page images of the shipped redline (docs/images/redline-N.png), drawn by pdftoppm; the redline is dated
# with the last commit's time (or SOURCE_DATE_EPOCH), so a rerun on the same commit gives the same bytes.
docs-images: $(STAMP)
	$(PY) scripts/redline_images.py

clean:
	rm -rf build .pytest_cache
