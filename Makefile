# auralize: `make demo` runs the main job, `make test` the test suite, `make bench`
# the benchmarks.  Each creates .venv when missing and installs torch==2.13.0
# first (the CPU wheel on disk; any other torch spec pulls GBs of CUDA packages).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

# axe-core (npm) for the page's accessibility audit (tests/test_web_access.py); without
# npm the audit skips, or fails under AURALIZE_REQUIRE_AUDIO=1.
AXE := .node/node_modules/axe-core/axe.min.js

.PHONY: demo test test-fast bench setup lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check torch==2.13.0
	$(PIP) install -q --disable-pip-version-check -e '.[test,sweep,hf,jax,mlflow,wandb,notebook,deepspeed]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/auralize demo

$(AXE):
	-npm install --prefix .node --no-save --no-audit --no-fund axe-core@4.14.1 >/dev/null

# Real-time tests (JACK, marked `audio`; a browser playing live, `realtime`: see
# tests/conftest.py) run in a fresh pytest process: after
# hundreds of training tests the test process carries torch/keras/lightning
# threads that can make a real-time JACK graph late.
test: $(STAMP) $(AXE)
	$(PY) -m pytest -q -m "not audio and not realtime"
	$(PY) -m pytest -q -m "audio or realtime"

test-fast: $(STAMP) $(AXE)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PIP) install -q --disable-pip-version-check -e '.[test,bench]'
	$(PY) benchmarks/run.py --out bench-results

lint: $(STAMP)
	$(PIP) install -q ruff
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache bench-results .node
