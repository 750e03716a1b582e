"""What a deploy copies, decided before any port is opened: the .mpy files of the
build (built now, or checked), the board's files (board.json's "files", settings, your
TLS files), their destinations and folders; and the listing a dry run prints."""

import importlib.util
import os

from .base import EXIT_OTHER, TOOLS, DeployError, _human, _rel
from .boards import _board_file_mapping, _str, board_meta, resolve_board

# Board files that never go to the board.
_HOST_ONLY = ("manifest.py", "board.json")

_CREDENTIAL_EXTENSIONS = (".der", ".pem", ".crt", ".key")  # TLS files: yours, git-ignored

_DEVICE_EXTENSIONS = (".py", ".mpy") + _CREDENTIAL_EXTENSIONS

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


def load_build():
    """tools/build.py as a module (its functions and BOARDS table)."""
    spec = importlib.util.spec_from_file_location(
        "umqtt_paho_build", os.path.join(TOOLS, "build.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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
