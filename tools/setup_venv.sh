#!/usr/bin/env bash
# setup_venv.sh PYTHON VENV PIP_VERSION KIND
# Create VENV on PYTHON and install the pinned dependency groups from
# pyproject.toml (build, test, lint, bench).  Idempotent; called by the Makefile.
set -euo pipefail
py="$1"; venv="$2"; pip_version="$3"; kind="$4"
say() { echo "[env] $*"; }
quiet_pip() { "$venv/bin/python" -m pip "$@" 2>&1 | grep -v '^WARNING: Location' || return "${PIPESTATUS[0]}"; }

if [[ ! -x "$venv/bin/python" ]]; then
    say "creating $venv on $("$py" -c 'import sys; print(sys.version.split()[0])') ($kind)"
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
# Wheels only, except ft-utils: its newest release (0.2.0, the benchmark
# peer) has no wheel for free-threaded 3.13, and its sdist builds in seconds.
quiet_pip install -q --only-binary=:all: --no-binary=ft-utils "${groups[@]}"
if [[ "$kind" == "free-threaded" ]]; then
    bash "$(dirname "$0")/install_cereggii.sh" "$venv" || say "cereggii could not be installed: benchmarks will skip it"
fi
