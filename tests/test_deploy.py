"""tools/deploy.py: board mapping, dry run, and deploys over mpremote to a PTY PEER.

No board is connected here. The "board" in these tests is tests/raw_repl_peer.py: a
pseudo-terminal peer (os.openpty) that answers mpremote the way MicroPython 1.29's raw
REPL does (raw REPL, raw-paste flow control, soft reboot) and keeps the board's
filesystem in a temporary folder, the "simulated flash", with a configurable size. It is
a protocol double, not a board: USB, real flash, real firmware timing are not tested.

The board folders are synthetic (a temporary boards/ tree), so the tests do not depend
on the real boards/ being finished; the last test checks the real folders' mapping when
they exist. The library is built once per session into a temporary build folder.
"""

import hashlib
import importlib.util
import io
import os
import subprocess
import sys
import time

import pytest

from raw_repl_peer import RawReplPeer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOY_PY = os.path.join(REPO, "tools", "deploy.py")

pytest.importorskip("mpremote", reason="mpremote is in the [test] extra")


def _load_deploy():
    spec = importlib.util.spec_from_file_location("deploy_under_test", DEPLOY_PY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


deploy = _load_deploy()

# boards/ folder -> (tools/build.py board, -march, the port module it must ship,
#                    the one it must not, the peer platform that matches)
EXPECTED = {
    "esp32_devkitc": ("esp32", "xtensawin", "esp32.mpy", "rp2.mpy", "esp32"),
    "esp32s3": ("esp32s3", "xtensawin", "esp32.mpy", "rp2.mpy", "esp32s3"),
    "pico_w": ("pico_w", "armv6m", "rp2.mpy", "esp32.mpy", "rp2040"),
    "pico2_w": ("pico2_w", "armv7emsp", "rp2.mpy", "esp32.mpy", "rp2350"),
}


@pytest.fixture(scope="session")
def bmod():
    return deploy.load_build()


@pytest.fixture(scope="session")
def built(bmod, tmp_path_factory):
    """A build folder with every MicroPython board of the table, built once."""
    try:
        mpy_cross, _ = bmod.find_mpy_cross(False)
    except bmod.ToolError as e:
        pytest.fail("mpy-cross unusable: %s" % e)
    out = str(tmp_path_factory.mktemp("build"))
    for build in sorted(set(v[0] for v in EXPECTED.values())):
        _, _, errors = bmod.build_board(build, out, mpy_cross)
        assert not errors, errors
    return out


@pytest.fixture
def boards(tmp_path):
    """A boards/ tree like the real one: application files, a secrets template, a
    freeze manifest and a README per board; two folders outside deploy.py's table."""
    root = tmp_path / "boards"
    for name in list(EXPECTED) + ["feather_esp32s3_cp"]:
        d = root / name
        d.mkdir(parents=True)
        (d / "main.py").write_text(
            "# %s\nfrom umqtt_paho import Client\nimport wifi, secrets\nwifi.connect()\n" % name
        )
        (d / "wifi.py").write_text("# wifi for %s\n" % name + "def connect():\n    pass\n" * 20)
        (d / "secrets_example.py").write_text("WIFI_SSID = 'your-ssid'\nWIFI_PASSWORD = ''\n")
        (d / "manifest.py").write_text("module('main.py')\n")
        (d / "README.md").write_text("# %s\n" % name)
    # pico2_w describes itself as the real boards/*/board.json do: the device files,
    # the entry point, the settings file and its template, the library folder.
    (root / "pico2_w" / "board.json").write_text(
        '{"build_board": "pico2_w", "runtime": "micropython", "firmware": "RPI_PICO2_W",'
        ' "files": ["main.py", "wifi.py", "sensor.py", "../common/telemetry.py"],'
        ' "entry": "main.py",'
        ' "settings": "secrets.py", "settings_example": "secrets_example.py",'
        ' "lib_dir": "/lib"}'
    )
    (root / "pico2_w" / "sensor.py").write_text("def read():\n    return 21.5\n")
    (root / "common").mkdir()  # modules boards share: listed as ../common/NAME
    (root / "common" / "telemetry.py").write_text("def run():\n    pass\n")
    (root / "pico2_w" / "notes_for_host.py").write_text("# not listed in files\n")
    (root / "feather_esp32s3_cp" / "board.json").write_text(
        '{"build_board": null, "runtime": "circuitpython"}'
    )
    custom = root / "my_pico"
    custom.mkdir()
    (custom / "board.json").write_text('{"build_board": "pico_w", "name": "my pico"}')
    (custom / "main.py").write_text("print('custom')\n")
    by_py = root / "my_s3"
    by_py.mkdir()
    (by_py / "board.py").write_text("# host-side board definition\nMARCH = 'xtensawin'\n")
    (by_py / "main.py").write_text("print('s3')\n")
    return str(root)


@pytest.fixture
def peers():
    """Start pty peers; all are stopped (threads joined, ptys closed) after the test."""
    started = []

    def make(**kw):
        p = RawReplPeer(**kw).start()
        started.append(p)
        return p

    yield make
    for p in started:
        p.stop()


def run(capsys, *argv):
    rc = deploy.main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def common(boards, built, *extra):
    return ["--boards-dir", boards, "--build-dir", built, "--no-build", "--timeout", "1.5"] + list(
        extra
    )


def listed(out):
    """{destination: size} from a dry run's listing."""
    rows = {}
    for line in out.splitlines():
        if " -> " in line:
            dest_and_size = line.split(" -> ", 1)[1].split()
            rows[dest_and_size[0]] = int(dest_and_size[1])
    return rows


def expected_files(built, build, folder, secrets=False, main=True):
    """{board path: host path} a deploy must produce."""
    files = {}
    pkg = os.path.join(built, build)
    for dirpath, _, filenames in os.walk(os.path.join(pkg, "umqtt_paho")):
        for fn in filenames:
            host = os.path.join(dirpath, fn)
            files["/lib/" + os.path.relpath(host, pkg).replace(os.sep, "/")] = host
    files["/wifi.py"] = os.path.join(folder, "wifi.py")
    if os.path.isfile(os.path.join(folder, "sensor.py")):  # pico2_w's board.json lists it
        files["/sensor.py"] = os.path.join(folder, "sensor.py")
        files["/telemetry.py"] = os.path.join(os.path.dirname(folder), "common", "telemetry.py")
    if main:
        files["/main.py"] = os.path.join(folder, "main.py")
    if secrets:
        files["/secrets.py"] = os.path.join(folder, "secrets.py")
    return files


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------------------------ mapping


def test_board_folders_map_to_build_boards(bmod, boards):
    for name, (build, march, *_rest) in EXPECTED.items():
        got, folder, _ = deploy.resolve_board(name, boards, bmod.BOARDS)
        assert got == build and folder == os.path.join(boards, name)
        assert bmod.BOARDS[got][0] == march
    # Not in the table: board.json, then board.py (read with ast, never executed).
    assert deploy.resolve_board("my_pico", boards, bmod.BOARDS)[0] == "pico_w"
    assert deploy.resolve_board("my_s3", boards, bmod.BOARDS)[0] in ("esp32", "esp32s3")


def test_circuitpython_and_unknown_boards_are_usage_errors(capsys, boards, built):
    rc, _, err = run(capsys, "--board", "feather_esp32s3_cp", "--dry-run", *common(boards, built))
    assert rc == 2 and "CircuitPython" in err and "CIRCUITPY" in err
    rc, _, err = run(capsys, "--board", "no_such_board", "--dry-run", *common(boards, built))
    assert rc == 2 and "unknown board" in err and "esp32_devkitc" in err
    assert deploy.main(["--dry-run"]) == 2  # --board is required


# ------------------------------------------------------------------ dry run


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dry_run_lists_the_board_files(capsys, boards, built, name):
    build, march, port_mod, other_port, _ = EXPECTED[name]
    # A port that does not exist: a dry run must not look at it.
    rc, out, err = run(
        capsys,
        "--board",
        name,
        "--dry-run",
        "--port",
        "/dev/ttyDOESNOTEXIST",
        *common(boards, built),
    )
    assert rc == 0, err
    assert "no port opened" in out
    assert "build.py board %s (mpy-cross -march=%s" % (build, march) in out
    rows = listed(out)
    want = expected_files(built, build, os.path.join(boards, name))
    assert set(rows) == set(want)
    for dest, host in want.items():
        assert rows[dest] == os.path.getsize(host), dest
    assert "/lib/umqtt_paho/ports/" + port_mod in rows
    assert "/lib/umqtt_paho/ports/" + other_port not in rows
    assert "/lib/umqtt_paho/client.mpy" in rows
    assert "/lib/umqtt_paho/testing.mpy" not in rows  # host-only (build.py's HOST_ONLY)
    assert not any("secrets" in d or "manifest" in d or "README" in d for d in rows)
    total = sum(rows.values())
    assert any(line.split()[:2] == ["total", str(total)] for line in out.splitlines())
    assert "secrets_example.py (a template, never copied)" in out


def test_no_build_ships_only_what_build_py_makes(capsys, boards, built, tmp_path):
    import shutil

    copy = str(tmp_path / "build")
    shutil.copytree(built, copy)
    leftover = os.path.join(copy, "pico_w", "umqtt_paho", "old_removed_module.mpy")
    with open(leftover, "wb") as f:
        f.write(b"M\x06\x00\x1f")
    rc, out, _ = run(capsys, "--board", "pico_w", "--dry-run", *common(boards, copy))
    assert rc == 0 and "/lib/umqtt_paho/old_removed_module.mpy" not in listed(out)
    assert "not part of this build: umqtt_paho/old_removed_module.mpy" in out
    os.remove(os.path.join(copy, "pico_w", "umqtt_paho", "client.mpy"))
    rc, _, err = run(capsys, "--board", "pico_w", "--dry-run", *common(boards, copy))
    assert rc == 1 and "lacks umqtt_paho/client.mpy" in err


def test_dry_run_copies_your_secrets_never_the_example(capsys, boards, built):
    folder = os.path.join(boards, "pico_w")
    with open(os.path.join(folder, "secrets.py"), "w") as f:
        f.write("WIFI_SSID = 'home'\nWIFI_PASSWORD = 'hunter2'\n")
    rc, out, _ = run(capsys, "--board", "pico_w", "--dry-run", *common(boards, built))
    rows = listed(out)
    assert rc == 0 and rows["/secrets.py"] == os.path.getsize(os.path.join(folder, "secrets.py"))
    assert "/secrets_example.py" not in rows
    # --no-main leaves main.py out; a board.json / board.py folder works the same way.
    rc, out, _ = run(capsys, "--board", "pico_w", "--dry-run", "--no-main", *common(boards, built))
    assert rc == 0 and "/main.py" not in listed(out) and "--no-main" in out
    rc, out, _ = run(capsys, "--board", "my_pico", "--dry-run", *common(boards, built))
    assert rc == 0 and "/lib/umqtt_paho/ports/rp2.mpy" in listed(out)
    rc, out, _ = run(capsys, "--board", "my_s3", "--dry-run", *common(boards, built))
    assert rc == 0 and "/board.py" not in listed(out) and "/main.py" in listed(out)


def test_board_json_decides_the_files(capsys, boards, built):
    folder = os.path.join(boards, "pico2_w")
    with open(os.path.join(folder, "secrets.py"), "w") as f:
        f.write("WIFI_SSID = 'home'\n")
    with open(os.path.join(folder, "ca.der"), "wb") as f:  # your TLS CA, git-ignored
        f.write(b"0\x82\x01\x0a")
    rc, out, _ = run(capsys, "--board", "pico2_w", "--dry-run", *common(boards, built))
    rows = listed(out)
    assert rc == 0
    assert {"/main.py", "/wifi.py", "/sensor.py", "/secrets.py", "/ca.der"} <= set(rows)
    assert "boards/common/telemetry.py" in out.replace(os.sep, "/")  # ../common/: to / too
    assert rows["/telemetry.py"] == os.path.getsize(os.path.join(boards, "common", "telemetry.py"))
    for absent in ("/notes_for_host.py", "/board.json", "/manifest.py", "/secrets_example.py"):
        assert absent not in rows
    assert "notes_for_host.py (not in board.json's files)" in out
    dests = [line.split(" -> ")[1].split()[0] for line in out.splitlines() if " -> " in line]
    assert dests[-1] == "/main.py"  # the entry point goes last
    # A file board.json lists that is not there is an error, not a silent skip.
    os.remove(os.path.join(folder, "sensor.py"))
    rc, _, err = run(capsys, "--board", "pico2_w", "--dry-run", *common(boards, built))
    assert rc == 1 and "sensor.py" in err


def test_dry_run_from_the_command_line(boards, built):
    p = subprocess.run(
        [sys.executable, DEPLOY_PY, "--board", "esp32s3", "--dry-run"] + common(boards, built),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert "/lib/umqtt_paho/ports/esp32.mpy" in p.stdout
    p = subprocess.run(
        [sys.executable, DEPLOY_PY, "--dry-run"], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 2 and "--board" in p.stderr


# ------------------------------------------------------------------ deploy to the pty peer


def test_deploy_copies_every_file_byte_identical(capsys, boards, built, peers):
    """A deploy to the pty peer (not a board) while its main.py is running."""
    folder = os.path.join(boards, "esp32_devkitc")
    with open(os.path.join(folder, "secrets.py"), "w") as f:
        f.write("WIFI_SSID = 'home'\n")
    peer = peers(platform="esp32", running_main=True)
    # What an earlier deploy and the user left on the board.
    peer.put("/lib/umqtt_paho/client.mpy", b"M\x06old build")
    peer.put("/lib/umqtt_paho/old_module.py", b"print('stale, would shadow')\n")
    peer.put("/data.txt", b"the user's own file")

    rc, out, err = run(
        capsys, "--board", "esp32_devkitc", "--port", peer.port, *common(boards, built)
    )
    assert rc == 0, err + out + "".join(peer.peer_errors)

    want = expected_files(built, "esp32", folder, secrets=True)
    flash = peer.files()
    for dest, host in want.items():
        assert flash.get(dest) == read(host), dest
    assert set(flash) == set(want) | {"/data.txt"}  # the stale module is gone
    assert flash["/data.txt"] == b"the user's own file"
    assert "removing stale files: /lib/umqtt_paho/old_module.py" in out

    # Progress: one line per file (not a TTY here), numbered, with the running total.
    n = len(want)
    for i in range(1, n + 1):
        assert "[%d/%d] " % (i, n) in out
    assert out.index("[%d/%d] /main.py" % (n, n)) > out.index("/secrets.py  ")  # main.py last
    assert "copied %d files" % n in out and "verified %d files" % n in out
    assert "size and SHA-256" in out
    # It went through mpremote's raw-paste mode, after stopping main.py and a soft reset.
    assert b"\x05A\x01" in peer.received and b"\r\x03" in peer.received
    assert peer.soft_reboots == 1 and not peer.program_running
    assert not peer.peer_errors


def test_deploy_builds_first_and_resets(capsys, boards, tmp_path, peers):
    peer = peers(platform="rp2350")
    out_dir = str(tmp_path / "fresh-build")
    rc, out, err = run(
        capsys,
        "--board",
        "pico2_w",
        "--port",
        peer.port,
        "--boards-dir",
        boards,
        "--build-dir",
        out_dir,
        "--timeout",
        "1.5",
        "--no-main",
        "--reset",
    )
    assert rc == 0, err + out
    assert "building pico2_w" in out
    want = expected_files(out_dir, "pico2_w", os.path.join(boards, "pico2_w"), main=False)
    flash = peer.files()
    assert set(flash) == set(want)
    for dest, host in want.items():
        assert flash[dest] == read(host), dest
    # --reset: back to the friendly REPL and Ctrl-D, a second soft reboot.
    assert peer.wait(lambda p: p.soft_reboots == 2)
    assert peer.received.endswith(b"\r\x02\x04")


def test_progress_bar_on_a_tty():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    items = [
        deploy.Item("a", "/lib/umqtt_paho/client.mpy", 1000, "lib"),
        deploy.Item("b", "/main.py", 3000, "main"),
    ]
    p = deploy.Progress(2, 4000, stream)
    for it in items:
        p.start(it)
        for n in range(0, it.size + 1, 256):
            p.update(min(n, it.size), it.size)
        p.end()
    p.finish()
    text = stream.getvalue()
    assert "\r[1/2] /lib/umqtt_paho/client.mpy" in text and "\r[2/2] /main.py" in text
    assert "100%" in text and "[" + "#" * deploy.Progress.BAR + "]" in text
    assert " 3.9 KB / 3.9 KB" in text and text.endswith("copied 2 files, 3.9 KB in 0.0 s\n")
    assert text.count("\n") == 2  # redrawn in place, not a line per update


# ------------------------------------------------------------------ no board, wrong port


FAKE_PORTS = [
    ("/dev/ttyS0", "", None, None),
    ("/dev/ttyUSB7", "CP2102 USB to UART [10c4:ea60 Silicon Labs CP210x]", 0x10C4, 0xEA60),
]


def test_no_board_port_does_not_exist(capsys, boards, built, monkeypatch):
    monkeypatch.setattr(deploy.transport, "list_serial_ports", lambda: FAKE_PORTS)
    rc, _, err = run(capsys, "--board", "pico_w", "--port", "/dev/ttyNOPE", *common(boards, built))
    assert rc == 3
    assert "/dev/ttyNOPE does not exist" in err
    assert "/dev/ttyS0" in err and "/dev/ttyUSB7  CP2102" in err


def test_no_board_found_by_auto(capsys, boards, built, monkeypatch):
    monkeypatch.setattr(deploy.transport, "list_serial_ports", lambda: FAKE_PORTS[:1])
    rc, _, err = run(capsys, "--board", "pico_w", *common(boards, built))  # --port auto
    assert rc == 3 and "no board found" in err and "/dev/ttyS0" in err
    monkeypatch.setattr(deploy.transport, "list_serial_ports", lambda: FAKE_PORTS)
    assert deploy.resolve_port("auto") == "/dev/ttyUSB7"
    two = FAKE_PORTS + [("/dev/ttyACM0", "Board in FS mode [2e8a:0005 Raspberry Pi]", 0x2E8A, 5)]
    monkeypatch.setattr(deploy.transport, "list_serial_ports", lambda: two)
    rc, _, err = run(capsys, "--board", "pico_w", *common(boards, built))
    assert rc == 2 and "pass --port" in err


def test_the_real_port_listing_is_shown(boards, built):
    p = subprocess.run(
        [sys.executable, DEPLOY_PY, "--board", "pico_w", "--port", "/dev/ttyNOPE"]
        + common(boards, built),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 3 and "serial ports seen on this machine" in p.stderr


def test_wrong_port_silent_device(capsys, boards, built, peers):
    peer = peers(mode="silent")
    t0 = time.monotonic()
    rc, _, err = run(
        capsys, "--board", "esp32_devkitc", "--port", peer.port, *common(boards, built)
    )
    elapsed = time.monotonic() - t0
    assert rc == 3 and "no answer from %s" % peer.port in err and "raw REPL" in err
    assert elapsed < 5, elapsed  # --timeout 1.5, one attempt
    assert peer.files() == {}


def test_wrong_port_device_that_is_not_micropython(capsys, boards, built, peers):
    peer = peers(mode="foreign")  # talks all the time, never a raw REPL
    t0 = time.monotonic()
    rc, _, err = run(
        capsys, "--board", "esp32_devkitc", "--port", peer.port, *common(boards, built)
    )
    elapsed = time.monotonic() - t0
    assert rc == 3 and "not as MicroPython's raw REPL" in err and "T=21.5C" in err
    assert elapsed < 8, elapsed  # two attempts of 1.5 s
    assert peer.files() == {}


def test_wrong_board_on_the_port(capsys, boards, built, peers):
    peer = peers(platform="rp2040")
    rc, _, err = run(
        capsys, "--board", "esp32_devkitc", "--port", peer.port, *common(boards, built)
    )
    assert rc == 3 and "on rp2" in err and "'esp32'" in err
    assert peer.files() == {}


def test_firmware_too_old_for_the_mpy_files(capsys, boards, built, peers):
    peer = peers(mpy_version=5)  # MicroPython 1.12-1.18 loads .mpy v5 only
    rc, _, err = run(
        capsys, "--board", "esp32_devkitc", "--port", peer.port, *common(boards, built)
    )
    assert rc == 3 and "loads .mpy v5" in err and "Update the firmware" in err
    assert peer.files() == {}


def test_port_in_use_by_another_program(capsys, boards, built, peers):
    import serial

    peer = peers()
    other = serial.Serial(peer.port, 115200, exclusive=True)  # a terminal left open
    try:
        rc, _, err = run(capsys, "--board", "pico_w", "--port", peer.port, *common(boards, built))
    finally:
        other.close()
    assert rc == 3 and "cannot open %s" % peer.port in err and "another program" in err


# ------------------------------------------------------------------ out of flash


def test_out_of_flash_refused_before_copying(capsys, boards, built, peers):
    peer = peers(flash_size=64 * 1024)  # 16 blocks of 4 KB
    rc, out, err = run(
        capsys, "--board", "esp32_devkitc", "--port", peer.port, *common(boards, built)
    )
    assert rc == 4, err + out
    assert "not enough flash" in err and "needs" in err and "56.0 KB free of 64.0 KB" in err
    assert "Nothing was copied" in err
    assert peer.files() == {}
    assert not any("open(" in code or "mkdir" in code for code in peer.executed)
    assert any("statvfs" in code for code in peer.executed)


def test_out_of_flash_while_copying(capsys, boards, built, peers):
    # statvfs says there is room; the filesystem then fails writes with ENOSPC.
    peer = peers(fail_writes_after=20000)
    rc, out, err = run(
        capsys, "--board", "esp32_devkitc", "--port", peer.port, *common(boards, built)
    )
    assert rc == 4, err + out
    assert "ran out of flash while writing /lib/umqtt_paho/" in err
    want = expected_files(built, "esp32", os.path.join(boards, "esp32_devkitc"))
    flash = peer.files()
    assert flash and "/main.py" not in flash  # main.py comes last: the old one stays
    for dest, data in flash.items():  # what arrived is whole; the partial file is gone
        assert data == read(want[dest]), dest


# ------------------------------------------------------------------ the peer itself


@pytest.mark.parametrize("raw_paste", [True, False], ids=["raw-paste", "classic-OK"])
def test_the_pty_peer_speaks_what_mpremote_expects(raw_paste, peers):
    """The pty peer (not a board) through mpremote's own SerialTransport, in both the
    raw-paste protocol and the older "OK" one mpremote falls back to."""
    from mpremote.transport_serial import SerialTransport

    peer = peers(raw_paste=raw_paste, platform="rp2040")
    t = SerialTransport(peer.port, baudrate=115200, timeout=1)
    try:
        t.enter_raw_repl(soft_reset=True, timeout_overall=3)
        assert t.eval("1 + 1") == 2
        assert t.eval("__import__('sys').platform") == "rp2"
        data = bytes(range(256)) * 3
        t.fs_mkdir("lib")
        t.fs_writefile("lib/blob.bin", data)
        assert t.fs_stat("lib/blob.bin").st_size == len(data)
        assert bytes(t.fs_readfile("lib/blob.bin")) == data
        assert not t.fs_exists("nope") and t.fs_isdir("lib")
        with pytest.raises(OSError) as e:
            t.fs_readfile("../../etc/passwd")  # resolved inside the flash: ENOENT
        assert e.value.errno == 2
        assert t.eval("__import__('os').statvfs('/')")[0] == 4096
    finally:
        t.exit_raw_repl()
        t.close()
    assert peer.files() == {"/lib/blob.bin": bytes(range(256)) * 3}
    assert (b"\x05A\x01" in peer.received) and not peer.peer_errors
    assert hashlib.sha256(peer.files()["/lib/blob.bin"]).digest() == hashlib.sha256(data).digest()


# ------------------------------------------------------------------ the real boards/


def test_the_real_board_folders_map(bmod):
    real = os.path.join(REPO, "boards")
    if not os.path.isdir(real):
        pytest.fail("boards/ is not there yet")
    names = sorted(
        d
        for d in os.listdir(real)
        if os.path.isdir(os.path.join(real, d)) and not d.startswith((".", "_"))
    )
    assert names
    for name in names:
        try:
            build, _, _ = deploy.resolve_board(name, real, bmod.BOARDS)
        except deploy.DeployError as e:
            if name == "common":  # boards/common/: the modules the boards share
                assert e.code == 2 and "not a board" in e.message, e.message
                continue
            assert e.code == 2 and "CircuitPython" in e.message, (name, e.message)
            continue
        assert build in bmod.BOARDS, name
        if name in EXPECTED:
            assert build == EXPECTED[name][0]
        meta = deploy.board_meta(os.path.join(real, name))
        if meta.get("build_board") is not None:  # board.json and the table agree
            assert meta["build_board"] == build, name


def test_dry_run_and_deploy_of_the_real_boards(capsys, built, peers):
    real = os.path.join(REPO, "boards")
    names = [n for n in sorted(EXPECTED) if os.path.isdir(os.path.join(real, n))]
    if not names:
        pytest.fail("boards/ is not there yet")
    for name in names:
        rc, out, err = run(
            capsys, "--board", name, "--dry-run", "--build-dir", built, "--no-build"
        )
        assert rc == 0, err
        rows = listed(out)
        assert "/main.py" in rows and "/lib/umqtt_paho/client.mpy" in rows
        assert "/lib/umqtt_paho/ports/" + EXPECTED[name][2] in rows
        wifi = "/wifi_%s.py" % EXPECTED[name][2][:-4]  # from boards/common/, like telemetry.py
        assert {"/telemetry.py", wifi} <= set(rows) and "/wifi.py" not in rows
        assert not any("example" in d or d.endswith((".json", ".md")) for d in rows), rows
    # One real folder all the way to the pty peer (not a board).
    name = names[0]
    peer = peers(platform=EXPECTED[name][4])
    rc, out, err = run(
        capsys,
        "--board",
        name,
        "--port",
        peer.port,
        "--build-dir",
        built,
        "--no-build",
        "--timeout",
        "1.5",
    )
    assert rc == 0, err
    flash = peer.files()
    assert set(flash) == set(listed(out))
    assert flash["/main.py"] == read(os.path.join(real, name, "main.py"))
    assert flash["/telemetry.py"] == read(os.path.join(real, "common", "telemetry.py"))
