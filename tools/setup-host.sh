#!/usr/bin/env bash
# Installs what the demo and the tests need on a Debian machine, as root, and prints the
# python to use. Idempotent: what is already there is not installed again.
#   mosquitto (broker, Debian), openssl (test certificates), python3 + venv, node + npm
#   (the MicroPython VM, an npm package the VM tests install into ~/.cache),
#   and the Python packages of setup.cfg's [test] extra in ./.venv
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto mosquitto-clients)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)  # runs the MicroPython VM
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need_apt[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >&2
fi

# A private virtual environment: works the same with Debian's python3 (which refuses
# system-wide pip installs) and with any other python3.
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv >&2
fi
stamp=.venv/.installed-$(cat setup.cfg pyproject.toml | md5sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "setup: pip install -e .[test]" >&2
  .venv/bin/python -m pip install -q --upgrade pip >&2
  .venv/bin/python -m pip install -q -e ".[test]" >&2
  touch "$stamp"
fi
echo "$PWD/.venv/bin/python"
