#!/usr/bin/env python3
"""Build umqtt_paho for a board and copy it, with the board's application, over USB serial.

    python3 tools/deploy.py --board NAME [--port /dev/ttyUSB0|auto] [--dry-run]
                            [--no-main] [--no-build] [--reset] [--timeout S]

NAME is a folder of boards/ (esp32_devkitc, esp32s3, pico_w, pico2_w, ...). The tool
1. compiles the library and the board's port modules to .mpy with tools/build.py (into
   build/<build board>/umqtt_paho/; --no-build uses what is there, after checking it is
   complete and not older than the sources);
2. opens the port with mpremote (PyPI, pinned in setup.cfg's [test] extra: the library's
   SerialTransport, its raw REPL and raw-paste protocol; nothing of that is reimplemented
   here), soft-resets the board into the raw REPL (this also stops a running main.py and
   its threads), and checks it runs MicroPython on the platform the build is for;
3. asks the board for its free flash (os.statvfs('/')) and refuses, before writing
   anything, if the files do not fit (each file rounded up to whole flash blocks, a
   conservative estimate: --force skips it);
4. creates /lib, /lib/umqtt_paho, /lib/umqtt_paho/ports as needed, removes files in
   those two package folders that this deploy does not ship (a stale client.py would
   shadow client.mpy), copies the .mpy files, then the board's files (telemetry.py,
   wifi_esp32.py, ..., secrets.py if you created one, main.py last), with a progress
   display;
5. checks every file on the board against the source (size, and SHA-256 where the
   firmware has hashlib).

Which build board: the BOARD_TABLE below (esp32_devkitc -> esp32, ...); a folder it
does not list is looked up in its board.json ("build_board", or "mpy_arch", or a
MicroPython firmware name such as "RPI_PICO_W"), then in board.py (NAME = "..." lines,
read, never run). A CircuitPython board (feather_esp32s3_cp) is refused with what to do
instead: its firmware cannot load these .mpy files.

Which board files: those board.json lists in "files" (a path such as
../common/telemetry.py, a module several boards share, goes to / under its own name),
plus its "settings" file (secrets.py) if you created one, never its "settings_example";
"entry" (main.py) is the one --no-main leaves out (the board keeps the main.py it has).
Without board.json: the top-level *.py and *.mpy of the folder except manifest.py,
*_example.py and test_*.py.
Either way your own TLS files there (*.der, *.pem, *.crt, *.key: git-ignored) go too.

--dry-run builds (unless --no-build) and lists every file, source -> destination with
its size, and the total, without opening any port.

The library goes to board.json's "lib_dir" (/lib: on sys.path of the esp32 and rp2
ports). A copy at /umqtt_paho would shadow it (the current directory comes first on
sys.path): the tool warns about it.

Checked against a pty peer that speaks the raw REPL (tests/raw_repl_peer.py), not on a
board: see tests/test_deploy.py for what that covers.

Exit status: 0 done; 2 usage (unknown board, a CircuitPython board, several boards and
no --port); 3 no board (the port does not exist, no USB serial port found, the port
cannot be opened) or the device does not answer as MicroPython (no raw REPL: wrong
port, other firmware) or is another platform than the board named; 4 not enough free
flash (found before copying, or ENOSPC from the board while copying); 1 anything else
(mpy-cross missing, compile error, verification failed, a board-side error).
"""

import argparse
import ast
import contextlib
import errno
import hashlib
import importlib.util
import io
import json
import os
import sys
import time

TOOLS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TOOLS)

MPREMOTE_PIN = "1.29.0"  # the version setup.cfg pins; its SerialTransport API is used

EXIT_OK, EXIT_OTHER, EXIT_USAGE, EXIT_NO_BOARD, EXIT_NO_SPACE = 0, 1, 2, 3, 4

# boards/<folder> -> tools/build.py board. None: not a MicroPython board (see
# _NOT_BUILDABLE). A folder missing here is looked up in its board.json / board.py.
BOARD_TABLE = {
    "esp32_devkitc": "esp32",
    "esp32s3": "esp32s3",
    "pico_w": "pico_w",
    "pico2_w": "pico2_w",
    "feather_esp32s3_cp": None,
}

_NOT_BUILDABLE = (
    "%s is a CircuitPython board: tools/build.py compiles .mpy files for MicroPython "
    "1.29, which CircuitPython cannot load, and CircuitPython's flash is read-only to "
    "the board while the CIRCUITPY drive is mounted on a computer. Copy umqtt_paho/ "
    "(the .py sources, with ports/ as umqtt_paho/ports/) and the files of boards/%s/ "
    "onto the CIRCUITPY drive instead."
)

# Keys a board.json may use for its build board, in this order of preference; or
# its architecture (matched against tools/build.py's BOARDS), or its firmware.
_JSON_BOARD_KEYS = ("build_board", "build", "mpy_board")
_JSON_ARCH_KEYS = ("march", "mpy_arch", "arch", "mpy_cross_arch")
_JSON_FIRMWARE_KEYS = ("firmware", "runtime", "implementation")
# MicroPython's firmware board names (ports/*/boards/NAME), as a board.json may give them.
_FIRMWARE_BOARDS = {
    "ESP32_GENERIC": "esp32",
    "ESP32_GENERIC_S3": "esp32s3",
    "RPI_PICO_W": "pico_w",
    "RPI_PICO2_W": "pico2_w",
}

# boards/common/: modules the boards share (a board.json lists them as ../common/NAME),
# not a board.
SHARED_DIR = "common"

# Board files that never go to the board.
_HOST_ONLY = ("manifest.py", "board.json")
_CREDENTIAL_EXTENSIONS = (".der", ".pem", ".crt", ".key")  # TLS files: yours, git-ignored
_DEVICE_EXTENSIONS = (".py", ".mpy") + _CREDENTIAL_EXTENSIONS

# sys.platform of the firmware a build board's port modules are for.
_PORT_PLATFORM = {"esp32": "esp32", "rp2": "rp2"}

# MicroPython's native architectures (py/persistentcode.h, MP_NATIVE_ARCH_*).
_ARCH_NAMES = (
    "none",
    "x86",
    "x64",
    "armv6",
    "armv6m",
    "armv7m",
    "armv7em",
    "armv7emsp",
    "armv7emdp",
    "xtensa",
    "xtensawin",
    "rv32imc",
    "rv64imc",
)

# Known USB vendor ids of MicroPython boards and their USB-serial bridges, preferred
# by --port auto when several USB serial ports are present.
_KNOWN_VIDS = {
    0x303A: "Espressif",
    0x10C4: "Silicon Labs CP210x",
    0x1A86: "WCH CH340/CH9102",
    0x0403: "FTDI",
    0x2E8A: "Raspberry Pi",
    0xF055: "MicroPython",
    0x239A: "Adafruit",
}

CHUNK = 256  # bytes per raw-REPL write (mpremote's default: fits every port's stdin buffer)
RESERVE_BLOCKS = 2  # flash blocks left free on purpose (littlefs needs room to move)
DIR_BLOCKS = 2  # a littlefs directory is a metadata pair


class DeployError(Exception):
    def __init__(self, code, message):
        Exception.__init__(self, message)
        self.code = code
        self.message = message


class NoSpace(DeployError):
    def __init__(self, message):
        DeployError.__init__(self, EXIT_NO_SPACE, message)


def _human(n):
    if n < 1024:
        return "%d B" % n
    return "%.1f KB" % (n / 1024.0)


def _rel(path):
    # A source path as the user knows it: relative to the repository when inside it.
    path = os.path.abspath(path)
    try:
        rel = os.path.relpath(path, REPO)
    except ValueError:  # another drive on Windows
        return path
    return path if rel.startswith("..") else rel


def load_build():
    """tools/build.py as a module (its functions and BOARDS table)."""
    spec = importlib.util.spec_from_file_location(
        "umqtt_paho_build", os.path.join(TOOLS, "build.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------- board -> build board


def _board_file_mapping(folder, builds):
    """The build board named by folder/board.json or folder/board.py, or None if neither
    says; raises DeployError for a CircuitPython board or a name build.py does not know.

    Returns (build board or None, source file or None, True if the source is board.py).
    """
    values = {}
    src = None
    jpath = os.path.join(folder, "board.json")
    ppath = os.path.join(folder, "board.py")
    if os.path.isfile(jpath):
        try:
            with open(jpath) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            raise DeployError(EXIT_USAGE, "%s: not valid JSON: %s" % (_rel(jpath), e))
        if isinstance(data, dict):
            values = {str(k).lower(): v for k, v in data.items()}
            src = jpath
    if not values and os.path.isfile(ppath):
        # Module-level NAME = "literal" assignments only; board.py is never executed.
        try:
            with open(ppath) as f:
                tree = ast.parse(f.read(), ppath)
        except (OSError, SyntaxError, ValueError):
            tree = None
        for node in getattr(tree, "body", ()):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                        values[target.id.lower()] = node.value.value
        known = _JSON_BOARD_KEYS + _JSON_ARCH_KEYS + _JSON_FIRMWARE_KEYS
        if any(k in values for k in known):
            src = ppath
        else:
            values = {}
    if not values:
        return None, None, False
    is_py = src == ppath
    for key in _JSON_FIRMWARE_KEYS:
        if "circuitpython" in str(values.get(key, "")).lower():
            return "circuitpython", src, is_py
    for key in _JSON_BOARD_KEYS:
        name = values.get(key)
        if isinstance(name, str):
            if name not in builds:
                raise DeployError(
                    EXIT_USAGE,
                    "%s says %s=%r, which tools/build.py does not build (it knows: %s)"
                    % (_rel(src), key, name, ", ".join(sorted(builds))),
                )
            return name, src, is_py
    for key in _JSON_ARCH_KEYS:
        arch = values.get(key)
        if isinstance(arch, str):
            arch = arch.replace("-march=", "")
            for name in sorted(builds):
                if builds[name][0] == arch:
                    return name, src, is_py
            raise DeployError(
                EXIT_USAGE,
                "%s says %s=%r: no tools/build.py board has that arch" % (_rel(src), key, arch),
            )
    for value in values.values():  # a firmware board name under any key
        if isinstance(value, str) and value.upper() in _FIRMWARE_BOARDS:
            return _FIRMWARE_BOARDS[value.upper()], src, is_py
    return None, None, False


def resolve_board(name, boards_dir, builds):
    """(build board, board folder or None, notes) for a boards/ folder name.

    The table above wins; board.json / board.py fill in for folders it does not list
    (and a disagreement is reported as a note).
    """
    if name == SHARED_DIR:
        raise DeployError(
            EXIT_USAGE,
            "boards/%s/ holds the modules the boards share, not a board: name a board "
            "(its board.json lists what it takes from %s/)" % (name, name),
        )
    folder = os.path.join(boards_dir, name)
    has_folder = os.path.isdir(folder)
    notes = []
    try:
        from_file, src, _ = (
            _board_file_mapping(folder, builds) if has_folder else (None, None, False)
        )
    except DeployError as e:
        if name not in BOARD_TABLE:
            raise
        from_file, src = None, None
        notes.append("note: %s (the table in tools/deploy.py decides)" % e.message)
    if name in BOARD_TABLE:
        build = BOARD_TABLE[name]
        if from_file and from_file != (build or "circuitpython"):
            notes.append(
                "note: %s says %s, the table in tools/deploy.py says %s; using the table"
                % (_rel(src), from_file, build or "circuitpython")
            )
    elif from_file:
        build = None if from_file == "circuitpython" else from_file
    elif name in builds:
        build = name  # a folder, or a bare build board (the library only), named as build.py
        if not has_folder:
            notes.append("note: no boards/%s/ folder: copying the library only" % name)
    else:
        folders = sorted(
            d
            for d in (os.listdir(boards_dir) if os.path.isdir(boards_dir) else ())
            if os.path.isdir(os.path.join(boards_dir, d)) and d != SHARED_DIR
        )
        raise DeployError(
            EXIT_USAGE,
            "unknown board %r: boards/ has %s; tools/deploy.py knows %s; tools/build.py "
            'builds %s (a new folder needs a board.json with {"build_board": ...})'
            % (
                name,
                ", ".join(folders) or "no folders",
                ", ".join(sorted(BOARD_TABLE)),
                ", ".join(sorted(builds)),
            ),
        )
    if build is None:
        raise DeployError(EXIT_USAGE, _NOT_BUILDABLE % (name, name))
    if not has_folder and name in BOARD_TABLE:
        notes.append("note: boards/%s/ does not exist (yet): copying the library only" % name)
    return build, (folder if has_folder else None), notes


# ---------------------------------------------------------------- what to copy


class Item:
    __slots__ = ("src", "dest", "size", "kind")

    def __init__(self, src, dest, size, kind):
        self.src, self.dest, self.size, self.kind = src, dest, size, kind

    def __repr__(self):
        return "Item(%r -> %r, %d, %s)" % (self.src, self.dest, self.size, self.kind)


def expected_modules(build, bmod):
    """[(source .py, path of its .mpy under the build board's folder)] by build.py's
    own rules (its CORE, HOST_ONLY, HOSTS, BOARDS), __init__ and the core first."""
    lib = [n[:-3] for n in sorted(os.listdir(bmod.LIB_DIR)) if n.endswith(".py")]
    if build not in getattr(bmod, "HOSTS", ()):
        lib = [n for n in lib if n not in getattr(bmod, "HOST_ONLY", ())]
    core = getattr(bmod, "CORE", ())
    order = [n for n in core if n in lib] + [n for n in lib if n not in core]
    out = [(os.path.join(bmod.LIB_DIR, n + ".py"), "umqtt_paho/%s.mpy" % n) for n in order]
    port_names = bmod.BOARDS[build][1]
    if port_names:
        for n in ("__init__",) + tuple(port_names):
            src = os.path.join(bmod.PORTS_DIR, n + ".py")
            if os.path.isfile(src):
                out.append((src, "umqtt_paho/ports/%s.mpy" % n))
    return out


def build_files(build, build_root, bmod, do_build, out=print):
    """Build (or check the existing build of) one build board; returns [(.mpy path,
    path under the board's lib folder)] and warnings."""
    pkg = os.path.join(build_root, build, "umqtt_paho")
    warnings = []
    if do_build:
        try:
            mpy_cross, version = bmod.find_mpy_cross(False)
        except bmod.ToolError as e:
            raise DeployError(EXIT_OTHER, "cannot build: %s" % e)
        out("building %s with %s" % (build, version.splitlines()[0] if version else "mpy-cross"))
        rows, missing, errors = bmod.build_board(build, build_root, mpy_cross)
        if errors:
            raise DeployError(EXIT_OTHER, "compile errors:\n  " + "\n  ".join(errors))
        for m in missing:
            warnings.append("warning: %s does not exist yet: not built, not copied" % m)
    elif not os.path.isdir(pkg):
        raise DeployError(
            EXIT_OTHER,
            "--no-build, but %s does not exist: run without --no-build (or "
            "python3 tools/build.py --board %s)" % (_rel(pkg), build),
        )
    # Exactly the modules build.py makes for this board: a missing one is fatal, an
    # older one a warning, anything else in the folder (an earlier build's) is left.
    expected = expected_modules(build, bmod)
    missing, stale = [], []
    for src, rel in expected:
        target = os.path.join(build_root, build, rel)
        if not os.path.isfile(target):
            missing.append(rel)
        elif os.path.getmtime(src) > os.path.getmtime(target):
            stale.append(rel)
    if missing:
        raise DeployError(
            EXIT_OTHER,
            "the build in %s lacks %s: run without --no-build" % (_rel(pkg), ", ".join(missing)),
        )
    if stale:
        warnings.append(
            "warning: older than its source (run without --no-build): " + ", ".join(stale)
        )
    wanted = set(rel for _, rel in expected)
    extra = []
    for dirpath, _, filenames in os.walk(pkg):
        for fn in filenames:
            rel = os.path.relpath(os.path.join(dirpath, fn), os.path.dirname(pkg))
            rel = rel.replace(os.sep, "/")
            if rel not in wanted:
                extra.append(rel)
    if extra:
        warnings.append("note: not copied, not part of this build: " + ", ".join(sorted(extra)))
    return [(os.path.join(build_root, build, rel), rel) for _, rel in expected], warnings


def board_meta(folder):
    """boards/NAME/board.json as a dict ({} if absent or not an object)."""
    path = os.path.join(folder, "board.json") if folder else None
    if not path or not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _str(value, default):
    return value if isinstance(value, str) and value else default


def board_files(folder, no_main, mapping_from_board_py=False):
    """(Items to copy, [(file, why not copied)]) for a board folder.

    With board.json: its "files" (the application), its "settings" file (secrets.py)
    if you created it, never its "settings_example"; "entry" (main.py) is the one
    --no-main leaves out. Without: the rule in the module docstring. Either way your
    own certificate/key files in the folder (git-ignored) go too.
    """
    items, skipped = [], []
    if folder is None:
        return items, skipped
    meta = board_meta(folder)
    entry = _str(meta.get("entry"), "main.py")
    settings = _str(meta.get("settings"), "secrets.py")
    example = _str(meta.get("settings_example"), "secrets_example.py")
    listed = meta.get("files")
    if not (isinstance(listed, list) and all(isinstance(n, str) for n in listed)):
        listed = None
    if listed is not None:
        absent = [n for n in listed if not os.path.isfile(os.path.join(folder, n))]
        if absent:
            raise DeployError(
                EXIT_OTHER,
                "%s lists %s, not in that folder"
                % (_rel(os.path.join(folder, "board.json")), ", ".join(absent)),
            )
    chosen = []
    for fn in sorted(os.listdir(folder)):
        path = os.path.join(folder, fn)
        if not os.path.isfile(path):
            continue
        mine = fn == settings or fn.endswith(_CREDENTIAL_EXTENSIONS)
        if fn == example or fn.endswith("_example.py") or fn.startswith("example_"):
            skipped.append((fn, "a template, never copied"))
        elif fn in _HOST_ONLY:
            skipped.append((fn, "host-side"))
        elif listed is not None and fn not in listed and not mine:
            if fn.endswith(".py"):
                skipped.append((fn, "not in board.json's files"))
        elif fn.startswith("test_"):
            skipped.append((fn, "a test"))
        elif fn == "board.py" and mapping_from_board_py:
            skipped.append((fn, "host-side board definition"))
        elif listed is None and not fn.endswith(_DEVICE_EXTENSIONS):
            pass  # README.md, package.json and such: not worth a line
        elif fn == entry and no_main:
            skipped.append((fn, "--no-main"))
        else:
            chosen.append(fn)
    for fn in chosen:
        kind = "secrets" if fn == settings else "main" if fn == entry else "board"
        if fn.endswith(_CREDENTIAL_EXTENSIONS):
            kind = "secrets"
        items.append(
            Item(
                os.path.join(folder, fn), "/" + fn, os.path.getsize(os.path.join(folder, fn)), kind
            )
        )
    # Listed paths outside the folder (../common/telemetry.py: modules boards share) go
    # to / under their own name, like the folder's files.
    for rel in listed or ():
        if "/" in rel:
            src = os.path.normpath(os.path.join(folder, rel))
            items.append(Item(src, "/" + os.path.basename(src), os.path.getsize(src), "board"))
    # Your settings first; the entry point (main.py) last, so that a copy that fails
    # half-way never leaves a new main.py calling files that did not arrive.
    items.sort(key=lambda it: (it.kind == "main", it.kind != "secrets", it.dest))
    return items, skipped


def plan(args, bmod, out=print):
    """Everything a deploy needs to know before touching a port."""
    builds = bmod.BOARDS
    build, folder, notes = resolve_board(args.board, args.boards_dir, builds)
    for n in notes:
        out(n)
    try:  # board.py that names the build board is host-side: not copied
        from_board_py = bool(folder) and _board_file_mapping(folder, builds)[2]
    except DeployError:
        from_board_py = False
    pairs, warnings = build_files(build, args.build_dir, bmod, not args.no_build, out)
    for w in warnings:
        out(w)
    if args.lib_dir is None:
        args.lib_dir = _str(board_meta(folder).get("lib_dir"), "/lib")
    lib_dir = "/" + args.lib_dir.strip("/") if args.lib_dir.strip("/") else ""
    items = []
    for src, rel in pairs:
        kind = "port" if "/ports/" in rel else "lib"
        items.append(Item(src, lib_dir + "/" + rel, os.path.getsize(src), kind))
    bitems, skipped = board_files(folder, args.no_main, from_board_py)
    items += bitems
    dirs = []
    for it in items:
        parts = it.dest.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/" + "/".join(parts[:i])
            if d not in dirs:
                dirs.append(d)
    return build, folder, items, dirs, skipped


def mpy_header(path):
    """(version, sub-version, arch number) from a .mpy header; arch 0 = bytecode only."""
    with open(path, "rb") as f:
        h = f.read(4)
    if len(h) < 4 or h[0:1] != b"M":
        return None
    return h[1], h[2] & 3, h[2] >> 2


def describe(args, build, folder, items, dirs, skipped, bmod, out=print):
    march, port_names = bmod.BOARDS[build]
    out(
        "board %s: tools/build.py board %s (%s; ports: %s)"
        % (
            args.board,
            build,
            "mpy-cross -march=" + march if march else "bytecode",
            ", ".join(port_names) or "none",
        )
    )
    total = sum(it.size for it in items)
    width = max([len(_rel(it.src)) for it in items] + [10])
    dwidth = max([len(it.dest) for it in items] + [10])
    for it in items:
        tag = ""
        if it.kind == "secrets":
            tag = "  (yours, git-ignored)"
        elif it.dest.endswith(".mpy"):
            hdr = mpy_header(it.src)
            if hdr and hdr[2]:
                tag = "  (.mpy v%d.%d, %s code)" % (hdr[0], hdr[1], _ARCH_NAMES[hdr[2]])
            elif hdr:
                tag = "  (.mpy v%d, bytecode)" % hdr[0]
        out("  %-*s -> %-*s %8d%s" % (width, _rel(it.src), dwidth, it.dest, it.size, tag))
    out(
        "  %-*s    %-*s %8d  (%s, %d files)"
        % (width, "total", dwidth, "", total, _human(total), len(items))
    )
    if dirs:
        out("directories (created if missing): " + ", ".join(dirs))
    for fn, why in skipped:
        out("not copied: %s (%s)" % (_rel(os.path.join(folder, fn)), why))
    meta = board_meta(folder)
    settings = _str(meta.get("settings"), "secrets.py")
    example = _str(meta.get("settings_example"), "secrets_example.py")
    if folder and not os.path.isfile(os.path.join(folder, settings)):
        if os.path.isfile(os.path.join(folder, example)):
            out(
                "note: no %s: copy %s to %s there and fill it in (%s is copied; the "
                "example never is)"
                % (_rel(os.path.join(folder, settings)), example, settings, settings)
            )
    return total


# ---------------------------------------------------------------- serial ports


def list_serial_ports():
    """[(device, description)] of the serial ports this machine has (sorted)."""
    try:
        from serial.tools import list_ports
    except ImportError:
        return []
    ports = []
    for p in sorted(list_ports.comports(), key=lambda p: p.device):
        desc = p.description if p.description and p.description != "n/a" else ""
        if p.vid is not None:
            desc = (
                "%s [%04x:%04x%s]"
                % (
                    desc,
                    p.vid,
                    p.pid or 0,
                    " " + _KNOWN_VIDS[p.vid] if p.vid in _KNOWN_VIDS else "",
                )
            ).strip()
        ports.append((p.device, desc, p.vid, p.pid))
    return ports


def _ports_text(ports):
    if not ports:
        return (
            "serial ports seen on this machine: none (is the board plugged in, with a data cable?)"
        )
    return "serial ports seen on this machine:\n" + "\n".join(
        "  %s%s" % (dev, "  " + desc if desc else "") for dev, desc, _, _ in ports
    )


def resolve_port(port):
    """The device path to open; raises DeployError(3) when there is no such board."""
    if port and port != "auto":
        if port.startswith("port:"):
            port = port[5:]
        looks_like_path = port.startswith("/") or port.startswith("." + os.sep)
        if looks_like_path and not os.path.exists(port):
            raise DeployError(
                EXIT_NO_BOARD,
                "no board: port %s does not exist.\n%s" % (port, _ports_text(list_serial_ports())),
            )
        return port
    ports = list_serial_ports()
    usb = [p for p in ports if p[2] is not None]
    if not usb:
        raise DeployError(
            EXIT_NO_BOARD,
            "no board found: no USB serial port (--port auto).\n%s" % _ports_text(ports),
        )
    known = [p for p in usb if p[2] in _KNOWN_VIDS]
    candidates = known or usb
    if len(candidates) > 1:
        raise DeployError(
            EXIT_USAGE,
            "several USB serial ports: pass --port one of them.\n%s" % _ports_text(candidates),
        )
    return candidates[0][0]


# ---------------------------------------------------------------- the board


_PREFLIGHT = """\
import os,sys
def _st(p):
 try:
  s=os.stat(p)
  return (s[0],s[6])
 except OSError:
  return None
def _ls(p):
 try:
  return [(e[0],e[1]) for e in os.ilistdir(p)]
 except OSError:
  return None
_i=sys.implementation
print(repr((tuple(os.statvfs('/')),_i.name,tuple(_i.version)[:3],getattr(_i,'_mpy',None),\
sys.platform,getattr(_i,'_machine',''),[_st(p) for p in %r],[_ls(p) for p in %r])))
"""

_REMOVE = """\
import os
for p in %r:
 os.remove(p)
"""

_VERIFY = """\
import os
try:
 import hashlib,binascii
 _H=hashlib.sha256
except (ImportError,AttributeError):
 _H=None
def _v(p):
 n=os.stat(p)[6]
 if _H is None:
  return (n,None)
 h=_H()
 b=bytearray(256)
 m=memoryview(b)
 with open(p,'rb') as f:
  while 1:
   k=f.readinto(b)
   if not k:
    break
   h.update(m[:k])
 return (n,binascii.hexlify(h.digest()).decode())
print(repr([_v(p) for p in %r]))
"""

_CLEANUP = """\
try:
 f.close()
except Exception:
 pass
import os
try:
 os.remove(%r)
except OSError:
 pass
"""


def _import_mpremote():
    try:
        import mpremote
        from mpremote.transport import TransportError, TransportExecError
        from mpremote.transport_serial import SerialTransport
    except ImportError as e:
        raise DeployError(
            EXIT_OTHER,
            "mpremote is not installed (%s): %s -m pip install mpremote==%s "
            "(or pip install -e .[test])" % (e, sys.executable, MPREMOTE_PIN),
        )
    version = getattr(mpremote, "__version__", "?")
    return SerialTransport, TransportError, TransportExecError, version


def _is_enospc(exc):
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    text = str(getattr(exc, "error_output", "") or "")
    return "ENOSPC" in text or "[Errno 28]" in text


class _PastDeadline(Exception):
    pass


class _DeadlinePort:
    """The pyserial port mpremote reads, with a deadline for all reads together."""

    def __init__(self, port, seconds):
        self.port = port
        self.deadline = time.monotonic() + seconds
        self.heard = bytearray()

    def _check(self):
        if time.monotonic() > self.deadline:
            raise _PastDeadline()

    def read(self, n=1):
        self._check()
        data = self.port.read(n)
        self.heard += data
        return data

    def inWaiting(self):
        self._check()
        return self.port.inWaiting()

    def write(self, data):
        return self.port.write(data)

    def __getattr__(self, name):
        return getattr(self.port, name)


class Board:
    """A MicroPython board in its raw REPL, through mpremote's SerialTransport."""

    def __init__(self, port, timeout, out=print):
        self.port = port
        self.out = out
        ST, self.TransportError, self.TransportExecError, version = _import_mpremote()
        if version != MPREMOTE_PIN:
            out(
                "note: mpremote %s installed; this tool was checked with %s"
                % (version, MPREMOTE_PIN)
            )
        # pyserial's read timeout bounds every wait of mpremote on a silent device (with
        # timeout=None a pty or a silent port blocks forever).
        try:
            self.t = ST(port, baudrate=115200, timeout=max(0.2, min(1.0, timeout)))
        except self.TransportError as e:
            raise DeployError(EXIT_NO_BOARD, self._open_error(port, e))
        try:
            self._enter_raw_repl(timeout)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _open_error(port, e):
        why = "it may be in use by another program (a serial terminal, Thonny, another mpremote)"
        if os.path.exists(port) and not os.access(port, os.R_OK | os.W_OK):
            why = (
                "no permission: add yourself to the group that owns it (often dialout) "
                "and log in again"
            )
        return "no board: cannot open %s: %s; %s.\n%s" % (
            port,
            e,
            why,
            _ports_text(list_serial_ports()),
        )

    def _enter_raw_repl(self, timeout):
        # Ctrl-C (stop main.py), Ctrl-A (raw REPL), Ctrl-D (soft reset: frees RAM, ends
        # the client's threads; main.py does not run again in the raw REPL).
        # mpremote's read_until checks its overall timeout only while no byte arrives,
        # so a device that never stops talking would keep it waiting forever: the port
        # is wrapped in a proxy that gives up at a deadline, and records what it heard.
        said = b""
        for attempt in (1, 2):
            proxy = _DeadlinePort(self.t.serial, timeout)
            self.t.serial = proxy
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # mpremote print()s what it got
                    self.t.enter_raw_repl(soft_reset=True, timeout_overall=timeout)
                return
            except (self.TransportError, _PastDeadline):
                said += bytes(proxy.heard)
            except OSError as e:  # pyserial: the port went away
                raise DeployError(EXIT_NO_BOARD, "no board: %s failed: %s" % (self.port, e))
            finally:
                self.t.serial = proxy.port
            if not said.strip():
                break  # silent: a second try would only double the wait
        if not said.strip():
            raise DeployError(
                EXIT_NO_BOARD,
                "no answer from %s within %.1f s: the device did not enter MicroPython's raw "
                "REPL (Ctrl-C, Ctrl-A). Is it the board's port (not another serial device), "
                "running MicroPython, and not stuck in boot.py?\n%s"
                % (self.port, timeout, _ports_text(list_serial_ports())),
            )
        sample = said[-240:].decode("utf-8", "replace")
        raise DeployError(
            EXIT_NO_BOARD,
            "the device on %s answers, but not as MicroPython's raw REPL (no \"raw REPL; "
            'CTRL-B to exit" within %.1f s, tried twice): wrong port, or other firmware '
            "(CircuitPython running code.py, Arduino, a GPS...)? The last it said:\n  %r"
            % (self.port, timeout, sample),
        )

    def _call(self, what, fn, *a, **kw):
        """fn(*a, **kw) through mpremote, its failures sorted into exit codes."""
        try:
            return fn(*a, **kw)
        except self.TransportExecError as e:  # a traceback from the board
            if _is_enospc(e):
                raise NoSpace("the board's filesystem is full (ENOSPC) %s" % what)
            raise DeployError(
                EXIT_OTHER, "%s failed on the board:\n%s" % (what, e.error_output.strip())
            )
        except self.TransportError as e:  # timeouts, protocol
            raise DeployError(EXIT_NO_BOARD, "the board stopped answering (%s): %s" % (what, e))
        except OSError as e:
            # mpremote turns a board's OSError into a host OSError with its errno;
            # pyserial's SerialException (no errno) is the port itself failing.
            if e.errno == errno.ENOSPC:
                raise NoSpace("the board's filesystem is full (ENOSPC) %s" % what)
            if e.errno is None or type(e).__name__ == "SerialException":
                raise DeployError(
                    EXIT_NO_BOARD,
                    "lost the serial connection to %s (%s): %s" % (self.port, what, e),
                )
            if e.errno == errno.EROFS:
                raise DeployError(
                    EXIT_OTHER, "the board's filesystem is read-only (EROFS) %s" % what
                )
            raise DeployError(EXIT_OTHER, "%s failed on the board: %s" % (what, e))

    def run(self, code):
        """Run code on the board; its stdout as text."""
        return self._call("running a query", self.t.exec, code).decode("utf-8", "replace")

    def query(self, code):
        text = self.run(code).strip()
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise DeployError(EXIT_OTHER, "unexpected answer from the board: %r" % text[:300])

    def mkdir(self, path):
        self._call("creating " + path, self.t.fs_mkdir, path)

    def write_file(self, dest, data, progress):
        try:
            self._call(
                "writing " + dest,
                self.t.fs_writefile,
                dest,
                data,
                chunk_size=CHUNK,
                progress_callback=progress,
            )
        except NoSpace:
            self._cleanup(dest)
            raise

    def _cleanup(self, dest):
        # Close the half-written file and delete it: a truncated .mpy or main.py would
        # fail at boot with a confusing error.
        try:
            self.t.exec(_CLEANUP % dest)
        except Exception:
            pass

    def soft_reset(self):
        # Friendly REPL, then Ctrl-D: the board reboots its VM and runs main.py.
        self.t.exit_raw_repl()
        self.t.serial.write(b"\x04")

    def close(self):
        t, self.t = getattr(self, "t", None), None
        if t is None:
            return
        try:
            if t.in_raw_repl:
                t.exit_raw_repl()
        except Exception:
            pass
        try:
            t.close()
        except Exception:
            pass


# ---------------------------------------------------------------- progress


class Progress:
    """Per file and bytes. On a TTY one line redrawn in place; otherwise a plain line
    per file when it is done (logs, CI, pipes)."""

    BAR = 24

    def __init__(self, total_files, total_bytes, stream=None):
        self.stream = stream or sys.stdout
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self.total_files, self.total_bytes = total_files, total_bytes
        self.done_bytes = 0
        self.index = 0
        self.item = None
        self.width = 0
        self.t0 = time.monotonic()

    def start(self, item):
        self.index += 1
        self.item = item
        self.update(0, item.size)

    def update(self, written, size):
        if not self.tty:
            return
        total = self.done_bytes + written
        frac = min(1.0, total / float(self.total_bytes)) if self.total_bytes else 1.0
        fill = int(frac * self.BAR)
        name = self.item.dest if len(self.item.dest) <= 34 else "..." + self.item.dest[-31:]
        line = "[%d/%d] %-34s %3d%%  [%s%s] %s / %s" % (
            self.index,
            self.total_files,
            name,
            100 * written // size if size else 100,
            "#" * fill,
            "-" * (self.BAR - fill),
            _human(total),
            _human(self.total_bytes),
        )
        pad = max(0, self.width - len(line))
        self.width = len(line)
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()

    def end(self):
        if self.tty:
            self.update(self.item.size, self.item.size)
        self.done_bytes += self.item.size
        if not self.tty:
            self.stream.write(
                "[%d/%d] %s  %d bytes  (%s / %s)\n"
                % (
                    self.index,
                    self.total_files,
                    self.item.dest,
                    self.item.size,
                    _human(self.done_bytes),
                    _human(self.total_bytes),
                )
            )
            self.stream.flush()

    def finish(self):
        if self.tty:
            self.stream.write("\n")
        dt = time.monotonic() - self.t0
        self.stream.write(
            "copied %d files, %s in %.1f s\n" % (self.total_files, _human(self.total_bytes), dt)
        )
        self.stream.flush()


# ---------------------------------------------------------------- deploy


def _blocks(n, bs):
    return (n + bs - 1) // bs


def _check_device(info, build, items, bmod, port, args):
    statvfs, impl, version, mpy, platform, machine = info[:6]
    what = "%s %s on %s%s" % (
        impl,
        ".".join(str(v) for v in version),
        platform,
        " (%s)" % machine if machine else "",
    )
    if impl != "micropython":
        raise DeployError(
            EXIT_NO_BOARD,
            "the device on %s runs %s, not MicroPython: --board %s needs MicroPython "
            "firmware" % (port, what, args.board),
        )
    if args.force:
        return what
    want = None
    for p in bmod.BOARDS[build][1]:
        want = _PORT_PLATFORM.get(p, want)
    if want and platform != want:
        raise DeployError(
            EXIT_NO_BOARD,
            "the board on %s is %s, but --board %s is built for sys.platform %r: wrong "
            "port or wrong --board? (--force copies anyway)" % (port, what, args.board, want),
        )
    if isinstance(mpy, int):
        dev_ver, dev_sub, dev_arch = mpy & 0xFF, (mpy >> 8) & 3, mpy >> 10
        for it in items:
            if not it.dest.endswith(".mpy"):
                continue
            hdr = mpy_header(it.src)
            if not hdr:
                continue
            ver, sub, arch = hdr
            # py/persistentcode.h: bytecode-only .mpy loads wherever MPY_VERSION
            # matches; native code also needs the sub-version, and an arch the core
            # runs (Thumb code for the same or an older Thumb core; else exact).
            ok = ver == dev_ver
            if ok and arch:
                ok = sub == dev_sub
                if 4 <= dev_arch <= 8:
                    ok = ok and 4 <= arch <= dev_arch
                else:
                    ok = ok and arch == dev_arch
            if not ok:
                raise DeployError(
                    EXIT_NO_BOARD,
                    "the board on %s (%s) loads .mpy v%d.%d%s; %s is v%d.%d%s: it would not "
                    "import. Update the firmware to MicroPython %s, or check --board."
                    % (
                        port,
                        what,
                        dev_ver,
                        dev_sub,
                        " " + _ARCH_NAMES[dev_arch] if dev_arch < len(_ARCH_NAMES) else "",
                        _rel(it.src),
                        ver,
                        sub,
                        " " + _ARCH_NAMES[arch] if arch else "",
                        getattr(bmod, "MICROPYTHON_VERSION", "1.29"),
                    ),
                )
    return what


def deploy(args, bmod, board, build, items, dirs, out=print, progress_stream=None):
    lib_pkg_dirs = [
        d for d in dirs if d.endswith("/umqtt_paho") or d.endswith("/umqtt_paho/ports")
    ]
    shadow = "/umqtt_paho"
    stat_paths = dirs + [it.dest for it in items] + [shadow]
    info = board.query(_PREFLIGHT % (stat_paths, lib_pkg_dirs))
    statvfs, stats, listings = info[0], info[6], info[7]
    what = _check_device(info, build, items, bmod, board.port, args)
    out("board: %s" % what)
    st = dict(zip(stat_paths, stats))

    bsize = statvfs[1] or statvfs[0]
    free = bsize * statvfs[4]
    total_fs = bsize * statvfs[2]

    # Directories: create the missing ones; a file in the way is an error.
    new_dirs = []
    for d in dirs:
        s = st.get(d)
        if s is None:
            new_dirs.append(d)
        elif not s[0] & 0x4000:
            raise DeployError(
                EXIT_OTHER, "%s on the board is a file, where this deploy needs a folder" % d
            )

    # Files in the package folders this deploy does not ship (stale modules; a .py there
    # would shadow the .mpy of the same name).
    shipped = set(it.dest for it in items)
    stale, stale_dirs = [], []
    for d, listing in zip(lib_pkg_dirs, listings):
        for name, typ in listing or ():
            path = d + "/" + name
            if path in shipped or path in dirs:
                continue
            (stale_dirs if typ & 0x4000 else stale).append(path)
    stale_sizes = {}
    if stale:
        for p, s in zip(
            stale,
            board.query(
                "import os\nr=[]\nfor p in %r:\n try:\n  r.append(os.stat(p)[6])\n"
                " except OSError:\n  r.append(0)\nprint(repr(r))" % stale
            ),
        ):
            stale_sizes[p] = s

    # Space: every file rounded up to whole blocks, new folders, a small reserve; less
    # what the files replaced and removed give back.
    need = (
        sum(_blocks(it.size, bsize) for it in items) + DIR_BLOCKS * len(new_dirs) + RESERVE_BLOCKS
    )
    freed = sum(_blocks(st[it.dest][1], bsize) for it in items if st.get(it.dest))
    freed += sum(_blocks(s, bsize) for s in stale_sizes.values())
    net = (need - freed) * bsize
    if net > free and not args.force:
        raise NoSpace(
            "not enough flash on the board: this deploy needs %s (%d bytes: %d files rounded "
            "up to %d-byte blocks, %d new folders, %d blocks spare, less %s the files it "
            "replaces free), the filesystem has %s free of %s. Nothing was copied. Make room "
            "(mpremote connect %s fs ls : ; fs rm :FILE), or try with --force (small files "
            "may fit in littlefs metadata, which this estimate does not count)."
            % (
                _human(net),
                net,
                len(items),
                bsize,
                len(new_dirs),
                RESERVE_BLOCKS,
                _human(freed * bsize),
                _human(free),
                _human(total_fs),
                board.port,
            )
        )
    out(
        "flash: %s free of %s; this deploy needs %s"
        % (_human(free), _human(total_fs), _human(max(net, 0)))
    )

    if st.get(shadow) and st[shadow][0] & 0x4000 and shadow not in dirs:
        out(
            "WARNING: the board has %s, which shadows %s/umqtt_paho (the current folder "
            "comes first on sys.path): remove it with  mpremote connect %s rm -r :umqtt_paho"
            % (shadow, "/" + args.lib_dir.strip("/"), board.port)
        )

    for d in new_dirs:
        board.mkdir(d)
    if stale:
        out("removing stale files: " + ", ".join(stale))
        board.run(_REMOVE % (stale,))
    for d in stale_dirs:
        out("WARNING: left alone: unexpected folder %s on the board" % d)

    total = sum(it.size for it in items)
    progress = Progress(len(items), total, progress_stream)
    for it in items:
        with open(it.src, "rb") as f:
            data = f.read()
        progress.start(it)
        written = [0]

        def cb(n, size, written=written):
            written[0] = n
            progress.update(n, size)

        try:
            board.write_file(it.dest, data, cb)
        except NoSpace:
            if progress.tty:
                progress.stream.write("\n")
            raise NoSpace(
                "the board ran out of flash while writing %s (%d of %d bytes sent; the "
                "partial file was removed): it reported %s free before copying, this "
                "deploy needs about %s. Make room (mpremote connect %s fs ls : ; fs rm :FILE) "
                "and deploy again."
                % (it.dest, written[0], it.size, _human(free), _human(max(net, 0)), board.port)
            )
        progress.end()
    progress.finish()

    # Check what arrived.
    got = board.query(_VERIFY % ([it.dest for it in items],))
    bad = []
    for it, (size, digest) in zip(items, got):
        with open(it.src, "rb") as f:
            want = hashlib.sha256(f.read()).hexdigest()
        if size != it.size or (digest is not None and digest != want):
            bad.append(
                "%s: %d bytes on the board, %d here%s"
                % (it.dest, size, it.size, "" if size != it.size else ", contents differ")
            )
    if bad:
        raise DeployError(EXIT_OTHER, "verification failed:\n  " + "\n  ".join(bad))
    hashed = all(d is not None for _, d in got)
    out(
        "verified %d files on the board (%s)"
        % (len(items), "size and SHA-256" if hashed else "size")
    )


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="tools/deploy.py",
        description="Build umqtt_paho for a board and copy it with the board's files "
        "over USB serial.",
        epilog="exit status: 0 ok, 2 usage, 3 board not found / not answering, "
        "4 out of flash, 1 other",
    )
    ap.add_argument(
        "--board", required=True, help="a folder of boards/ (e.g. esp32_devkitc, pico_w)"
    )
    ap.add_argument(
        "--port",
        default="auto",
        help="serial port, e.g. /dev/ttyUSB0 or COM3; auto (default): the one USB serial port",
    )
    ap.add_argument(
        "--dry-run", action="store_true", help="list what would be copied; open no port"
    )
    ap.add_argument("--no-main", action="store_true", help="do not copy main.py")
    ap.add_argument(
        "--no-build",
        action="store_true",
        help="use the existing build/<board>/ instead of building",
    )
    ap.add_argument(
        "--reset", action="store_true", help="soft-reset the board afterwards, so main.py runs"
    )
    ap.add_argument(
        "--force",
        action="store_true",
        help="copy even if the board's platform or .mpy format does not match, or the "
        "free-space estimate says it will not fit",
    )
    ap.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the raw REPL (default 10)"
    )
    ap.add_argument(
        "--lib-dir",
        default=None,
        help="folder on the board for umqtt_paho/ (default: board.json's lib_dir, else /lib)",
    )
    ap.add_argument(
        "--build-dir",
        default=os.path.join(REPO, "build"),
        help="build output folder (default build/)",
    )
    ap.add_argument(
        "--boards-dir",
        default=os.path.join(REPO, "boards"),
        help="board folders (default boards/)",
    )
    args = ap.parse_args(argv)
    if args.timeout <= 0:
        ap.error("--timeout must be positive")
    args.build_dir = os.path.abspath(args.build_dir)
    args.boards_dir = os.path.abspath(args.boards_dir)
    return args


def main(argv=None, progress_stream=None):
    try:
        args = parse_args(argv)
    except SystemExit as e:  # argparse: usage error (2) or --help (0)
        return e.code if isinstance(e.code, int) else EXIT_USAGE

    def out(msg):
        print(msg)
        sys.stdout.flush()

    board = None
    try:
        bmod = load_build()
        build, folder, items, dirs, skipped = plan(args, bmod, out)
        if not items:
            raise DeployError(EXIT_OTHER, "nothing to copy")
        if args.dry_run:
            out("dry run: would copy to %s (no port opened):" % args.port)
            describe(args, build, folder, items, dirs, skipped, bmod, out)
            return EXIT_OK
        describe(args, build, folder, items, dirs, skipped, bmod, out)
        port = resolve_port(args.port)
        out("connecting to %s ..." % port)
        board = Board(port, args.timeout, out)
        deploy(args, bmod, board, build, items, dirs, out, progress_stream)
        if args.reset:
            board.soft_reset()
            out("soft reset: the board now runs main.py")
        else:
            out("done. Reset the board (or press Ctrl-D in its REPL) to run main.py.")
        return EXIT_OK
    except DeployError as e:
        sys.stdout.flush()
        print("tools/deploy.py: error: %s" % e.message, file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("tools/deploy.py: interrupted", file=sys.stderr)
        return EXIT_OTHER
    finally:
        if board is not None:
            board.close()


if __name__ == "__main__":
    sys.exit(main())
