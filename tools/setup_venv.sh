#!/usr/bin/env bash
# setup_venv.sh PYTHON VENV PIP_VERSION KIND
# Create VENV on PYTHON (KIND: free-threaded or gil) and install the pinned
# dependency groups from pyproject.toml (build, test, bench; lint on the GIL
# venv).  The groups' markers give each interpreter what installs on it
# (docs/development.md, "Environments").  Idempotent; called by the Makefile.
# A VENV made on another interpreter (an override changed, a new build) is
# made anew.
set -euo pipefail
py="$1"; venv="$2"; pip_version="$3"; kind="$4"
say() { echo "[env] $*"; }
quiet_pip() { "$venv/bin/python" -m pip "$@" 2>&1 | grep -v '^WARNING: Location' || return "${PIPESTATUS[0]}"; }
real_exe() { "$1" -c 'import os, sys; print(os.path.realpath(getattr(sys, "_base_executable", sys.executable)))'; }

want="$(real_exe "$py")"
if [[ -x "$venv/bin/python" && "$(real_exe "$venv/bin/python" 2>/dev/null || true)" != "$want" ]]; then
    say "$venv was made on another interpreter: making it anew on $want"
    find "$venv" -mindepth 1 -maxdepth 1 ! -name .python -exec rm -rf {} +
fi
if [[ ! -x "$venv/bin/python" ]]; then
    say "creating $venv on $("$py" -c 'import sys; print(sys.version.split()[0])') ($kind: $want)"
    "$py" -m venv "$venv"
fi
say "$venv: pip $pip_version"
quiet_pip install -q "pip==$pip_version"
names=(build test bench)
# mypy needs librt, which has no free-threaded wheel: lint from the GIL venv.
[[ "$kind" == "gil" ]] && names+=(lint)
groups=()
for g in "${names[@]}"; do groups+=(--group "$g"); done
say "$venv: dependency groups ${names[*]} (pinned in pyproject.toml)"
# Wheels only, except ft-utils: its release 0.2.0 (the benchmark peer) ships
# only an sdist, which builds in seconds.
quiet_pip install -q --only-binary=:all: --no-binary=ft-utils "${groups[@]}"
if [[ "$kind" == "free-threaded" ]]; then
    bash "$(dirname "$0")/install_cereggii.sh" "$venv" || say "cereggii could not be installed: benchmarks will skip it"
fi
