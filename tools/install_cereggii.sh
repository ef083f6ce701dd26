#!/usr/bin/env bash
# install_cereggii.sh VENV -- best-effort install of the cereggii benchmark peer.
# Placeholder until the benchmarks issue sorts out its source build (needs cmake>=3.30).
exit 1
