#!/usr/bin/env bash
# Builds the MicroPython unix port (a real MicroPython VM with socket, select, _thread)
# from Debian trixie's source package, caches the binary OUTSIDE the repository, and
# prints its path as the last line on stdout (everything else goes to stderr).
#
#   tools/build_mp_unix.sh            build once, then just print the cached path
#   tools/build_mp_unix.sh m32        the same source built 32-bit (-m32, no ffi), cached as
#                                     micropython-m32: object sizes as on ESP32 / RP2040, for
#                                     the heap figures (tools/bench/heapjob.py)
#   tools/build_mp_unix.sh m32tls     m32 built as a Pico W's firmware is: asyncio frozen in
#                                     (import it with .frozen on MICROPYPATH) and ssl on
#                                     mbedtls (Debian trixie's mbedtls source package)
#                                     configured as the rp2 port's, bare metal: its buffers
#                                     and state come from the GC heap. Cached as
#                                     micropython-m32-tls, for the heap figures of the
#                                     asyncio driver and of the telemetry job over TLS
#   MP_UNIX_REBUILD=1 tools/...       throw the cached binary away and build again
#
# Either build also keeps the source tree's extmod/asyncio in CACHE/asyncio-lib/asyncio/
# (no frozen modules here: put CACHE/asyncio-lib on MICROPYPATH for asyncio).
#
# Recipe (see DESIGN.md, last section): a private apt source dir whose deb-src entry is
# made from the first stanza of /etc/apt/sources.list.d/debian.sources with the suite
# set to trixie; `apt-get source --download-only micropython` with private lists; unpack
# the orig tarball (Debian stripped lib/mbedtls and lib/micropython-lib, hence no TLS and
# no frozen modules); make ports/unix VARIANT=standard. Needs build-essential,
# libffi-dev, pkg-config, and for m32 gcc-multilib (apt-installed here if missing; that
# needs root).
# Non-interactive and idempotent; a lock serialises concurrent runs.
set -euo pipefail

CACHE=${MP_UNIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/umqtt_paho/micropython-unix}
PROG=build_mp_unix.sh
ASYNCIO=$CACHE/asyncio-lib/asyncio

log() { echo "$PROG: $*" >&2; }
die() { echo "$PROG: ERROR: $*" >&2; exit 1; }
# Any other failing command (set -e) says where it failed.
trap 'echo "$PROG: ERROR: exit $? at line $LINENO: $BASH_COMMAND" >&2' ERR

VARIANT=${1:-}
case "$VARIANT" in
  "")
    BIN=$CACHE/micropython
    BUILD=build-standard
    variant_make=()
    variant_deps=()
    buildlog=$CACHE/build.log
    ;;
  m32)
    BIN=$CACHE/micropython-m32
    BUILD=build-m32
    # no 32-bit libffi on the host: ffi off (nothing here uses it)
    variant_make=(BUILD=build-m32 CFLAGS_EXTRA=-m32 LDFLAGS_EXTRA=-m32 MICROPY_PY_FFI=0)
    variant_deps=(gcc-multilib)
    buildlog=$CACHE/build-m32.log
    ;;
  m32tls)
    BIN=$CACHE/micropython-m32-tls
    BUILD=build-m32tls
    # m_tracked_calloc (mbedtls' allocator on a bare-metal port) needs tracked allocation
    variant_make=(BUILD=build-m32tls "CFLAGS_EXTRA=-m32 -DMICROPY_TRACKED_ALLOC=1"
                  LDFLAGS_EXTRA=-m32 MICROPY_PY_FFI=0)
    variant_deps=(gcc-multilib bzip2)
    buildlog=$CACHE/build-m32tls.log
    ;;
  *) die "unknown variant '$VARIANT' (none, m32 or m32tls)" ;;
esac
[ $# -le 1 ] || die "one argument at most (the variant)"

# The cached build is complete when the binary is there (and, for m32 and m32tls, the
# asyncio folder and the stamp of this recipe: older builds of m32 had asyncio frozen).
cached() {
  [ -x "$BIN" ] || return 1
  [ -z "$VARIANT" ] || { [ -f "$ASYNCIO/__init__.py" ] && [ -f "$BIN.recipe-2" ]; }
}

if [ "${MP_UNIX_REBUILD:-0}" = 1 ]; then
  rm -f "$BIN"
fi
if cached; then
  echo "$BIN"
  exit 0
fi

mkdir -p "$CACHE" || die "cannot create the cache directory $CACHE"
# One build at a time (parallel test sessions): the second waits, then finds the binary.
exec 9>"$CACHE/.lock"
if command -v flock >/dev/null 2>&1; then
  flock -w 1800 9 || die "another build holds $CACHE/.lock for more than 30 min"
fi
if cached; then
  echo "$BIN"
  exit 0
fi
start=$(date +%s)

# ---- build dependencies -----------------------------------------------------------------
missing=()
for pkg in build-essential libffi-dev pkg-config xz-utils python3 "${variant_deps[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing packages ${missing[*]}: run as root or apt-get install them"
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 \
    || die "apt-get install ${missing[*]} failed"
fi

# ---- the source packages ----------------------------------------------------------------
SRC=$CACHE/src
mkdir -p "$SRC"
# fetch PACKAGE: Debian trixie's source package PACKAGE into $SRC (once), through a private
# deb-src entry made from the machine's own sources.
fetch() {
  local pkg=$1 sources=/etc/apt/sources.list.d/debian.sources APT=$CACHE/apt
  ls "$SRC"/"$pkg"_*.orig.tar.* >/dev/null 2>&1 && return 0
  [ -r "$sources" ] || die "$sources not found: cannot make the deb-src entry for trixie"
  rm -rf "$APT"
  mkdir -p "$APT/sources" "$APT/lists/partial" "$APT/cache/archives/partial"
  # First stanza only (up to the first blank line); deb -> deb-src, any suites -> trixie.
  awk 'BEGIN { s = 0 } /^[[:space:]]*$/ { if (s) exit; next } { s = 1; print }' "$sources" \
    | sed -e 's/^Types:.*/Types: deb-src/' -e 's/^Suites:.*/Suites: trixie/' \
    > "$APT/sources/trixie-src.sources"
  grep -q '^Types: deb-src' "$APT/sources/trixie-src.sources" \
    || die "no stanza with a Types: line in $sources"
  log "deb-src entry: $(grep '^URIs:' "$APT/sources/trixie-src.sources")"
  # Private lists and cache: the machine's own apt state is left untouched.
  local aptopts=(
    -o Dir::Etc::SourceList=/dev/null
    -o Dir::Etc::SourceParts="$APT/sources"
    -o Dir::State::Lists="$APT/lists"
    -o Dir::Cache="$APT/cache"
    -o APT::Get::Only-Source=true
    -o APT::Sandbox::User=root  # private dirs under root's home: _apt cannot write there
  )
  log "apt-get update (trixie deb-src, private lists)"
  apt-get -q "${aptopts[@]}" update >&2 || die "apt-get update of the trixie deb-src entry failed"
  log "apt-get source --download-only $pkg"
  (cd "$SRC" && apt-get -q "${aptopts[@]}" source --download-only "$pkg" >&2) \
    || die "apt-get source --download-only $pkg failed"
  ls "$SRC"/"$pkg"_*.orig.tar.* >/dev/null 2>&1 \
    || die "no ${pkg}_*.orig.tar.* in $SRC after apt-get source"
  rm -rf "$APT"
}
fetch micropython
orig=$(ls "$SRC"/micropython_*.orig.tar.* | sort -V | tail -n 1)
log "source: $orig"

# ---- unpack and build -------------------------------------------------------------------
WORK=$CACHE/work
rm -rf "$WORK"
mkdir -p "$WORK"
tar -xf "$orig" -C "$WORK" || die "cannot unpack $orig (delete $SRC to download it again)"
top=$(find "$WORK" -mindepth 1 -maxdepth 1 -type d | head -n 1)
[ -f "$top/ports/unix/Makefile" ] || die "no ports/unix/Makefile in $orig"

jobs=$(nproc 2>/dev/null || echo 2)
frozen=(FROZEN_MANIFEST=)
ssl=(MICROPY_PY_SSL=0 MICROPY_SSL_MBEDTLS=0)
if [ "$VARIANT" = m32tls ]; then
  # mbedtls' sources where the build looks for them (Debian stripped lib/mbedtls), and a
  # configuration as the rp2 port's: MicroPython's common one, bare metal (allocation
  # through m_tracked_calloc: the GC heap), with the host's entropy for the random pool.
  fetch mbedtls
  morig=$(ls "$SRC"/mbedtls_*.orig.tar.* | sort -V | tail -n 1)
  log "mbedtls source: $morig"
  rm -rf "$top/lib/mbedtls" "$WORK/mbedtls-src"
  mkdir -p "$WORK/mbedtls-src"
  tar -xf "$morig" -C "$WORK/mbedtls-src" || die "cannot unpack $morig"
  mv "$(find "$WORK/mbedtls-src" -mindepth 1 -maxdepth 1 -type d | head -n 1)" "$top/lib/mbedtls"
  cat >"$WORK/mbedtls_config_heap.h" <<'CONFIG'
// mbedtls as the rp2 port configures it: its buffers and state from the GC heap
#ifndef MICROPY_INCLUDED_MBEDTLS_CONFIG_H
#define MICROPY_INCLUDED_MBEDTLS_CONFIG_H
#define MBEDTLS_ECP_NIST_OPTIM
#define MBEDTLS_CIPHER_MODE_CTR
#define MBEDTLS_TIMING_C
#define MICROPY_MBEDTLS_CONFIG_BARE_METAL (1)
#include "extmod/mbedtls/mbedtls_config_common.h"
#undef MBEDTLS_ENTROPY_HARDWARE_ALT
#undef MBEDTLS_NO_PLATFORM_ENTROPY
#endif
CONFIG
  # (the make variable holds the include name with its quotes escaped, as extmod.mk's)
  ssl=(MICROPY_PY_SSL=1 MICROPY_SSL_MBEDTLS=1
       "MBEDTLS_CONFIG_FILE=\\\"$WORK/mbedtls_config_heap.h\\\"")
fi
if [ "$VARIANT" = m32tls ]; then
  # asyncio frozen in, as on a board (its bytecode then costs no heap): a manifest of
  # extmod/asyncio alone. The build insists on micropython-lib (Debian stripped it, and
  # nothing of it is frozen here): an empty stand-in. mpy-cross is built first, for the
  # host: the m32 flags would otherwise reach its build too.
  printf 'include("$(MPY_DIR)/extmod/asyncio")\n' >"$WORK/asyncio-manifest.py"
  mkdir -p "$WORK/no-micropython-lib"
  touch "$WORK/no-micropython-lib/README.md"
  log "make -C mpy-cross (for the frozen asyncio)"
  if ! make -C "$top/mpy-cross" -j"$jobs" >"$buildlog" 2>&1; then
    tail -n 40 "$buildlog" >&2
    die "mpy-cross build failed (full log: $buildlog)"
  fi
  frozen=(FROZEN_MANIFEST="$WORK/asyncio-manifest.py" MPY_LIB_DIR="$WORK/no-micropython-lib")
fi
log "make -C ports/unix VARIANT=standard ${variant_make[*]} (-j$jobs), log in $buildlog"
if ! make -C "$top/ports/unix" -j"$jobs" VARIANT=standard "${variant_make[@]}" \
    MICROPY_PY_BTREE=0 MICROPY_SSL_AXTLS=0 "${ssl[@]}" \
    "${frozen[@]}" >>"$buildlog" 2>&1; then
  echo "$PROG: ---- last 40 lines of $buildlog ----" >&2
  tail -n 40 "$buildlog" >&2
  die "make failed (full log: $buildlog)"
fi
built=$top/ports/unix/$BUILD/micropython
[ -x "$built" ] || die "make succeeded but $built is missing"
"$built" -c "import socket, select, _thread" \
  || die "the built micropython lacks socket, select or _thread"
if [ "$VARIANT" = m32 ] || [ "$VARIANT" = m32tls ]; then
  "$built" -c "import sys; assert sys.maxsize == 2147483647, sys.maxsize" \
    || die "$built is not a 32-bit build (sys.maxsize)"
fi
if [ "$VARIANT" = m32tls ]; then
  MICROPYPATH=.frozen "$built" -c "import asyncio; asyncio.core" \
    || die "$built has no frozen asyncio"
  "$built" -c "import tls" || die "$built has no tls module"
fi

# asyncio as source: the frozen copy is not built in without a manifest.
[ -f "$top/extmod/asyncio/__init__.py" ] || die "no extmod/asyncio in $orig"
rm -rf "$ASYNCIO.tmp.$$"
mkdir -p "$(dirname "$ASYNCIO")"
cp -r "$top/extmod/asyncio" "$ASYNCIO.tmp.$$"
rm -rf "$ASYNCIO"
mv "$ASYNCIO.tmp.$$" "$ASYNCIO"

# Atomic install: a reader never sees a half-copied binary.
cp "$built" "$BIN.tmp.$$"
mv -f "$BIN.tmp.$$" "$BIN"
[ -z "$VARIANT" ] || touch "$BIN.recipe-2"
rm -rf "$WORK"
log "built $("$BIN" -c 'import sys; print(sys.version)') in $(( $(date +%s) - start )) s"
echo "$BIN"
