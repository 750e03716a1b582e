#!/usr/bin/env bash
# The whole test suite: installs what it needs, then runs pytest (brokers are started
# by the fixtures on free loopback ports and stopped afterwards).
#
# The slow first-time steps run here, each said as it starts, rather than silently
# inside pytest's first tests; all are cached outside the repository afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(bash tools/setup-host.sh)
say() { echo "test: $*" >&2; }
say "MicroPython 1.25 unix port: built once from Debian's source package (~1 min), then cached"
bash tools/build_mp_unix.sh >/dev/null
say "the same port built 32-bit, for the heap figures: once (~30 s), then cached"
bash tools/build_mp_unix.sh m32 >/dev/null
say "and 32-bit as a Pico W's firmware (asyncio frozen; TLS on mbedtls from Debian's source, on the GC heap): once (~1 min)"
bash tools/build_mp_unix.sh m32tls >/dev/null
say "MicroPython's WebAssembly VM (npm install, once)"
"$py" -c "import sys; sys.path.insert(0, 'tests'); import test_vm; test_vm.install_vm()"
say "pytest: ~1,230 tests, about 9 minutes on 2 cores"
exec "$py" -m pytest -q "$@"
