"""Static type checks (mypy) of the board examples against the firmware they run on,
and of the library against its own type stubs.

(a) Each board's main.py and the files it ships from boards/common/ (telemetry.py, its
    WiFi helper; board.json's "files") are checked as the board will hold them (all at
    the top, the library in umqtt_paho/ with the board's port modules in
    umqtt_paho/ports/) against
    the MicroPython stubs of its port (micropython-esp32-stubs, micropython-rp2-stubs,
    versions pinned in setup.cfg's [test] extra). The stubs replace Python's standard
    library (--custom-typeshed-dir), so a call the firmware does not have fails here:
    machine.Pin.nonexistent(), ADC.read_uv() on a Pico, a keyword publish() does not
    take. A negative test proves the check bites. The port modules themselves are
    checked against the same stubs. The CircuitPython example is checked for its use
    of the library only (CircuitPython's own modules are not stubbed here).
(b) The library: its .pyi stubs against the implementation (mypy's stubtest imports the
    real modules and compares every signature), and the implementation, checked with
    the host's typeshed.

Each stub package goes into its own folder (pip install --target) under
~/.cache/umqtt_paho/typecheck, with mypy's cache, outside the repository: the two
packages cannot share one folder (both hold machine.pyi, network.pyi, ...).
"""

import configparser
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARDS_DIR = os.path.join(REPO, "boards")
CACHE = os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "umqtt_paho", "typecheck"
)

# board -> (stub package or None, its port modules); its files: board.json
_MP_PORTS = ("micropython", "tlswrap", "nothreads")  # what each MicroPython board holds
BOARDS = {
    "esp32_devkitc": ("micropython-esp32-stubs", _MP_PORTS + ("esp32",)),
    "esp32s3": ("micropython-esp32-stubs", _MP_PORTS + ("esp32",)),
    "pico_w": ("micropython-rp2-stubs", _MP_PORTS + ("rp2",)),
    "pico2_w": ("micropython-rp2-stubs", _MP_PORTS + ("rp2",)),
    "feather_esp32s3_cp": (None, ("circuitpython", "nothreads")),
}
CIRCUITPYTHON_MODULES = (
    "alarm",
    "board",
    "digitalio",
    "microcontroller",
    "wifi",
    "socketpool",
    "supervisor",
)


def pinned(package):
    """The version of `package` pinned in setup.cfg's [test] extra."""
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, "setup.cfg"))
    for line in cfg["options.extras_require"]["test"].split("\n"):
        name, _, version = line.strip().partition("==")
        if name == package:
            return version
    raise AssertionError("%s is not pinned in setup.cfg's [test] extra" % package)


@pytest.fixture(scope="session")
def mypy_ok():
    try:
        import mypy  # noqa: F401
    except ImportError:
        pytest.fail("mypy is not installed: pip install -e '.[test]'", pytrace=False)
    version = subprocess.run(
        [sys.executable, "-m", "mypy", "--version"], capture_output=True, text=True
    ).stdout
    assert pinned("mypy") in version, "mypy %s, setup.cfg pins %s" % (version, pinned("mypy"))


def stub_dir(package):
    """The stub package installed into its own cache folder (once)."""
    version = pinned(package)
    target = os.path.join(CACHE, "stubs", "%s-%s" % (package, version))
    if os.path.isfile(os.path.join(target, ".complete")):
        return target
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=package + "-", dir=os.path.dirname(target))
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
            tmp,
            "%s==%s" % (package, version),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if p.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.fail("pip could not install %s==%s:\n%s" % (package, version, p.stderr[-3000:]))
    open(os.path.join(tmp, ".complete"), "w").close()
    try:
        os.rename(tmp, target)
    except OSError:  # another session installed it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def stub_modules(stubs):
    """mypy patterns for every module the stub folder holds (their own errors are not
    ours to fix: the stubs are checked with ignore_errors)."""
    names = []
    for entry in sorted(os.listdir(stubs)):
        path = os.path.join(stubs, entry)
        if entry.endswith(".pyi"):
            names.append(entry[:-4])
        elif os.path.isdir(path) and entry not in ("stdlib", "stubs") and "." not in entry:
            names += [entry, entry + ".*"]
    return names


def board_tree(root, board):
    """root/ as the board holds its files: the application (board.json's "files", the
    shared ones from boards/common/ included) at the top, the library (with its .pyi
    stubs) in umqtt_paho/ and the board's ports in umqtt_paho/ports/. Returns the
    application's files, to check."""
    stubs, ports = BOARDS[board]
    pkg = os.path.join(root, "umqtt_paho")
    os.makedirs(os.path.join(pkg, "ports"))
    for name in os.listdir(os.path.join(REPO, "umqtt_paho")):
        if name.endswith((".py", ".pyi")):
            shutil.copy(os.path.join(REPO, "umqtt_paho", name), pkg)
    for name in ("__init__",) + ports:
        shutil.copy(os.path.join(REPO, "ports", name + ".py"), os.path.join(pkg, "ports"))
    src = os.path.join(BOARDS_DIR, board)
    with open(os.path.join(src, "board.json")) as f:
        info = json.load(f)
    files = []
    for name in info["files"]:
        # code.py would be taken for the standard library's `code` module
        dest = "board_main.py" if name == info["entry"] else os.path.basename(name)
        shutil.copy(os.path.join(src, name), os.path.join(root, dest))
        files.append(dest)
    assert files[0] == "board_main.py" and "telemetry.py" in files, files
    if os.path.isfile(os.path.join(src, "secrets_example.py")):
        shutil.copy(os.path.join(src, "secrets_example.py"), os.path.join(root, "secrets.py"))
    return files


def run_mypy(root, files, stubs=None, sections=(), name="host"):
    """mypy on `files` (relative to root), with the firmware's stubs as the standard
    library if `stubs` is given; returns (exit status, output)."""
    lines = [
        "[mypy]",
        "check_untyped_defs = True",  # the examples are unannotated: check them anyway
        "warn_unused_configs = False",
        "warn_unused_ignores = True",
        "show_error_codes = True",
        "[mypy-micropython,supervisor,secrets]",
        "ignore_missing_imports = True",
    ]
    if stubs:
        lines += ["[mypy-%s]" % ",".join(stub_modules(stubs)), "ignore_errors = True"]
    for header, body in sections:
        lines += ["[%s]" % header] + list(body)
    cfg = os.path.join(root, "mypy.ini")
    with open(cfg, "w") as f:
        f.write("\n".join(lines) + "\n")
    key = hashlib.sha1(("%s|%s" % (name, stubs)).encode()).hexdigest()[:12]
    cmd = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        cfg,
        "--cache-dir",
        os.path.join(CACHE, "mypy-cache", key),
    ]
    env = dict(os.environ)
    env.pop("MYPYPATH", None)
    if stubs:
        cmd += ["--custom-typeshed-dir", stubs]
        env["MYPYPATH"] = os.pathsep.join([stubs, root])
    else:
        env["MYPYPATH"] = root
    p = subprocess.run(
        cmd + list(files), cwd=root, env=env, capture_output=True, text=True, timeout=600
    )
    return p.returncode, p.stdout + p.stderr


# The port modules are checked on their own (test_ports_against_the_firmware_stubs);
# here they are read for their types only.
SILENT_PORTS = ("mypy-umqtt_paho.ports,umqtt_paho.ports.*", ["follow_imports = silent"])


# ---- (a) the board examples against their firmware ------------------------------------------


@pytest.mark.parametrize("board", list(BOARDS))
def test_board_example_typechecks(board, tmp_path, mypy_ok):
    package = BOARDS[board][0]
    files = board_tree(str(tmp_path), board)
    if package is None:  # CircuitPython: the library's API only
        missing = ("mypy-%s" % ",".join(CIRCUITPYTHON_MODULES), ["ignore_missing_imports = True"])
        sections = [SILENT_PORTS, missing]
        rc, out = run_mypy(str(tmp_path), files, None, sections, name=board)
    else:
        rc, out = run_mypy(str(tmp_path), files, stub_dir(package), [SILENT_PORTS], name=board)
    assert rc == 0, "mypy found errors in boards/%s:\n%s" % (board, out)


NEGATIVE = {
    # stub package: (snippet, what mypy must say about it)
    "micropython-esp32-stubs": (
        """
import esp32
import machine
from umqtt_paho import Client

machine.Pin(2, machine.Pin.OUT).nonexistent()
esp32.mcu_temperature()  # ESP32-S2/S3/C3 only: not in the original ESP32's firmware
client = Client("x", clean_session=False)
client.publish("t", b"x", qos=1, retian=True)
client.subscribe("t", lambda client, payload: None)
""",
        [
            '"Pin" has no attribute "nonexistent"',
            'Module has no attribute "mcu_temperature"',
            'Unexpected keyword argument "retian"',
            'Argument 2 to "subscribe" of "Client" has incompatible type',
        ],
    ),
    "micropython-rp2-stubs": (
        """
import machine
import network

machine.ADC(4).read_uv()  # an ESP32 method: the RP2 firmware has no such thing
network.WLAN(network.STA_IF).nonexistent()
""",
        ['"ADC" has no attribute "read_uv"', '"WLAN" has no attribute "nonexistent"'],
    ),
}


@pytest.mark.parametrize("package", list(NEGATIVE))
def test_a_call_the_firmware_does_not_have_fails(package, tmp_path, mypy_ok):
    snippet, expected = NEGATIVE[package]
    board_tree(str(tmp_path), "esp32_devkitc" if "esp32" in package else "pico_w")
    (tmp_path / "wrong.py").write_text(snippet)
    rc, out = run_mypy(
        str(tmp_path), ["wrong.py"], stub_dir(package), [SILENT_PORTS], name="negative-" + package
    )
    assert rc == 1, out
    for message in expected:
        assert message in out, "mypy did not report %r:\n%s" % (message, out)


@pytest.mark.parametrize(
    "package,ports",
    [
        ("micropython-esp32-stubs", _MP_PORTS + ("esp32",)),
        ("micropython-rp2-stubs", _MP_PORTS + ("rp2",)),
    ],
)
def test_ports_against_the_firmware_stubs(package, ports, tmp_path, mypy_ok):
    """ports/micropython.py (with tlswrap.py, nothreads.py) and esp32.py / rp2.py use
    only what the firmware has.

    Left out, as not about the firmware: no-redef and assignment (a fallback import,
    `_thread = None`, an errno table a subclass extends), and ports/__init__.py (its
    select() names every port, and a board holds only its own)."""
    board_tree(str(tmp_path), "esp32_devkitc" if "esp32" in package else "pico_w")
    files = ["umqtt_paho/ports/%s.py" % p for p in ports]
    sections = [
        ("mypy-umqtt_paho.ports.*", ["disable_error_code = no-redef, assignment"]),
        ("mypy-umqtt_paho.ports", ["ignore_errors = True"]),
    ]
    rc, out = run_mypy(str(tmp_path), files, stub_dir(package), sections, name="ports-" + package)
    assert rc == 0, "mypy found errors in the ports:\n%s" % out


# ---- (b) the library and its stubs ------------------------------------------------------------


STUBBED = ("__init__", "client", "errors", "inbound", "packet", "reconnect", "session")


def test_every_stub_has_a_module_and_the_public_modules_have_stubs():
    lib = os.path.join(REPO, "umqtt_paho")
    stubs = sorted(n[:-4] for n in os.listdir(lib) if n.endswith(".pyi"))
    assert stubs == sorted(STUBBED)
    for name in stubs:
        assert os.path.isfile(os.path.join(lib, name + ".py")), name


def test_stubs_match_the_implementation(tmp_path, mypy_ok):
    """mypy's stubtest: imports the real modules and compares each stubbed name, its
    kind and signature with the .pyi."""
    pkg = tmp_path / "umqtt_paho"
    pkg.mkdir()
    for name in STUBBED:  # the stubs alone: stubtest then checks just these modules
        shutil.copy(os.path.join(REPO, "umqtt_paho", name + ".pyi"), pkg)
    cfg = tmp_path / "mypy.ini"
    cfg.write_text("[mypy]\n[mypy-micropython]\nignore_missing_imports = True\n")
    env = dict(os.environ, MYPYPATH=str(tmp_path), PYTHONPATH=REPO)
    # The modules without stubs (the codec, the paho-mqtt layer, this helper...) are
    # allowed to have none; every stubbed one is checked name by name.
    unstubbed = sorted(
        n[:-3]
        for n in os.listdir(os.path.join(REPO, "umqtt_paho"))
        if n.endswith(".py") and n[:-3] not in STUBBED
    )
    allow = tmp_path / "allowlist.txt"
    allow.write_text("".join("umqtt_paho.%s\n" % m for m in unstubbed))
    run_dir = tmp_path / "run"  # not the stubs' folder: mypy would see them twice
    run_dir.mkdir()
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy.stubtest",
            "--mypy-config-file",
            str(cfg),
            "--allowlist",
            str(allow),
            "umqtt_paho",
        ],
        cwd=str(run_dir),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Success" in p.stdout


# Modules whose unannotated function bodies are type-checked too (check_untyped_defs).
# client.py is not: without annotations mypy cannot follow its Optional state (the
# thread Signal is None on ports without threads; the in-flight slots hold None when
# free) and reports those as errors. Its public API is typed by client.pyi instead.
CHECK_BODIES = ("__init__", "errors", "packet", "reconnect", "testing")


def test_the_library_typechecks(tmp_path, mypy_ok):
    """Every module of umqtt_paho/ (not the ports: see above) with the host's typeshed
    (the library runs on CPython too): imports, definitions and module-level code of
    all, the function bodies of CHECK_BODIES."""
    pkg = tmp_path / "umqtt_paho"
    pkg.mkdir()
    for name in os.listdir(os.path.join(REPO, "umqtt_paho")):
        if name.endswith(".py"):
            shutil.copy(os.path.join(REPO, "umqtt_paho", name), pkg)
    files = ["umqtt_paho/" + n for n in sorted(os.listdir(pkg))]
    sections = [
        ("mypy-umqtt_paho.ports,umqtt_paho.ports.*", ["ignore_missing_imports = True"]),
        ("mypy-umqtt_paho.*", ["check_untyped_defs = False"]),
        (
            "mypy-%s"
            % ",".join(
                "umqtt_paho" if m == "__init__" else "umqtt_paho." + m for m in CHECK_BODIES
            ),
            ["check_untyped_defs = True"],
        ),
    ]
    rc, out = run_mypy(str(tmp_path), files, None, sections, name="library")
    assert rc == 0, "mypy found errors in the library:\n%s" % out


def test_a_board_example_sees_the_stubs_not_the_implementation(tmp_path, mypy_ok):
    """With the .pyi next to the .py, mypy reads the stubs: a wrong argument type that
    the unannotated implementation would let through is caught."""
    board_tree(str(tmp_path), "esp32_devkitc")
    (tmp_path / "wrong.py").write_text(
        "from umqtt_paho import Client\nClient('x').connect('broker', keepalive='60')\n"
    )
    rc, out = run_mypy(
        str(tmp_path),
        ["wrong.py"],
        stub_dir("micropython-esp32-stubs"),
        [SILENT_PORTS],
        name="negative-stubs",
    )
    assert rc == 1, out
    assert 'Argument "keepalive" to "connect" of "Client" has incompatible type' in out, out
