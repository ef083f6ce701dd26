# nogil_collections -- developer entry points.  `make help` lists them.
#
# Environments live inside the checkout (git-ignored), one per interpreter:
#   .venv       free-threaded CPython 3.14 (3.14t), the primary interpreter
#   .venv-315t  free-threaded CPython 3.15
#   .venv-313t  free-threaded CPython 3.13
#   .venv-gil   the machine's standard python3 (GIL build)
# Each free-threaded interpreter is found or built (once per machine) by
# tools/bootstrap_python_ft.sh; `make test` tests every one it can have and
# says which it skipped (tools/test_all.sh).
# Stamp files make every target idempotent: nothing unchanged is rebuilt.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# The GIL interpreter (.venv-gil).  Not named PYTHON_GIL: that is CPython's own
# environment variable (3.13+), which a free-threaded interpreter reads at start.
GIL_PYTHON ?= python3
# The folder of CPython release tarballs (Python-3.14.7.tar.xz,
# Python-3.15.0rc2.tar.xz; sha256 pinned in tools/cpython-sources.sha256) that
# 3.14t and 3.15t are built from when they are not found.  Relative to the
# checkout; name another with `make test CPYTHON_TARBALLS=/path/to/folder`.
# This is the only place the folder is named: the scripts get it as
# NOGIL_COLLECTIONS_TARBALLS.  The default is used only when it exists (a
# user's clone has no ../shared); a folder named by the user must exist.
CPYTHON_TARBALLS ?= ../shared/cpython
ifeq ($(origin CPYTHON_TARBALLS),file)
export NOGIL_COLLECTIONS_TARBALLS := $(if $(wildcard $(CPYTHON_TARBALLS)/.),$(abspath $(CPYTHON_TARBALLS)))
else
export NOGIL_COLLECTIONS_TARBALLS := $(if $(CPYTHON_TARBALLS),$(abspath $(CPYTHON_TARBALLS)))
endif

# The free-threaded versions `make test` runs, in order (the primary first).
FT_VERSIONS := 3.14 3.15 3.13
# The free-threaded version of the single-interpreter targets (race, bench,
# bench-full, test-ft, test-big, tsan, tsan-ci, asan, fault-injection(-ci),
# debug-build): `make bench FT=3.15`, `make tsan FT=3.13`.
FT ?= 3.14
FT_V := $(patsubst %t,%,$(FT))
ifeq ($(filter $(FT_V),$(FT_VERSIONS)),)
$(error FT=$(FT): use one of $(FT_VERSIONS))
endif
# .venv for 3.14, .venv-315t / .venv-313t for the others.
venv_of = $(if $(filter 3.14,$(1)),.venv,.venv-$(subst .,,$(1))t)
FT_VENV  := $(call venv_of,$(FT_V))
GIL_VENV := .venv-gil
# Upper bound for one interpreter's whole pytest run: a hang fails, never stalls.
TEST_TIMEOUT ?= 1500
PYTEST_ARGS ?=
PIP_VERSION := 26.2.1

# Everything the compiled package is built from.
PKG_SOURCES := setup.py pyproject.toml $(shell find src -type f \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.h' -o -name '*.py' -o -name '*.pyi' -o -name 'qsbr_domain.c' -o -name 'py.typed' \) 2>/dev/null)
ENV_SCRIPTS := pyproject.toml tools/setup_venv.sh tools/install_cereggii.sh

.PHONY: help test test-ft test-gil test-314t test-315t test-313t bench bench-full race lint typecheck clean distclean build sdist wheel env env-gil env-314t env-315t env-313t tsan tsan-ci asan debug-build fault-injection fault-injection-ci test-big FORCE

help:  ## list the targets
	@echo "nogil_collections make targets (FT=3.13|3.14|3.15 picks the free-threaded version of the single-interpreter ones; default 3.14):"
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-19s %s\n", $$1, $$2}'

# ---------------------------------------------------------------- environments
# VENV/.python holds the interpreter tools/bootstrap_python_ft.sh resolved; it is
# rewritten only when that changes (PYTHON_FT_314=..., a new build), which then
# rebuilds the venv.  The bootstrap itself runs on every make (a few probes).
define ft_env
$(2)/.python: FORCE
	@set -o pipefail; py="$$$$(bash tools/bootstrap_python_ft.sh $(1) | tail -n1)" && mkdir -p $(2) && \
	  { [[ -f $$@ && "$$$$(cat $$@)" == "$$$$py" ]] || echo "$$$$py" > $$@; }

$(2)/.stamp-env: $(2)/.python $(ENV_SCRIPTS)
	@bash tools/setup_venv.sh "$$$$(cat $(2)/.python)" $(2) $(PIP_VERSION) free-threaded
	@touch $$@
endef
$(foreach v,$(FT_VERSIONS),$(eval $(call ft_env,$(v),$(call venv_of,$(v)))))

$(GIL_VENV)/.stamp-env: $(ENV_SCRIPTS)
	@bash tools/setup_venv.sh "$$(command -v $(GIL_PYTHON))" $(GIL_VENV) $(PIP_VERSION) gil
	@touch $@

# The package, built from this checkout (incremental: build/ keeps objects).
# pip's output goes through a filter of a harmless warning; pipefail and
# PIPESTATUS keep pip's exit status (grep's own status 1, "no line left", is
# not a failure), so a failed build stops here instead of leaving the last
# good extension installed (a stale .so that the tests would then run).
%/.stamp-pkg: %/.stamp-env $(PKG_SOURCES)
	@echo "[build] nogil_collections -> $* ($$($*/bin/python -c 'import sys; print(sys.version.split()[0], "free-threaded" if getattr(sys, "_is_gil_enabled", lambda: True)() is False else "GIL")'))"
	@set -o pipefail; $*/bin/python -m pip install -q --no-build-isolation --no-deps . 2>&1 \
	  | grep -v '^WARNING: Location' || exit "$${PIPESTATUS[0]}"
	@$*/bin/python -c 'import nogil_collections' >/dev/null
	@touch $@

env-314t: .venv/.stamp-pkg  ## the 3.14t environment (.venv) and the package in it
env-315t: .venv-315t/.stamp-pkg  ## the 3.15t environment (.venv-315t)
env-313t: .venv-313t/.stamp-pkg  ## the 3.13t environment (.venv-313t)
env-gil: $(GIL_VENV)/.stamp-pkg  ## the GIL environment (.venv-gil, the machine's python3)

env:  ## every environment whose interpreter can be had (says which it skipped)
	@MAKE="$(MAKE)" NOGIL_COLLECTIONS_GIL_PYTHON="$(GIL_PYTHON)" bash tools/test_all.sh env

# ---------------------------------------------------------------- tests
test:  ## the whole suite on 3.14t, 3.15t, 3.13t and 3.11; skips (and names) what cannot be had
	@MAKE="$(MAKE)" NOGIL_COLLECTIONS_GIL_PYTHON="$(GIL_PYTHON)" bash tools/test_all.sh test

# One interpreter each.  The header names the interpreter that runs.
PYTEST_HEADER = import sys; print("==== pytest on", sys.version.split()[0], "free-threaded" if getattr(sys, "_is_gil_enabled", lambda: True)() is False else "GIL", "====")
define test_one
	@$(1)/bin/python -c '$(PYTEST_HEADER)'
	@timeout --signal=INT --kill-after=30 $(TEST_TIMEOUT) $(1)/bin/python -m pytest $(PYTEST_ARGS)
endef

test-314t: .venv/.stamp-pkg  ## the tests on 3.14t only (e.g. PYTEST_ARGS="-k dict -x")
	$(call test_one,.venv)
test-315t: .venv-315t/.stamp-pkg  ## the tests on 3.15t only
	$(call test_one,.venv-315t)
test-313t: .venv-313t/.stamp-pkg  ## the tests on 3.13t only
	$(call test_one,.venv-313t)
test-gil: $(GIL_VENV)/.stamp-pkg  ## the tests on the GIL interpreter (3.11) only
	$(call test_one,$(GIL_VENV))
test-ft: test-$(subst .,,$(FT_V))t  ## the tests on the FT version only (default 3.14t)

race: $(FT_VENV)/.stamp-pkg  ## deeper race-test campaign than CI (FT, default 3.14t)
	@timeout --signal=INT 3600 $(FT_VENV)/bin/python -m pytest tests/test_race_list.py tests/test_race_dict.py --race-budget=deep $(PYTEST_ARGS)

# ---------------------------------------------------------------- benchmarks
bench: $(FT_VENV)/.stamp-pkg  ## quick headline benchmark on FT (default 3.14t; about 3 minutes)
	@$(FT_VENV)/bin/python -m benchmarks --quick

bench-full: $(FT_VENV)/.stamp-pkg  ## the whole benchmark matrix on FT (default 3.14t)
	@$(FT_VENV)/bin/python -m benchmarks --full

# ---------------------------------------------------------------- quality
lint: $(GIL_VENV)/.stamp-env  ## ruff over the package, tests, benchmarks and tools
	@$(GIL_VENV)/bin/python -m ruff check src tests benchmarks tools

typecheck: $(GIL_VENV)/.stamp-pkg  ## mypy --strict: stubs, pure-Python modules, benchmarks, tools
	@$(GIL_VENV)/bin/python -m mypy

# ---------------------------------------------------------------- packaging
build: env  ## build the extension into every environment

sdist: $(FT_VENV)/.stamp-env  ## build an sdist into dist/
	@mkdir -p dist && $(FT_VENV)/bin/python -c 'import setuptools.build_meta as b; print("dist/" + b.build_sdist("dist"))'

wheel: $(FT_VENV)/.stamp-env  ## build a wheel for the FT interpreter (default 3.14t) into dist/
	@set -o pipefail; $(FT_VENV)/bin/python -m pip wheel --no-deps --no-build-isolation -w dist . 2>&1 \
	  | grep -v '^WARNING: Location' || exit "$${PIPESTATUS[0]}"

# ---------------------------------------------------------------- sanitizers
# Each on the free-threaded version FT (default 3.14): `make tsan FT=3.13`.
tsan:  ## threaded tests under ThreadSanitizer on FT (builds a TSAN CPython once)
	@bash tools/run_sanitized.sh thread --ft $(FT_V) $(if $(PYTEST_ARGS),-- $(PYTEST_ARGS))

tsan-ci:  ## bounded TSAN subset on FT (core, qsbr, list and dict race tests, shared list and dict iterators)
	@bash tools/run_sanitized.sh thread --ft $(FT_V) --ci

asan:  ## whole suite under AddressSanitizer + UBSan on FT (builds an ASAN CPython once)
	@bash tools/run_sanitized.sh address --ft $(FT_V) $(if $(PYTEST_ARGS),-- $(PYTEST_ARGS))

fault-injection:  ## threaded, race and fuzz tests with every suspension point forced, on FT
	@NOGIL_COLLECTIONS_FUZZ_BUDGET=$${NOGIL_COLLECTIONS_FUZZ_BUDGET:-deep} bash tools/run_sanitized.sh fault --ft $(FT_V) $(if $(PYTEST_ARGS),-- $(PYTEST_ARGS))

fault-injection-ci:  ## bounded fault-injection subset on FT (CI)
	@bash tools/run_sanitized.sh fault --ft $(FT_V) --ci

test-big: $(FT_VENV)/.stamp-pkg  ## the 10^7-element resource tests on FT (about 1 GB)
	@NOGIL_COLLECTIONS_BIG_TESTS=1 $(FT_VENV)/bin/python -m pytest tests/test_resource_limits.py $(PYTEST_ARGS)

debug-build:  ## extension at -O0 -g3 with asserts on FT, into .venv-debug
	@bash tools/run_sanitized.sh debug --ft $(FT_V) --build-only

# ---------------------------------------------------------------- housekeeping
clean:  ## remove build products and every environment (keeps the cached interpreters)
	rm -rf build dist .venv .venv-* .pytest_cache .hypothesis src/*.egg-info
	find src -name '*.so' -delete
	find src -name '*.c' ! -name qsbr_domain.c -delete
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean  ## also remove the cached interpreter builds (all versions, sanitized ones too)
	rm -rf $${NOGIL_COLLECTIONS_CACHE:-$$HOME/.cache/nogil-collections}

FORCE:
