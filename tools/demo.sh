#!/usr/bin/env bash
# The demo: installs what it needs, starts its own mosquitto on loopback, runs a
# simulated sensor and an operator console against it (see tools/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(bash tools/setup-host.sh)
exec "$py" tools/demo.py
