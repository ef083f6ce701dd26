# nogil_collections -- developer entry points.  `make help` lists them.
#
# Two environments live inside the checkout (git-ignored):
#   .venv      free-threaded CPython (found or built by tools/bootstrap_python_ft.sh)
#   .venv-gil  the machine's standard python3 (GIL build)
# Stamp files make every target idempotent: nothing unchanged is rebuilt.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_GIL ?= python3
FT_VENV    := .venv
GIL_VENV   := .venv-gil
# Upper bound for one interpreter's whole pytest run: a hang fails, never stalls.
TEST_TIMEOUT ?= 1500
PYTEST_ARGS ?=
PIP_VERSION := 26.2.1

# Everything the compiled package is built from.
PKG_SOURCES := setup.py pyproject.toml $(shell find src -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.h' -o -name '*.py' -o -name '*.pyi' -o -name 'qsbr_domain.c' -o -name 'py.typed' \) 2>/dev/null)

.PHONY: help test test-ft test-gil bench bench-full race lint typecheck clean distclean build sdist wheel env tsan tsan-ci asan debug-build fault-injection fault-injection-ci test-big

help:  ## list the targets
	@echo "nogil_collections make targets:"
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-12s %s\n", $$1, $$2}'

# ---------------------------------------------------------------- environments
$(FT_VENV)/.stamp-env: pyproject.toml tools/bootstrap_python_ft.sh tools/setup_venv.sh
	@PY_FT="$$(bash tools/bootstrap_python_ft.sh | tail -n1)" && \
	  bash tools/setup_venv.sh "$$PY_FT" $(FT_VENV) $(PIP_VERSION) free-threaded
	@touch $@

$(GIL_VENV)/.stamp-env: pyproject.toml tools/setup_venv.sh
	@bash tools/setup_venv.sh "$$(command -v $(PYTHON_GIL))" $(GIL_VENV) $(PIP_VERSION) gil
	@touch $@

# The package, built from this checkout (incremental: build/ keeps objects).
# pip's output goes through a filter of a harmless warning; pipefail and
# PIPESTATUS keep pip's exit status (grep's own status 1, "no line left", is
# not a failure), so a failed build stops here instead of leaving the last
# good extension installed (a stale .so that the tests would then run).
$(FT_VENV)/.stamp-pkg: $(FT_VENV)/.stamp-env $(PKG_SOURCES)
	@echo "[build] nogil_collections -> $(FT_VENV) (free-threaded)"
	@set -o pipefail; $(FT_VENV)/bin/python -m pip install -q --no-build-isolation --no-deps . 2>&1 \
	  | grep -v '^WARNING: Location' || exit "$${PIPESTATUS[0]}"
	@$(FT_VENV)/bin/python -c 'import nogil_collections' >/dev/null
	@touch $@

$(GIL_VENV)/.stamp-pkg: $(GIL_VENV)/.stamp-env $(PKG_SOURCES) $(FT_VENV)/.stamp-pkg
	@echo "[build] nogil_collections -> $(GIL_VENV) (GIL)"
	@set -o pipefail; $(GIL_VENV)/bin/python -m pip install -q --no-build-isolation --no-deps . 2>&1 \
	  | grep -v '^WARNING: Location' || exit "$${PIPESTATUS[0]}"
	@$(GIL_VENV)/bin/python -c 'import nogil_collections' >/dev/null
	@touch $@

env: $(FT_VENV)/.stamp-pkg $(GIL_VENV)/.stamp-pkg  ## bootstrap both environments and build the package

# ---------------------------------------------------------------- tests
test: env  ## run the whole test suite on both interpreters
	@status=0; \
	 $(MAKE) --no-print-directory test-ft || status=1; \
	 $(MAKE) --no-print-directory test-gil || status=1; \
	 exit $$status

test-ft: $(FT_VENV)/.stamp-pkg  ## run the tests on the free-threaded interpreter only
	@echo "==== pytest on $$($(FT_VENV)/bin/python -c 'import sys; print(sys.version.split()[0], "free-threaded" if not sys._is_gil_enabled() else "GIL")') ===="
	@timeout --signal=INT --kill-after=30 $(TEST_TIMEOUT) $(FT_VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-gil: $(GIL_VENV)/.stamp-pkg  ## run the tests on the GIL interpreter only
	@echo "==== pytest on $$($(GIL_VENV)/bin/python -c 'import sys; print(sys.version.split()[0], "GIL")') ===="
	@timeout --signal=INT --kill-after=30 $(TEST_TIMEOUT) $(GIL_VENV)/bin/python -m pytest $(PYTEST_ARGS)

race: $(FT_VENV)/.stamp-pkg  ## deeper race-test campaign than CI (free-threaded)
	@timeout --signal=INT 3600 $(FT_VENV)/bin/python -m pytest tests/test_race_list.py tests/test_race_dict.py --race-budget=deep $(PYTEST_ARGS)

# ---------------------------------------------------------------- benchmarks
bench: $(FT_VENV)/.stamp-pkg  ## quick headline benchmark (about 3 minutes)
	@$(FT_VENV)/bin/python -m benchmarks --quick

bench-full: $(FT_VENV)/.stamp-pkg  ## the whole benchmark matrix
	@$(FT_VENV)/bin/python -m benchmarks --full

# ---------------------------------------------------------------- quality
lint: $(GIL_VENV)/.stamp-env  ## ruff over the package, tests, benchmarks and tools
	@$(GIL_VENV)/bin/python -m ruff check src tests benchmarks tools

typecheck: $(GIL_VENV)/.stamp-pkg  ## mypy --strict: stubs, pure-Python modules, benchmarks, tools
	@$(GIL_VENV)/bin/python -m mypy

# ---------------------------------------------------------------- packaging
build: env  ## build the extension into both environments

sdist: $(FT_VENV)/.stamp-env  ## build an sdist into dist/
	@mkdir -p dist && $(FT_VENV)/bin/python -c 'import setuptools.build_meta as b; print("dist/" + b.build_sdist("dist"))'

wheel: $(FT_VENV)/.stamp-env  ## build a wheel for the free-threaded interpreter into dist/
	@set -o pipefail; $(FT_VENV)/bin/python -m pip wheel --no-deps --no-build-isolation -w dist . 2>&1 \
	  | grep -v '^WARNING: Location' || exit "$${PIPESTATUS[0]}"

# ---------------------------------------------------------------- sanitizers
tsan:  ## threaded tests under ThreadSanitizer (builds a TSAN CPython once)
	@bash tools/run_sanitized.sh thread $(if $(PYTEST_ARGS),-- $(PYTEST_ARGS))

tsan-ci:  ## bounded TSAN subset (core, qsbr, list and dict race tests, shared list iterators)
	@bash tools/run_sanitized.sh thread --ci

asan:  ## whole suite under AddressSanitizer + UBSan (builds an ASAN CPython once)
	@bash tools/run_sanitized.sh address $(if $(PYTEST_ARGS),-- $(PYTEST_ARGS))

fault-injection:  ## threaded, race and fuzz tests with every suspension point forced (.venv-fault)
	@NOGIL_COLLECTIONS_FUZZ_BUDGET=$${NOGIL_COLLECTIONS_FUZZ_BUDGET:-deep} bash tools/run_sanitized.sh fault $(if $(PYTEST_ARGS),-- $(PYTEST_ARGS))

fault-injection-ci:  ## bounded fault-injection subset (CI)
	@bash tools/run_sanitized.sh fault --ci

test-big: $(FT_VENV)/.stamp-pkg  ## the 10^7-element resource tests (about 1 GB, free-threaded)
	@NOGIL_COLLECTIONS_BIG_TESTS=1 $(FT_VENV)/bin/python -m pytest tests/test_resource_limits.py $(PYTEST_ARGS)

debug-build:  ## extension at -O0 -g3 with asserts into .venv-debug
	@bash tools/run_sanitized.sh debug --build-only

# ---------------------------------------------------------------- housekeeping
clean:  ## remove build products and both environments (keeps the cached interpreter)
	rm -rf build dist $(FT_VENV) $(GIL_VENV) .venv-tsan .venv-asan .venv-debug .pytest_cache .hypothesis src/*.egg-info
	find src -name '*.so' -delete
	find src -name '*.c' ! -name qsbr_domain.c -delete
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean  ## also remove the cached free-threaded interpreter build
	rm -rf $${NOGIL_COLLECTIONS_CACHE:-$$HOME/.cache/nogil-collections}
