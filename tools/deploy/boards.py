"""Which tools/build.py board a boards/ folder is: the table, then the folder's
board.json or board.py (read, never run); a CircuitPython board is refused."""

import ast
import json
import os

from .base import EXIT_USAGE, DeployError, _rel

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
        notes.append("note: %s (the table in tools/deploy/boards.py decides)" % e.message)
    if name in BOARD_TABLE:
        build = BOARD_TABLE[name]
        if from_file and from_file != (build or "circuitpython"):
            notes.append(
                "note: %s says %s, the table in tools/deploy/boards.py says %s; using the table"
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
