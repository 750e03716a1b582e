"""Every wait is bounded, on real sockets through the CPython port.

Peers that misbehave at the TCP level (accept and stay silent, never finish TLS, stall
mid-packet, vanish) are small loopback servers written here; each test asserts that the
client returns or raises within its bound, measured with a monotonic clock.
"""

import socket
import ssl
import threading
import time

import pytest

from brokers import certs
from umqtt_paho import Client, MQTTError
from umqtt_paho import errors as E


class SilentServer:
    """Accepts TCP connections, then does what `behaviour(conn)` says (default: nothing)."""

    def __init__(self, behaviour=None):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.behaviour = behaviour
        self.conns = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)
            if self.behaviour:
                threading.Thread(target=self.behaviour, args=(conn,), daemon=True).start()

    def close(self):
        self.stop.set()
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture
def server():
    servers = []

    def make(behaviour=None):
        s = SilentServer(behaviour)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def elapsed_ms(t0):
    return (time.monotonic() - t0) * 1000


def test_broker_that_never_sends_connack(server):
    s = server()
    c = Client("c", command_timeout=600, cycle_timeout=100)
    t0 = time.monotonic()
    with pytest.raises(MQTTError) as ei:
        c.connect("127.0.0.1", 60, port=s.port)
    took = elapsed_ms(t0)
    assert ei.value.code == E.ERR_TIMEOUT and "CONNACK" in str(ei.value)
    assert 550 <= took < 600 + 400
    assert c.get_rc() == -1 and not c.connected()


def test_tls_handshake_that_never_finishes(server):
    s = server()  # accepts TCP, never answers the ClientHello
    ctx = ssl.create_default_context(cafile=certs().ca_path)
    c = Client("c", command_timeout=700)
    t0 = time.monotonic()
    with pytest.raises(OSError):  # socket.timeout / TimeoutError during the handshake
        c.connect("localhost", 60, port=s.port, ssl_ctx=ctx)
    assert elapsed_ms(t0) < 700 + 400


def test_refused_port_fails_fast():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    c = Client("c", command_timeout=5000)
    t0 = time.monotonic()
    with pytest.raises(OSError):
        c.connect("127.0.0.1", 60, port=port)
    assert elapsed_ms(t0) < 1000
    assert c.reconnect() == -1 and c.get_rc() == -1


def test_unresolvable_host_is_an_error_not_a_hang():
    c = Client("c", command_timeout=3000)
    t0 = time.monotonic()
    with pytest.raises(OSError):
        c.connect("no-such-host.invalid", 60)
    assert elapsed_ms(t0) < 3000 + 500


def connack_then(after):
    # A peer that answers CONNECT with CONNACK 0, then runs after(conn).
    def behaviour(conn):
        conn.recv(1024)
        conn.sendall(b"\x20\x02\x00\x00")
        after(conn)

    return behaviour


def test_stall_mid_packet_on_a_real_socket(server):
    s = server(connack_then(lambda conn: conn.sendall(b"\x30\x20\x00\x03a/b")))
    failures = []
    c = Client("c", command_timeout=500, cycle_timeout=100)
    t0 = time.monotonic()
    c.connect("127.0.0.1", 60, port=s.port, loop_failure=lambda cl: failures.append(cl.last_error))
    deadline = time.monotonic() + 3
    while c._loop_running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not c._loop_running
    assert len(failures) == 1 and failures[0].code == E.ERR_TIMEOUT
    assert elapsed_ms(t0) < 500 + 100 + 400


def test_publish_qos1_to_a_peer_that_never_acks(server):
    s = server(connack_then(lambda conn: time.sleep(5)))
    c = Client("c", command_timeout=400, cycle_timeout=100)
    c.connect("127.0.0.1", 60, port=s.port)
    t0 = time.monotonic()
    pid = c.publish("t", "x", qos=1)  # accepted: returns after command_timeout, no raise
    assert 390 <= elapsed_ms(t0) < 400 + 300
    assert pid == 1 and c.pending() == 1  # still the session's, resent on reconnect
    c.disconnect(1000)
    assert not c._loop_running


def test_peer_closing_wakes_a_waiting_publisher_at_once(server):
    def close_soon(conn):
        time.sleep(0.2)
        conn.shutdown(socket.SHUT_RDWR)
        conn.close()

    s = server(connack_then(close_soon))
    c = Client("c", command_timeout=10000, cycle_timeout=100)
    c.connect("127.0.0.1", 60, port=s.port)
    t0 = time.monotonic()
    c.publish("t", "x", qos=1)  # its ack can never come: the link closes
    assert elapsed_ms(t0) < 1500  # returns then, not after the 10 s command_timeout
    assert not c.connected() and c.pending() == 1


def test_disconnect_returns_within_its_timeout_when_the_peer_is_gone(server):
    s = server(connack_then(lambda conn: time.sleep(5)))
    c = Client("c", command_timeout=10000, cycle_timeout=200)
    c.connect("127.0.0.1", 60, port=s.port)
    t0 = time.monotonic()
    c.disconnect(timeout=300)
    assert elapsed_ms(t0) < 300 + 300
    assert not c.connected()
