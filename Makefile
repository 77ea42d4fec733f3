# Two entry points a new user needs (see README "Quick start"); both create .venv on first use.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
WORKDIR ?= workdirs/demo

.PHONY: demo test venv bench clean ltx2-fixture

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11 ...'" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -e .
	touch $@

demo: venv
	$(PY) launch/demo.py --workdir $(WORKDIR)

test: venv
	$(PY) -m pytest -q -n 2 tests

# The LTX-2 port's oracle: diffusers' reference at a tiny random size, in its own torch virtualenv
# (never needed for the tests, which read the stored fixture).
ltx2-fixture:
	test -x .venv-ref/bin/python || $(PYTHON) -m venv .venv-ref
	.venv-ref/bin/python -m pip install --quiet -r tools/requirements-reference.txt
	.venv-ref/bin/python tools/make_ltx2_fixture.py

bench: venv
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) workdirs
