"""umqtt_paho.Client against a second, independent broker: amqtt (pure Python).

The same client that is tested against mosquitto in test_live.py must work with
another implementation's timing and quirks: connect, subscribe at every QoS, round
trips at every QoS, retained messages, unsubscribe, keepalive and the will.
"""

import socket
import time

import pytest

from umqtt_paho import Client, MQTTError
from umqtt_paho.errors import ERR_NO_CONN

pytestmark = pytest.mark.timeout(30)

from livehelpers import CMD_MS, WAIT, Inbox, wait_until  # noqa: E402,F401


@pytest.fixture
def make_client(amqtt_broker):
    """Connected-client factory for the amqtt broker; all disconnected at teardown."""
    made = []

    def make(client_id, keepalive=10, connect=True, **kw):
        kw.setdefault("command_timeout", CMD_MS)
        c = Client(client_id, **kw)
        made.append(c)
        if connect:
            assert c.connect(amqtt_broker.host, keepalive, port=amqtt_broker.port) == 0
        return c

    yield make
    for c in made:
        try:
            c.disconnect(timeout=1000)
        except Exception:
            pass


def test_connect_and_disconnect(amqtt_broker, make_client):
    c = make_client("ia-plain", connect=False)
    assert c.connect(amqtt_broker.host, 10, port=amqtt_broker.port) == 0
    assert c.get_rc() == 0
    assert c.connected()
    assert c.session_present is False
    assert c._loop_running
    c.disconnect(timeout=2000)
    assert not c._loop_running
    assert not c.connected()
    with pytest.raises(MQTTError) as ei:
        c.publish("x/y", "z", 0)
    assert ei.value.code == ERR_NO_CONN
    # And again, with the same object.
    assert c.reconnect() == 0
    assert c.connected()


def test_subscribe_granted_qos(make_client):
    c = make_client("ia-granted")
    inbox = Inbox()
    assert c.subscribe("ia/g0", inbox, 0) == 0
    assert c.subscribe("ia/g1", inbox, 1) == 1
    assert c.subscribe("ia/g2", inbox, 2) == 2
    assert c.subscribe("ia/+/w/#", inbox, 2) == 2


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_round_trip_100(make_client, qos):
    sub = make_client("ia-sub-%d" % qos)
    pub = make_client("ia-pub-%d" % qos)
    inbox = Inbox()
    topic = "ia/rt/%d" % qos
    assert sub.subscribe(topic, inbox, qos) == qos
    t0 = time.monotonic()
    for i in range(100):
        pub.publish(topic, "n%d" % i, qos)
    n = inbox.wait(100, timeout=8, client=sub)
    elapsed = time.monotonic() - t0
    print("\namqtt: 100 QoS %d messages round trip in %.2f s" % (qos, elapsed))
    assert n == 100, "got %d of 100; sub.last_error=%r" % (n, sub.last_error)
    time.sleep(0.2)  # duplicates, if any, would arrive now
    assert inbox.payloads() == [b"n%d" % i for i in range(100)]
    assert all(t == topic for t, _ in inbox.items)


def test_mixed_qos_downgrade(make_client):
    # Delivered QoS is min(published, granted): QoS 2 published to a QoS 0
    # subscription and QoS 0 to a QoS 2 subscription both arrive once.
    s0 = make_client("ia-mix0")
    s2 = make_client("ia-mix2")
    got0, got2 = Inbox(), Inbox()
    s0.subscribe("ia/mix", got0, 0)
    s2.subscribe("ia/mix", got2, 2)
    pub = make_client("ia-mixpub")
    pub.publish("ia/mix", "hi2", 2)
    pub.publish("ia/mix", "hi0", 0)
    pub.publish("ia/mix", "hi1", 1)
    assert got0.wait(3) == 3
    assert got2.wait(3) == 3
    time.sleep(0.2)
    assert got0.payloads() == [b"hi2", b"hi0", b"hi1"]
    assert got2.payloads() == [b"hi2", b"hi0", b"hi1"]


def test_retained_message(make_client):
    pub = make_client("ia-retpub")
    pub.publish("ia/ret/a", "kept", 1, retain=True)
    pub.publish("ia/ret/b", "not kept", 1, retain=False)
    sub = make_client("ia-retsub")
    inbox = Inbox()
    sub.subscribe("ia/ret/#", inbox, 1)
    assert inbox.wait(1) == 1
    time.sleep(0.3)
    assert inbox.items == [("ia/ret/a", b"kept")]


def test_unsubscribe_stops_delivery(make_client):
    sub = make_client("ia-unsub")
    pub = make_client("ia-unsubpub")
    inbox = Inbox()
    sub.subscribe("ia/u/+", inbox, 1)
    pub.publish("ia/u/1", "before", 1)
    assert inbox.wait(1) == 1
    sub.unsubscribe("ia/u/+")
    assert sub._handlers == []
    pub.publish("ia/u/1", "after", 1)
    time.sleep(0.5)
    assert inbox.payloads() == [b"before"]
    assert sub.connected() and sub.unhandled == 0


def test_keepalive_against_amqtt(make_client):
    c = make_client("ia-ka", keepalive=1)
    time.sleep(2.6)
    assert c.connected()
    assert c._loop_running
    inbox = Inbox()
    c.subscribe("ia/ka", inbox, 1)
    c.publish("ia/ka", "alive", 1)
    assert inbox.wait(1) == 1


def test_will_against_amqtt(make_client):
    watcher = make_client("ia-watch")
    inbox = Inbox()
    watcher.subscribe("ia/status", inbox, 1)
    a = make_client("ia-dev", connect=False)
    a.set_will("ia/status", "offline", 1, False)
    port = watcher._target[1]
    a.connect(watcher._target[0], 10, port=port)
    a.publish("ia/status", "online", 1)
    assert inbox.wait(1) == 1
    a._net.sock.shutdown(socket.SHUT_RDWR)  # the link dies: no DISCONNECT
    assert inbox.wait(2) == 2
    assert inbox.payloads() == [b"online", b"offline"]
    assert wait_until(lambda: not a._loop_running)


def test_start_loop_false_against_amqtt(amqtt_broker, make_client):
    c = make_client("ia-cycle", connect=False)
    c.connect(amqtt_broker.host, 10, port=amqtt_broker.port, start_loop=False)
    inbox = Inbox()
    assert c.subscribe("ia/cy", inbox, 2) == 2
    c.publish("ia/cy", "cycled", 2)
    deadline = time.monotonic() + WAIT
    while not inbox.items and time.monotonic() < deadline:
        c.cycle(100)
    assert inbox.items == [("ia/cy", b"cycled")]
