# make build | test | demo | bench: each creates .venv and builds the extension if needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SOURCES := setup.py $(shell find csrc -name '*.cpp' -o -name '*.h' -o -name '*.cu')
export MAX_JOBS ?= 2

# A stamp without a built library (e.g. after git clean) must not count.
ifeq ($(wildcard convops/_C*.so),)
$(shell rm -f $(VENV)/.built)
endif

.PHONY: build test demo bench check clean

build: $(VENV)/.built

$(VENV)/.deps: requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

$(VENV)/.built: $(VENV)/.deps $(SOURCES)
	$(PY) -m pip install -q --no-build-isolation --use-pep517 --no-deps -e .
	touch $@

test: build
	$(PY) -m pytest -q tests

demo: build
	$(PY) -m convops tour
	$(PY) -m models.demo
	$(PY) -m convops check

check: build
	$(PY) -m convops check

bench: build
	$(PY) bench/bench.py --out bench/results.json

clean:
	rm -rf build convops/_C*.so *.egg-info $(VENV)/.built
