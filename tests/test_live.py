"""umqtt_paho.Client against real mosquitto brokers (no mocks).

Every test starts its own private broker (fixtures in conftest.py) and bounds every
wait, so a client that hangs makes a test fail, not the suite stall.
"""

import json
import os
import queue
import socket
import ssl
import threading
import time

import paho.mqtt.client as paho
import pytest

from brokers import Mosquitto
from umqtt_paho import BREAK_LOOP, RECOVERED, Client, MQTTError
from umqtt_paho.errors import (
    ERR_CONN_REFUSED,
    ERR_NO_CONN,
    ERR_SUBSCRIBE_REFUSED,
)

# A hang must fail the test, not the run (pytest-timeout; setup.cfg allows 300 s).
pytestmark = pytest.mark.timeout(30)

from livehelpers import CMD_MS, WAIT, Inbox, wait_until  # noqa: E402,F401


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


@pytest.fixture
def make_client():
    """Client factory; every client made is disconnected at teardown."""
    made = []

    def make(client_id, **kw):
        kw.setdefault("command_timeout", CMD_MS)
        c = Client(client_id, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        try:
            c.disconnect(timeout=1000)
        except Exception:
            pass


def connected_client(make_client, broker, client_id, keepalive=10, **kw):
    c = make_client(client_id, **kw)
    c.connect(broker.host, keepalive, port=broker.port)
    return c


class DynsecMosquitto(Mosquitto):
    """mosquitto with the dynamic-security plugin: anonymous clients may subscribe to
    ok/# only. (mosquitto 2.0's acl_file never refuses a SUBSCRIBE -- it grants it and
    filters delivery -- so the plugin is the way to get a SUBACK 0x80 from it.)"""

    PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"

    def __init__(self):
        super().__init__()
        path = os.path.join(self.dir, "dynamic-security.json")
        with open(path, "w") as f:
            json.dump(
                {
                    "defaultACLAccess": {
                        "publishClientSend": True,
                        "publishClientReceive": True,
                        "subscribe": False,
                        "unsubscribe": True,
                    },
                    "clients": [],
                    "groups": [{"groupname": "anon", "roles": [{"rolename": "okonly"}]}],
                    "roles": [
                        {
                            "rolename": "okonly",
                            "acls": [
                                {"acltype": "subscribePattern", "topic": "ok/#", "allow": True}
                            ],
                        }
                    ],
                    "anonymousGroup": "anon",
                },
                f,
            )
        with open(self.config_path, "a") as f:
            f.write("plugin %s\nplugin_opt_config_file %s\n" % (self.PLUGIN, path))


# --------------------------------------------------------------------------
# connect / disconnect
# --------------------------------------------------------------------------


def test_plain_connect_and_disconnect(mosquitto, make_client):
    c = make_client("plain1")
    assert c.get_rc() == -1
    assert not c.connected()
    assert c.connect(mosquitto.host, 10, port=mosquitto.port) == 0
    assert c.get_rc() == 0
    assert c.connected()
    assert c.session_present is False
    assert c._loop_running
    t0 = time.monotonic()
    c.disconnect(timeout=2000)
    assert time.monotonic() - t0 < 2.5
    assert c._loop_running is False
    assert not c.connected()
    assert wait_until(lambda: "Received DISCONNECT from plain1" in mosquitto.log_text())


def test_password_right_wrong_missing(mosquitto_auth, make_client):
    b = mosquitto_auth
    ok = make_client("alice1")
    ok.set_username_pw("alice", "secret")
    assert ok.connect(b.host, 10, port=b.port) == 0
    assert ok.get_rc() == 0 and ok.connected()

    bad = make_client("alice2")
    bad.set_username_pw("alice", "wrong")
    with pytest.raises(MQTTError) as ei:
        bad.connect(b.host, 10, port=b.port)
    assert ei.value.code == ERR_CONN_REFUSED
    assert bad.get_rc() == 5
    assert not bad.connected()
    assert not bad._loop_running

    anon = make_client("nobody")
    with pytest.raises(MQTTError) as ei:
        anon.connect(b.host, 10, port=b.port)
    assert ei.value.code == ERR_CONN_REFUSED
    assert anon.get_rc() == 5
    assert not anon.connected()


# --------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------


def test_tls_connect_and_qos1_round_trip(mosquitto_tls, make_client):
    b = mosquitto_tls
    ctx = ssl.create_default_context(cafile=b.ca_path)
    c = make_client("tls1")
    assert c.connect("localhost", 10, port=b.port, ssl_ctx=ctx) == 0
    assert isinstance(c._net.sock, ssl.SSLSocket)
    inbox = Inbox()
    assert c.subscribe("tls/t", inbox, 1) == 1
    c.publish("tls/t", "over tls", 1)
    assert inbox.wait(1) == 1
    assert inbox.items == [("tls/t", b"over tls")]


def test_tls_wrong_ca_fails_fast(mosquitto_tls, make_client):
    b = mosquitto_tls
    ctx = ssl.create_default_context(cafile=b.wrong_ca_path)
    c = make_client("tls2")
    t0 = time.monotonic()
    with pytest.raises((ssl.SSLCertVerificationError, OSError)) as ei:
        c.connect("localhost", 10, port=b.port, ssl_ctx=ctx)
    assert time.monotonic() - t0 < 3.0
    assert isinstance(ei.value, ssl.SSLCertVerificationError), repr(ei.value)
    assert not c.connected()
    assert c.get_rc() == -1
    assert not c._loop_running


def _alias_of_127():
    # A name that resolves to 127.0.0.1 but is not in the certificate
    # (DNS:localhost, IP:127.0.0.1).
    names = [socket.gethostname(), "vm", "runsc", "localhost.localdomain"]
    for name in names:
        if name in ("localhost", "127.0.0.1"):
            continue
        try:
            addrs = {a[4][0] for a in socket.getaddrinfo(name, 1883, 0, socket.SOCK_STREAM)}
        except OSError:
            continue
        if "127.0.0.1" in addrs:
            return name
    return None


class _RenamingContext:
    """Wraps an SSLContext so the handshake checks the certificate against another
    name than the one connected to (used if no alias of 127.0.0.1 exists here)."""

    def __init__(self, ctx, name):
        self.ctx = ctx
        self.name = name

    def wrap_socket(self, sock, server_hostname=None, **kw):
        return self.ctx.wrap_socket(sock, server_hostname=self.name, **kw)


def test_tls_hostname_mismatch(mosquitto_tls, make_client):
    b = mosquitto_tls
    ctx = ssl.create_default_context(cafile=b.ca_path)
    assert ctx.check_hostname
    alias = _alias_of_127()
    if alias is not None:
        host, use_ctx = alias, ctx
    else:
        host, use_ctx = "localhost", _RenamingContext(ctx, "not-in-the-cert.invalid")
    c = make_client("tls3")
    t0 = time.monotonic()
    with pytest.raises(ssl.SSLCertVerificationError) as ei:
        c.connect(host, 10, port=b.port, ssl_ctx=use_ctx)
    assert time.monotonic() - t0 < 3.0
    assert "hostname mismatch" in str(ei.value).lower(), str(ei.value)
    assert not c.connected()


# --------------------------------------------------------------------------
# will, retained
# --------------------------------------------------------------------------


class PahoSub:
    """An independent observer (paho-mqtt), subscribed before the test acts."""

    def __init__(self, broker, topic, qos=1):
        self.q = queue.Queue()
        subscribed = threading.Event()
        connected = threading.Event()
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="paho-observer")
        self.c.on_connect = lambda *a: connected.set()
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.on_message = lambda cl, ud, m: self.q.put((m.topic, m.payload, m.retain))
        self.c.connect(broker.host, broker.port, 10)
        self.c.loop_start()
        assert connected.wait(WAIT)
        self.c.subscribe(topic, qos)
        assert subscribed.wait(WAIT)

    def get(self, timeout=WAIT):
        return self.q.get(timeout=timeout)

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def test_will_published_when_link_dies(mosquitto, make_client):
    obs = PahoSub(mosquitto, "dev/status", 1)
    try:
        a = make_client("dev-a")
        a.set_will("dev/status", "offline", 1, True)
        a.connect(mosquitto.host, 10, port=mosquitto.port)
        a.publish("dev/status", "online", 1)
        assert obs.get() == ("dev/status", b"online", False)
        # Cut the link under the client: no DISCONNECT goes out.
        a._net.sock.shutdown(socket.SHUT_RDWR)
        topic, payload, _ = obs.get()
        assert (topic, payload) == ("dev/status", b"offline")
        # A's own loop noticed the dead link.
        assert wait_until(lambda: not a._loop_running)
        assert not a.connected()
        # The will was retained: a newcomer gets it.
        late = make_client("late")
        inbox = Inbox()
        late.subscribe("dev/status", inbox, 1)
        late.connect(mosquitto.host, 10, port=mosquitto.port)
        assert inbox.wait(1) == 1
        assert inbox.items[0] == ("dev/status", b"offline")
    finally:
        obs.close()


def test_will_not_published_on_clean_disconnect(mosquitto, make_client):
    obs = PahoSub(mosquitto, "dev/+", 1)
    try:
        a = make_client("dev-b")
        a.set_will("dev/b", "offline", 1, False)
        a.connect(mosquitto.host, 10, port=mosquitto.port)
        a.publish("dev/b", "online", 1)
        assert obs.get()[:2] == ("dev/b", b"online")
        a.disconnect(timeout=2000)
        with pytest.raises(queue.Empty):
            obs.get(timeout=1.0)
    finally:
        obs.close()


def test_retained_message(mosquitto, make_client):
    pub = connected_client(make_client, mosquitto, "ret-pub")
    pub.publish("ret/a", "kept", 1, retain=True)
    pub.publish("ret/b", "not kept", 1, retain=False)
    sub = connected_client(make_client, mosquitto, "ret-sub")
    inbox = Inbox()
    sub.subscribe("ret/#", inbox, 1)
    assert inbox.wait(1) == 1
    time.sleep(0.3)  # nothing else may come
    assert inbox.items == [("ret/a", b"kept")]
    # An empty retained payload clears it.
    pub.publish("ret/a", "", 1, retain=True)
    sub2 = connected_client(make_client, mosquitto, "ret-sub2")
    inbox2 = Inbox()
    sub2.subscribe("ret/#", inbox2, 1)
    time.sleep(0.5)
    assert inbox2.items == []


# --------------------------------------------------------------------------
# persistent sessions
# --------------------------------------------------------------------------


def _make_session(make_client, broker, cid, topic):
    p1 = make_client(cid, clean_session=False)
    p1.subscribe(topic + "/q1", Inbox(), 1)
    p1.subscribe(topic + "/q2", Inbox(), 2)
    p1.connect(broker.host, 10, port=broker.port)
    assert p1.session_present is False
    # Subscriptions registered before connect() went out after CONNACK.
    assert [h[3] for h in p1._handlers] == [1, 2]
    p1.disconnect(timeout=2000)
    assert not p1._loop_running
    return p1


def _publish_50_50(make_client, broker, topic):
    pub = connected_client(make_client, broker, "persist-pub")
    for i in range(50):
        pub.publish(topic + "/q1", "q1-%d" % i, 1)
        pub.publish(topic + "/q2", "q2-%d" % i, 2)
    pub.disconnect(timeout=2000)


def _check_100(items, topic):
    got1 = [p for t, p in items if t == topic + "/q1"]
    got2 = [p for t, p in items if t == topic + "/q2"]
    assert got1 == [b"q1-%d" % i for i in range(50)]
    assert got2 == [b"q2-%d" % i for i in range(50)]
    assert len(items) == 100


@pytest.mark.parametrize("variant", ["function", "on_message", "same_client"])
def test_persistent_session_queued_messages(mosquitto_persist, make_client, variant):
    b = mosquitto_persist
    topic = "sess"
    p1 = _make_session(make_client, b, "p1", topic)
    _publish_50_50(make_client, b, topic)

    inbox = Inbox()
    if variant == "same_client":
        # The same object: its functions are still registered.
        for h in p1._handlers:
            h[1] = inbox
        again = p1
    else:
        again = make_client("p1", clean_session=False)
        if variant == "function":
            # Registered before connect(): the queued messages arrive right after
            # CONNACK, before any SUBSCRIBE could be answered.
            assert again.subscribe(topic + "/q1", inbox, 1) is None
            assert again.subscribe(topic + "/q2", inbox, 2) is None
        else:
            again.on_message = inbox
    again.connect(b.host, 10, port=b.port)
    assert again.session_present is True
    n = inbox.wait(100, client=again)
    assert n == 100, "got %d of 100; last_error=%r" % (n, again.last_error)
    time.sleep(0.2)
    _check_100(inbox.items, topic)
    assert again.unhandled == 0
    # With a session present, subscriptions this object saw confirmed are not sent
    # again; a new object's registered functions were never confirmed by a SUBACK, so
    # they are (the session may lack them: a SUBSCRIBE cut before its SUBACK).
    expected = 4 if variant == "function" else 2
    assert b.log_text().count("Received SUBSCRIBE from p1") == expected


def test_persistent_session_survives_broker_restart(mosquitto_persist, make_client):
    b = mosquitto_persist
    _make_session(make_client, b, "p2", "keep")
    _publish_50_50(make_client, b, "keep")
    b.restart()
    inbox = Inbox()
    again = make_client("p2", clean_session=False)
    again.on_message = inbox
    again.connect(b.host, 10, port=b.port)
    assert again.session_present is True
    n = inbox.wait(100, client=again)
    assert n == 100, "got %d of 100; last_error=%r" % (n, again.last_error)
    _check_100(inbox.items, "keep")


def test_persistent_session_large_inbound_table(mosquitto_persist, make_client):
    # The same flood with an inbound QoS 2 table larger than the 50 QoS 2 messages:
    # isolates the routing (function registered before connect) from the table size.
    b = mosquitto_persist
    _make_session(make_client, b, "p3", "big")
    _publish_50_50(make_client, b, "big")
    inbox = Inbox()
    again = make_client("p3", clean_session=False, max_inflight_in=64)
    again.subscribe("big/q1", inbox, 1)
    again.subscribe("big/q2", inbox, 2)
    again.connect(b.host, 10, port=b.port)
    assert again.session_present is True
    n = inbox.wait(100, client=again)
    assert n == 100, "got %d of 100; last_error=%r" % (n, again.last_error)
    time.sleep(0.2)
    _check_100(inbox.items, "big")


# --------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------

N = 1000


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_round_trip_1000(mosquitto, make_client, qos):
    sub = connected_client(make_client, mosquitto, "rt-sub-%d" % qos)
    pub = connected_client(make_client, mosquitto, "rt-pub-%d" % qos)
    inbox = Inbox()
    topic = "rt/q%d" % qos
    assert sub.subscribe(topic, inbox, qos) == qos
    t0 = time.monotonic()
    for i in range(N):
        pub.publish(topic, "m%d" % i, qos)
    elapsed = time.monotonic() - t0
    print("\n%d QoS %d publishes took %.3f s (%.0f/s)" % (N, qos, elapsed, N / elapsed))
    assert inbox.wait(N, timeout=10) == N, "got %d of %d" % (len(inbox.items), N)
    time.sleep(0.2)  # duplicates, if any, would arrive now
    got = inbox.payloads()
    assert len(got) == N
    assert got == [b"m%d" % i for i in range(N)]  # all, once, in order
    assert all(t == topic for t, _ in inbox.items)


def test_concurrent_publishers_share_the_inflight_table(mosquitto, make_client):
    # 4 threads publish at QoS 1 and 2 through one client (max_inflight=4), all
    # waiting for acks that the loop thread reads. (The subscriber gets a big inbound
    # table so that this test is about the publishing side only.)
    sub = connected_client(make_client, mosquitto, "cc-sub", max_inflight_in=256)
    pub = connected_client(make_client, mosquitto, "cc-pub")
    inbox = Inbox()
    sub.subscribe("cc/#", inbox, 2)
    errors = []

    def worker(k):
        try:
            for i in range(100):
                pub.publish("cc/%d" % k, "%d-%d" % (k, i), 1 + (k & 1))
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert errors == []
    n = inbox.wait(400, client=sub)
    assert n == 400, "got %d; sub.last_error=%r" % (n, sub.last_error)
    for k in range(4):
        got = [p for t, p in inbox.items if t == "cc/%d" % k]
        assert got == [b"%d-%d" % (k, i) for i in range(100)]


def test_qos2_burst_default_inbound_table(mosquitto, make_client):
    # MQTT 3.1.1 has no receive maximum: a broker may send any number of QoS 2
    # PUBLISHes before its PUBRELs. A burst from a fast publisher (paho, 20 in
    # flight) must not make a default subscriber drop the link and lose messages.
    sub = connected_client(make_client, mosquitto, "burst-sub")
    inbox = Inbox()
    sub.subscribe("burst/t", inbox, 2)
    p = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="burst-pub")
    p.connect(mosquitto.host, mosquitto.port, 10)
    p.loop_start()
    try:
        infos = [p.publish("burst/t", b"%d" % i, 2) for i in range(300)]
        for info in infos:
            info.wait_for_publish(5)
        n = inbox.wait(300, 5, client=sub)
    finally:
        p.disconnect()
        p.loop_stop()
    assert n == 300, "got %d of 300; last_error=%r" % (n, sub.last_error)
    assert inbox.payloads() == [b"%d" % i for i in range(300)]
    assert sub.connected()


def test_callback_publishes_qos1(mosquitto, make_client):
    # A message function that publishes at QoS 1 from the loop thread (nested read).
    listener = connected_client(make_client, mosquitto, "nest-listen")
    replies = Inbox()
    listener.subscribe("nest/reply", replies, 1)
    echo = connected_client(make_client, mosquitto, "nest-echo")

    def answer(client, payload, topic):
        client.publish("nest/reply", b"re:" + payload, 1)

    echo.subscribe("nest/ask", answer, 1)
    asker = connected_client(make_client, mosquitto, "nest-ask")
    for i in range(20):
        asker.publish("nest/ask", "q%d" % i, 1)
    assert replies.wait(20, timeout=2) == 20
    assert replies.payloads() == [b"re:q%d" % i for i in range(20)]
    assert echo.connected() and echo._loop_running


# --------------------------------------------------------------------------
# protocol 3.1, keepalive
# --------------------------------------------------------------------------


def test_mqtt31(mosquitto, make_client):
    c = make_client("v31client", protocol=3)
    assert c.connect(mosquitto.host, 10, port=mosquitto.port) == 0
    inbox = Inbox()
    assert c.subscribe("v31/t", inbox, 1) == 1
    c.publish("v31/t", "three-one", 1)
    c.publish("v31/t", "qos2", 2)
    assert inbox.wait(2) == 2
    assert inbox.payloads() == [b"three-one", b"qos2"]
    assert "as v31client (p1," in mosquitto.log_text()


def test_keepalive_pings_when_idle(mosquitto, make_client):
    c = make_client("pinger")
    c.connect(mosquitto.host, 1, port=mosquitto.port)
    time.sleep(3.5)
    assert c.connected()
    assert c._loop_running
    log = mosquitto.log_text()
    assert log.count("Received PINGREQ from pinger") >= 2, log
    assert "pinger has exceeded timeout" not in log
    # Still usable.
    inbox = Inbox()
    c.subscribe("ka/t", inbox, 1)
    c.publish("ka/t", "alive", 1)
    assert inbox.wait(1) == 1


# --------------------------------------------------------------------------
# failures of the link
# --------------------------------------------------------------------------


def test_broker_restart_loop_failure_recovers(mosquitto, make_client):
    calls = []
    rcs = []
    recovered = threading.Event()
    t_restart = []

    def hook(client):
        calls.append((time.monotonic(), client.last_error, client.connected()))
        deadline = time.monotonic() + 8
        rc = client.reconnect()
        while rc != 0 and time.monotonic() < deadline:
            time.sleep(0.1)
            rc = client.reconnect()
        rcs.append(rc)
        recovered.set()
        return RECOVERED

    inbox = Inbox()
    c = make_client("phoenix")
    c.connect(mosquitto.host, 2, port=mosquitto.port, loop_failure=hook)
    assert c.subscribe("ph/t", inbox, 1) == 1
    t_restart.append(time.monotonic())
    mosquitto.restart()
    assert recovered.wait(10), "loop_failure hook not called / did not finish"
    t_called, err, was_connected = calls[0]
    assert t_called - t_restart[0] < 3.0
    assert err is not None
    assert was_connected is False
    assert rcs[0] == 0
    assert c.connected() and c.get_rc() == 0
    assert c._loop_running
    # The subscription was renewed on the fresh (non-persistent) broker.
    other = connected_client(make_client, mosquitto, "ph-other")
    other.publish("ph/t", "after restart", 1)
    assert inbox.wait(1) == 1
    assert inbox.items == [("ph/t", b"after restart")]
    c.publish("ph/t", "own", 1)
    assert inbox.wait(2) == 2
    assert mosquitto.log_text().count("Received SUBSCRIBE from phoenix") == 2
    assert len(calls) == 1


def test_loop_failure_default_ends_loop(mosquitto, make_client):
    c = connected_client(make_client, mosquitto, "mortal")
    assert c._loop_running
    mosquitto.stop()
    assert wait_until(lambda: not c._loop_running, 3.0)
    assert not c.connected()
    assert c.last_error is not None
    with pytest.raises(MQTTError) as ei:
        c.publish("x/y", "z", 1)
    assert ei.value.code == ERR_NO_CONN


def test_loop_failure_break_loop(mosquitto, make_client):
    called = []

    def hook(client):
        called.append(client.last_error)
        return BREAK_LOOP

    c = make_client("breaker")
    c.connect(mosquitto.host, 10, port=mosquitto.port, loop_failure=hook)
    mosquitto.stop()
    assert wait_until(lambda: not c._loop_running, 3.0)
    assert len(called) == 1 and called[0] is not None
    assert not c.connected()


def test_keepalive_detects_silent_broker(mosquitto, make_client):
    # SIGSTOP the broker: the TCP link stays up but nothing answers. With keepalive=1
    # the missing PINGRESP must be noticed within ~1.5 s (+ a cycle).
    import signal

    failures = []
    c = make_client("silent")

    def hook(client):
        failures.append((time.monotonic(), client.last_error))
        return BREAK_LOOP

    c.connect(mosquitto.host, 1, port=mosquitto.port, loop_failure=hook)
    t0 = time.monotonic()
    os.kill(mosquitto.proc.pid, signal.SIGSTOP)
    try:
        assert wait_until(lambda: failures, 4.0), "no keepalive failure"
    finally:
        os.kill(mosquitto.proc.pid, signal.SIGCONT)
    assert failures[0][0] - t0 < 3.0
    err = failures[0][1]
    assert isinstance(err, MQTTError) and err.code == 16, repr(err)  # ERR_KEEPALIVE


# --------------------------------------------------------------------------
# without the background loop
# --------------------------------------------------------------------------


def test_start_loop_false_cycle(mosquitto, make_client):
    c = make_client("cycler")
    assert c.connect(mosquitto.host, 10, port=mosquitto.port, start_loop=False) == 0
    assert not c._loop_running
    inbox = Inbox()
    assert c.subscribe("cy/t", inbox, 1) == 1
    c.publish("cy/t", "cycled", 1)
    deadline = time.monotonic() + WAIT
    while not inbox.items and time.monotonic() < deadline:
        c.cycle(100)
    assert inbox.items == [("cy/t", b"cycled")]
    assert not c._loop_running
    assert c.connected()


def test_start_loop_false_keepalive_by_cycle(mosquitto, make_client):
    c = make_client("cycler-ka")
    c.connect(mosquitto.host, 1, port=mosquitto.port, start_loop=False)
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        c.cycle(100)
    assert c.connected()
    assert mosquitto.log_text().count("Received PINGREQ from cycler-ka") >= 2


# --------------------------------------------------------------------------
# subscribe results and argument errors
# --------------------------------------------------------------------------


def test_subscribe_returns_granted_qos(mosquitto, make_client):
    c = connected_client(make_client, mosquitto, "granted")
    noop = Inbox()
    assert c.subscribe("g/0", noop, 0) == 0
    assert c.subscribe("g/1", noop, 1) == 1
    assert c.subscribe("g/2", noop, 2) == 2
    assert c.subscribe("g/+/#", noop, 2) == 2


def test_subscribe_refused_raises():
    with DynsecMosquitto() as b:
        c = Client("refused", command_timeout=CMD_MS)
        try:
            c.connect(b.host, 10, port=b.port)
            inbox = Inbox()
            assert c.subscribe("ok/x", inbox, 1) == 1
            with pytest.raises(MQTTError) as ei:
                c.subscribe("secret/x", inbox, 1)
            assert ei.value.code == ERR_SUBSCRIBE_REFUSED
            # The refused filter is not kept; the link and the other one are fine.
            assert [h[0] for h in c._handlers] == [b"ok/x"]
            assert c.connected()
            c.publish("ok/x", "still", 1)
            assert inbox.wait(1) == 1
        finally:
            c.disconnect(timeout=1000)


def test_argument_and_state_errors(mosquitto, make_client):
    c = make_client("args")
    with pytest.raises(MQTTError) as ei:
        c.publish("a/b", "x", 0)
    assert ei.value.code == ERR_NO_CONN
    with pytest.raises(MQTTError) as ei:
        c.publish("a/b", "x", 1)
    assert ei.value.code == ERR_NO_CONN
    c.connect(mosquitto.host, 10, port=mosquitto.port)
    with pytest.raises(ValueError):
        c.publish("a/b", "x", 3)
    with pytest.raises(ValueError):
        c.subscribe("a/#/b", Inbox(), 0)
    assert c._handlers == []
    assert c.connected()
    c.disconnect(timeout=2000)
    with pytest.raises(MQTTError) as ei:
        c.publish("a/b", "x", 0)
    assert ei.value.code == ERR_NO_CONN


def test_raising_callback_does_not_kill_loop(mosquitto, make_client):
    logs = []
    c = connected_client(make_client, mosquitto, "fragile")
    c.on_log = lambda client, level, text: logs.append((level, text))
    inbox = Inbox()
    seen = []

    def fn(client, payload, topic):
        seen.append(payload)
        if payload == b"boom":
            raise RuntimeError("callback exploded")
        inbox(client, payload, topic)

    c.subscribe("cb/t", fn, 1)
    pub = connected_client(make_client, mosquitto, "cb-pub")
    pub.publish("cb/t", "boom", 1)
    pub.publish("cb/t", "next", 1)
    assert inbox.wait(1) == 1
    assert inbox.items == [("cb/t", b"next")]
    assert seen == [b"boom", b"next"]
    assert c._loop_running and c.connected()
    errs = [t for lvl, t in logs if lvl == 8]  # LOG_ERR
    assert any("callback exploded" in t for t in errs), logs
    assert isinstance(c.last_error, RuntimeError)


def test_quick_reconnect_after_disconnect_restarts_loop(mosquitto, make_client):
    # disconnect() without a timeout returns before the loop thread has ended;
    # an immediate connect() must still end up with a running loop.
    c = make_client("bouncer")
    inbox = Inbox()
    c.subscribe("bn/t", inbox, 1)
    for i in range(10):
        c.connect(mosquitto.host, 10, port=mosquitto.port)
        c.disconnect()
    c.connect(mosquitto.host, 10, port=mosquitto.port)
    time.sleep(0.3)
    assert c._loop_running, "no background loop after connect()"
    pub = connected_client(make_client, mosquitto, "bn-pub")
    pub.publish("bn/t", "hello", 1)
    assert inbox.wait(1, timeout=2) == 1


# --------------------------------------------------------------------------
# more behaviour against the real broker
# --------------------------------------------------------------------------


def test_empty_client_id_clean_session(mosquitto, make_client):
    c = make_client("")
    assert c.connect(mosquitto.host, 10, port=mosquitto.port) == 0
    inbox = Inbox()
    c.subscribe("anon/t", inbox, 2)
    c.publish("anon/t", "x", 2)
    assert inbox.wait(1) == 1


def test_connect_refused_port_fails_fast(make_client):
    from brokers import free_port

    c = make_client("nobroker")
    t0 = time.monotonic()
    with pytest.raises(OSError):
        c.connect("127.0.0.1", 10, port=free_port())
    assert time.monotonic() - t0 < 2.0
    assert c.get_rc() == -1
    assert not c.connected() and not c._loop_running


def test_connect_times_out_without_connack(mosquitto, make_client):
    # A frozen broker: the kernel accepts the TCP connection, no CONNACK ever comes.
    import signal

    c = make_client("waiter", command_timeout=1000)
    os.kill(mosquitto.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        with pytest.raises(MQTTError) as ei:
            c.connect(mosquitto.host, 10, port=mosquitto.port)
        elapsed = time.monotonic() - t0
    finally:
        os.kill(mosquitto.proc.pid, signal.SIGCONT)
    assert ei.value.code == 17  # ERR_TIMEOUT
    assert 0.8 < elapsed < 2.5
    assert c.get_rc() == -1
    assert not c.connected()


def test_waiting_publish_woken_by_dead_link(mosquitto, make_client):
    # A QoS 1 publish waits for its PUBACK; the broker freezes; the keepalive (1 s)
    # declares the link dead and the waiter must return then, not at command_timeout.
    import signal

    c = make_client("impatient", command_timeout=8000)
    c.connect(mosquitto.host, 1, port=mosquitto.port)
    os.kill(mosquitto.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        c.publish("wk/t", "lost", 1)  # accepted: returns when the link is found dead
        elapsed = time.monotonic() - t0
    finally:
        os.kill(mosquitto.proc.pid, signal.SIGCONT)
    assert elapsed < 3.5
    assert not c.connected() and c.pending() == 1
    assert isinstance(c.last_error, MQTTError) and c.last_error.code == 16


def test_reader_timeout_not_stolen_by_writer(mosquitto, make_client):
    # The loop thread is paused (by a profile hook) just as it enters its read; another
    # thread writes meanwhile; then the read goes on. It must still end after
    # cycle_timeout, so a dead link is found by the keepalive (~1.5 s), not after
    # command_timeout. (A port that set one shared socket timeout per call failed this:
    # the writer's timeout replaced the reader's.)
    import signal

    armed, paused, resume = threading.Event(), threading.Event(), threading.Event()

    def hook(frame, event, arg):
        if (
            event == "c_call"
            and armed.is_set()
            and getattr(arg, "__name__", "") in ("recv_into", "poll", "settimeout")
            and threading.current_thread().name == "umqtt_paho-loop"
        ):
            armed.clear()
            paused.set()
            resume.wait(2)

    c = make_client("race", command_timeout=4000)
    threading.setprofile(hook)  # for threads started from now on: the loop thread
    try:
        c.connect(mosquitto.host, 1, port=mosquitto.port)
    finally:
        threading.setprofile(None)
    os.kill(mosquitto.proc.pid, signal.SIGSTOP)
    try:
        armed.set()
        assert paused.wait(2), "the loop thread did not read"
        c.publish("race/t", "x", 0)  # a write from the application thread
        t0 = time.monotonic()
        resume.set()
        # keepalive 1 s: PINGREQ at most 0.5 s after the last packet, its PINGRESP
        # missing 1 s later -> dead within 1.5 s (+ one cycle) of now.
        dead = wait_until(lambda: not c.connected(), 2.0, step=0.01)
        elapsed = time.monotonic() - t0
    finally:
        os.kill(mosquitto.proc.pid, signal.SIGCONT)
    assert dead and elapsed < 2.0, "dead link not noticed within 2 s (keepalive 1 s)"
    assert isinstance(c.last_error, MQTTError) and c.last_error.code == 16


def test_connect_callbacks(mosquitto, make_client):
    events = []
    c = make_client("hooks")
    c.connect(
        mosquitto.host,
        10,
        port=mosquitto.port,
        breconnect_cb=lambda cl: events.append(("before", cl.connected())),
        aconnect_cb=lambda cl: events.append(("after", cl.connected())),
    )
    assert events == [("after", True)]
    c.disconnect(timeout=2000)
    assert c.reconnect() == 0
    assert events == [("after", True), ("before", False), ("after", True)]
    assert c.connected()


def test_large_payloads(mosquitto, make_client):
    big = bytes(range(256)) * 40  # 10240 bytes: larger than every default buffer
    roomy = make_client("roomy", max_packet_size=16384)
    roomy.connect(mosquitto.host, 10, port=mosquitto.port)
    small = connected_client(make_client, mosquitto, "small")  # max_packet_size 1024
    logs = []
    small.on_log = lambda cl, lvl, text: logs.append(text)
    got_big, got_small = Inbox(), Inbox()
    roomy.subscribe("big/#", got_big, 1)
    small.subscribe("big/#", got_small, 2)
    pub = connected_client(make_client, mosquitto, "bigpub")  # send_buffer 256
    pub.publish("big/a", big, 1)
    pub.publish("big/b", "tail", 2)
    assert got_big.wait(2) == 2
    assert got_big.items == [("big/a", big), ("big/b", b"tail")]
    # The small client dropped the big one, said so, and goes on.
    assert got_small.wait(1) == 1
    assert got_small.items == [("big/b", b"tail")]
    assert small.oversize_dropped == 1
    assert any("max_packet_size" in t for t in logs), logs
    assert small.connected() and small._loop_running


def test_unsubscribe_and_utf8_topics(mosquitto, make_client):
    c = connected_client(make_client, mosquitto, "unsub")
    inbox = Inbox()
    assert c.subscribe("grüße/+", inbox, 1) == 1
    c.publish("grüße/welt", "hallo", 1)
    assert inbox.wait(1) == 1
    assert inbox.items == [("grüße/welt", b"hallo")]
    c.unsubscribe("grüße/+")
    c.publish("grüße/welt", "again", 1)
    time.sleep(0.5)
    assert len(inbox.items) == 1
    assert c._handlers == []
    assert "Received UNSUBSCRIBE from unsub" in mosquitto.log_text()
