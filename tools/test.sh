#!/usr/bin/env bash
# The whole test suite: installs what it needs, then runs pytest (brokers are started
# by the fixtures on free loopback ports and stopped afterwards).
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(bash tools/setup-host.sh)
exec "$py" -m pytest -q "$@"
