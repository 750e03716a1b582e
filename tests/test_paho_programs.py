"""paho-mqtt programs run unchanged through the real paho-mqtt and umqtt_paho.paho.

Each test is one small program in the idioms of paho's own examples, run once with the
paho-mqtt package from PyPI (2.x, given CallbackAPIVersion.VERSION1) and once with
umqtt_paho.paho, against a real mosquitto; both runs must see the same outcome
(issue 14). tests/test_paho_parity.py compares a longer scenario event by event.
"""

import socket
import threading
import time

import pytest

from livehelpers import WAIT, StubServer, wait_until
from test_paho_parity import new_client

IMPLS = ("paho-mqtt", "umqtt_paho")


class HoldConnack(StubServer):
    """A loopback TCP proxy to the broker that holds the broker's first bytes (the
    CONNACK) until release(): the window between CONNECT and CONNACK, made long."""

    def __init__(self, target_port):
        super().__init__()
        self.target_port = target_port
        self.released = threading.Event()
        self.connected = threading.Event()  # a client's CONNECT went up

    def __exit__(self, *exc):
        self.released.set()
        super().__exit__(*exc)

    def release(self):
        self.released.set()

    def handle(self, conn):
        self.forward(conn, self.target_port, up=lambda data: self.connected.set(),
                     down=lambda data: self.released.wait(WAIT))  # fmt: skip


def listener(broker, topic, got):
    """A plain paho-mqtt subscriber that appends (topic, payload) to got."""
    sub = new_client("paho-mqtt", "prog-listener-%d" % time.monotonic_ns())
    ready = threading.Event()
    sub.on_connect = lambda c, u, f, rc: c.subscribe(topic, 1)
    sub.on_subscribe = lambda c, u, mid, g: ready.set()
    sub.on_message = lambda c, u, m: got.append((m.topic, bytes(m.payload)))
    sub.connect(broker.host, broker.port, 30)
    sub.loop_start()
    assert ready.wait(WAIT)
    return sub


# ---- 1. QoS 0 on_publish comes after publish() has returned ---------------------------


def prog_qos0_mid_in_on_publish(impl, broker):
    """paho's idiom: remember the mid publish() returns; in on_publish, if it is that
    one, disconnect. The publish is made in on_connect (the loop thread)."""
    c = new_client(impl, "prog1-" + impl)
    state = {"sent_mid": None, "matched": [], "order": []}
    done = threading.Event()

    def on_connect(client, userdata, flags, rc):
        info = client.publish("prog1/" + impl, "reading", 0)
        state["order"].append("publish returned")
        state["sent_mid"] = info.mid

    def on_publish(client, userdata, mid):
        state["order"].append("on_publish")
        state["matched"].append(mid == state["sent_mid"])
        if mid == state["sent_mid"]:
            client.disconnect()
            done.set()

    c.on_connect = on_connect
    c.on_publish = on_publish
    c.connect(broker.host, broker.port, 30)
    c.loop_start()
    try:
        done.wait(WAIT)
    finally:
        c.disconnect()
        c.loop_stop()
    return state["matched"], state["order"]


def test_qos0_on_publish_after_publish_returned(mosquitto):
    out = {impl: prog_qos0_mid_in_on_publish(impl, mosquitto) for impl in IMPLS}
    assert out["paho-mqtt"] == ([True], ["publish returned", "on_publish"])
    assert out["umqtt_paho"] == out["paho-mqtt"]


def test_qos0_on_publish_without_a_loop_thread(mosquitto):
    # No loop thread, publish() outside any callback: paho writes the message in
    # publish() and calls on_publish there; so does umqtt_paho.
    for impl in IMPLS:
        c = new_client(impl, "prog1b-" + impl)
        calls = []
        c.on_publish = lambda cl, u, mid: calls.append(mid)
        c.connect(mosquitto.host, mosquitto.port, 30)
        assert wait_until(lambda: c.loop(0.05) == 0 and c.is_connected())
        info = c.publish("prog1b/" + impl, "x", 0)
        assert calls == [info.mid], impl
        c.disconnect()


def test_qos0_on_publish_from_a_loop_call_comes_from_the_next_one(mosquitto):
    # loop() in the application's thread, publish() from on_message: on_publish comes
    # from a later loop() call, after publish() returned.
    for impl in IMPLS:
        c = new_client(impl, "prog1c-" + impl)
        seen = []
        topic = "prog1c/" + impl

        def on_message(cl, u, m, seen=seen, topic=topic):
            info = cl.publish(topic + "/echo", "pong", 0)
            seen.append(("published", info.mid))

        c.on_message = on_message
        c.on_publish = lambda cl, u, mid, seen=seen: seen.append(("on_publish", mid))
        c.connect(mosquitto.host, mosquitto.port, 30)
        assert wait_until(lambda: c.loop(0.05) == 0 and c.is_connected())
        c.subscribe(topic, 0)
        c.loop(0.2)
        c.publish(topic, "ping", 1)
        assert wait_until(lambda: c.loop(0.05) == 0 and len(seen) >= 3), (impl, seen)
        echo = [e for e in seen if e[0] == "published"][0][1]
        assert seen.index(("published", echo)) < seen.index(("on_publish", echo)), impl
        c.disconnect()


# ---- 3. QoS 0 between connect_async() + loop_start() and the CONNACK -----------------


def prog_qos0_before_connack(impl, broker):
    got = []
    topic = "prog3/" + impl
    sub = listener(broker, topic, got)
    try:
        with HoldConnack(broker.port) as proxy:
            c = new_client(impl, "prog3-" + impl)
            connected = threading.Event()
            c.on_connect = lambda cl, u, f, rc: connected.set()
            c.connect_async("127.0.0.1", proxy.port, 30)
            c.loop_start()
            try:
                assert proxy.connected.wait(WAIT)  # CONNECT is up, CONNACK held
                time.sleep(0.1)
                rc = c.publish(topic, "early", 0).rc
                proxy.release()
                assert connected.wait(WAIT)
                wait_until(lambda: got, WAIT)
            finally:
                c.disconnect()
                c.loop_stop()
    finally:
        sub.disconnect()
        sub.loop_stop()
    return rc, got


def test_qos0_published_before_connack_is_sent_once_connected(mosquitto):
    out = {impl: prog_qos0_before_connack(impl, mosquitto) for impl in IMPLS}
    assert out["paho-mqtt"] == (0, [("prog3/paho-mqtt", b"early")])
    assert out["umqtt_paho"] == (0, [("prog3/umqtt_paho", b"early")])


def test_qos0_held_while_connecting_is_bounded(mosquitto):
    # umqtt_paho holds at most 32 such messages; then MQTT_ERR_QUEUE_SIZE (15).
    from umqtt_paho import paho

    with HoldConnack(mosquitto.port) as proxy:
        c = paho.Client("prog3b")
        c.connect_async("127.0.0.1", proxy.port, 30)
        c.loop_start()
        try:
            assert proxy.connected.wait(WAIT)
            time.sleep(0.1)
            rcs = [c.publish("prog3b/t", b"%d" % k, 0).rc for k in range(40)]
            assert rcs == [0] * 32 + [15] * 8
        finally:
            proxy.release()
            c.disconnect()
            c.loop_stop()


# ---- 5. store and forward through the layer -------------------------------------------


@pytest.mark.parametrize("kind", ["outbox", "store"])
def test_outbox_and_store_pass_through(mosquitto, tmp_path, kind):
    from umqtt_paho import paho
    from umqtt_paho.flashlog import FlashLog
    from umqtt_paho.outbox import Outbox

    extra = {"outbox": Outbox(4096)} if kind == "outbox" else {
        "store": FlashLog(str(tmp_path / "log"))
    }
    got = []
    topic = "prog5/" + kind
    sub = listener(mosquitto, topic, got)
    c = paho.Client("prog5-" + kind, clean_session=False, **extra)
    try:
        core = c._make_core()
        assert getattr(core, kind) is extra[kind]
        # Offline: the QoS 1 messages wait in the outbox (or on flash), in order.
        for k in range(5):
            assert c.publish(topic, b"m%d" % k, 1).rc == 4  # MQTT_ERR_NO_CONN, as paho
        c.connect(mosquitto.host, mosquitto.port, 30)
        c.loop_start()
        assert wait_until(lambda: len(got) == 5), got
        assert [p for _, p in got] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    finally:
        c.disconnect()
        c.loop_stop()
        sub.disconnect()
        sub.loop_stop()


# ---- 2. the broker closes the link before CONNACK -------------------------------------


class CloseAfterConnect(StubServer):
    """A TCP server that reads a CONNECT and closes the connection (no CONNACK), for
    every connection, counting them (accepted)."""

    def handle(self, conn):
        conn.settimeout(WAIT)
        try:
            conn.recv(1024)  # the CONNECT
        except OSError:
            pass
        conn.close()


def prog_closed_before_connack(impl):
    """connect(); loop_start(); failures handled in on_disconnect, as paho's examples
    do. Returns connect()'s result, the first on_disconnect rc, whether the loop tried
    again, and on_connect calls."""
    with CloseAfterConnect() as server:
        c = new_client(impl, "prog2-" + impl)
        c.reconnect_delay_set(1, 1)
        events = []
        gone = threading.Event()

        def on_disconnect(client, userdata, rc):
            events.append(("disconnect", int(rc)))
            gone.set()

        c.on_disconnect = on_disconnect
        c.on_connect = lambda cl, u, f, rc: events.append(("connect", int(rc)))
        try:
            rc = c.connect("127.0.0.1", server.port, 30)
        except Exception as e:  # a program that handles failures in callbacks dies here
            return ("raised", type(e).__name__)
        c.loop_start()
        try:
            assert gone.wait(WAIT), impl
            retried = wait_until(lambda: server.accepted >= 2, 3.0)
        finally:
            c.disconnect()
            c.loop_stop()
        return rc, events[0], retried, [e for e in events if e[0] == "connect"]


def test_connect_returns_and_reports_a_close_before_connack_in_callbacks():
    out = {impl: prog_closed_before_connack(impl) for impl in IMPLS}
    assert out["paho-mqtt"] == (0, ("disconnect", 7), True, [])
    assert out["umqtt_paho"] == out["paho-mqtt"]


def test_connect_still_raises_when_the_link_cannot_be_made():
    # Nothing listens: both raise from connect() (ConnectionRefusedError, an OSError).
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    for impl in IMPLS:
        with pytest.raises(OSError):
            new_client(impl, "prog2b-" + impl).connect("127.0.0.1", port, 30)


# ---- 4. a PUBREC'd QoS 2 message after a reconnect ------------------------------------


def prog_pubrec_then_cut(impl, broker, clean):
    """Publish one QoS 2 message; the link is cut when the client's PUBREL would go
    out (the broker has sent PUBREC); the loop reconnects. Returns what the listener
    got and what the broker received from the client after the reconnect."""
    from faultproxy import UP, FaultProxy

    got = []
    topic = "prog4/%s/%d" % (impl, clean)
    cid = "prog4-%s-%d" % (impl, clean)
    sub = listener(broker, topic, got)
    try:
        with FaultProxy(broker.port, armed=False) as proxy:
            proxy.cut_when(UP, 6, "cut_before")  # PUBREL: never reaches the broker
            c = new_client(impl, cid, clean_session=clean)
            c.reconnect_delay_set(1, 1)
            c.connect("127.0.0.1", proxy.port, 30)
            c.loop_start()
            try:
                c.publish(topic, "once", 2)
                assert wait_until(lambda: proxy.cuts >= 1), impl
                assert wait_until(lambda: proxy.connections >= 2), impl
                done = "Sending PUBCOMP to %s" % cid
                assert wait_until(lambda: broker.log_text().count(done) >= 1), impl
                time.sleep(0.3)
            finally:
                c.disconnect()
                c.loop_stop()
    finally:
        sub.disconnect()
        sub.loop_stop()
    lines = [ln.split(": ", 1)[1] for ln in broker.log_text().splitlines() if cid in ln]
    after = lines[[i for i, ln in enumerate(lines) if ln.startswith("New client")][1] :]
    sent = [ln.split(" from ")[0] + ln[ln.find(" (") : ln.find(",")] for ln in after
            if ln.startswith("Received PUB")]  # fmt: skip
    return got, sent


@pytest.mark.parametrize("clean", [True, False], ids=["no session", "session kept"])
def test_pubrecd_qos2_after_reconnect(mosquitto, clean):
    # Both paho-mqtt (1.6.1 and 2.2.0 were checked) and umqtt_paho publish the message
    # again (DUP) when the CONNACK says the broker kept no session, and send PUBREL
    # when it did [MQTT-4.4.0-1]. mosquitto hands a QoS 2 message on at PUBREL, so a
    # PUBREL into a fresh session would lose it: once, both ways, is right.
    out = {impl: prog_pubrec_then_cut(impl, mosquitto, clean) for impl in IMPLS}
    for impl in IMPLS:
        got, sent = out[impl]
        assert [p for _, p in got] == [b"once"], (impl, got)
        if clean:
            assert sent == ["Received PUBLISH (d1", "Received PUBREL (Mid: 1"], (impl, sent)
        else:
            assert sent == ["Received PUBREL (Mid: 1"], (impl, sent)
