# Tests of umqtt_paho.testing, the host-testing helper users test their firmware with.
#
# The helper must behave as a real MQTT 3.1.1 broker does on every point a firmware test
# relies on (acks, QoS 2, retained messages, wills, persistent sessions, keepalive), and
# its fake clock must be exact, or a user's green test would prove nothing.
#
# Runs on CPython (pytest collects it) and inside the 32-bit MicroPython VM on the .mpy
# build (tests/test_vm.py): plain test functions and asserts, no pytest, no f-strings.
# The last test (HOST_ONLY: it starts a process) runs the helper's source on
# MicroPython's unix port, since it is part of the library.

import os

from umqtt_paho import Client, MQTTError, RECOVERED
from umqtt_paho.errors import ERR_CONN_REFUSED, ERR_KEEPALIVE, ERR_SUBSCRIBE_REFUSED, ERR_TIMEOUT
from umqtt_paho.reconnect import ReconnectPolicy
from umqtt_paho.testing import Broker, FakeClock, FakePort, Message

from fakenet import mqtt_error, raises

try:
    REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
except AttributeError:  # MicroPython: no os.path (the host-only tests need REPO)
    REPO = None

HOST_ONLY = ("test_the_helper_runs_on_micropython",)  # not run in the VM (tests/test_vm.py)

try:
    from errno import ECONNRESET
except ImportError:  # pragma: no cover
    ECONNRESET = 104


def connected(port=None, client_id="dev1", keepalive=0, **kw):
    port = port or FakePort()
    c = Client(client_id, port=port, **kw)
    c.connect("broker.test", keepalive, start_loop=False)
    return c, port


def drain(client, ms=100):
    """Cycle until nothing more arrives."""
    while client.cycle(ms) > 0:
        pass


# ---- connecting ------------------------------------------------------------------------


def test_connect_is_recorded_with_its_fields():
    port = FakePort()
    c = Client("dev1", clean_session=False, port=port)
    c.set_will("dev1/status", "offline", qos=1, retain=True)
    c.set_username_pw("alice", "secret")
    c.connect("broker.test", 30, port=8883, start_loop=False)
    assert c.connected() and port.broker.connected("dev1")
    cid, name, info = port.broker.packets[0]
    assert (cid, name) == ("dev1", "CONNECT")
    assert info["clean_session"] is False and info["keepalive"] == 30
    assert (info["username"], info["password"]) == ("alice", b"secret")
    will = info["will"]
    assert (will.topic, will.payload, will.qos, will.retain) == (
        "dev1/status",
        b"offline",
        1,
        True,
    )
    assert port.link.open_args[:2] == ("broker.test", 8883)
    assert port.broker.errors == []


def test_refused_connack_then_the_broker_closes():
    for rc in (1, 2, 3, 4, 5):
        port = FakePort()
        port.broker.connack_rc = rc
        c = Client("dev1", port=port)
        mqtt_error(ERR_CONN_REFUSED, c.connect, "broker.test", 0, start_loop=False)
        assert c.get_rc() == rc, rc
        assert not port.broker.connected() and port.link.state == "closed"


def test_users_check_credentials():
    port = FakePort()
    port.broker.users = {"alice": "secret"}
    c = Client("dev1", port=port)
    c.set_username_pw("alice", "wrong")
    raises(MQTTError, c.connect, "broker.test", 0, start_loop=False)
    assert c.get_rc() == 4
    c.set_username_pw("alice", "secret")
    c.connect("broker.test", 0, start_loop=False)
    assert c.get_rc() == 0


def test_unreachable_broker_raises_oserror_after_the_connect_delay():
    port = FakePort()
    port.broker.unreachable = True
    port.broker.connect_delay_ms = 3000
    c = Client("dev1", port=port, command_timeout=10000)
    e = raises(OSError, c.connect, "broker.test", 0, start_loop=False)
    assert e.args[0] == 113
    assert port.clock.now == 3000  # the failed TCP connect took its time
    port.broker.unreachable = False
    assert c.reconnect() == 0 and c.connected()


# ---- publishing ------------------------------------------------------------------------


def test_publish_at_each_qos_is_received_and_acknowledged():
    c, port = connected()
    c.publish("dev1/a", b"zero", qos=0)
    c.publish("dev1/b", b"one", qos=1, retain=True)
    c.publish("dev1/c", b"two", qos=2)
    b = port.broker
    assert [(m.topic, m.payload, m.qos) for m in b.received] == [
        ("dev1/a", b"zero", 0),
        ("dev1/b", b"one", 1),
        ("dev1/c", b"two", 2),
    ]
    assert b.received[1].retain and b.received[1].sender == "dev1"
    assert b.types() == ["CONNECT", "PUBLISH", "PUBLISH", "PUBLISH", "PUBREL"]
    assert c.pending() == 0 and b.errors == []
    assert b.retained == {"dev1/b": b"one"}
    assert b.payloads("dev1/+") == [b"zero", b"one", b"two"]


def test_unanswered_publish_stays_pending_until_the_broker_acks():
    c, port = connected(command_timeout=2000)
    port.broker.puback = False
    c.publish("dev1/t", b"x", qos=1, wait=False)
    assert c.pending() == 1
    assert c.flush(1500) is False and port.clock.now >= 1500
    port.broker.puback = True
    port.broker.cut()  # the resend after the reconnect is acked
    raises(OSError, c.cycle)
    assert c.reconnect() == 0
    assert c.flush() is True
    first, resent = port.broker.received
    assert resent.dup and resent.duplicate  # the first copy was never acked, but arrived
    assert port.broker.payloads() == [first.payload]


def test_a_resend_of_a_message_that_never_arrived_is_not_a_duplicate():
    c, port = connected()
    port.broker.cut()  # the client has not noticed yet: its next write fails
    c.publish("dev1/t", b"x", qos=1)  # accepted, not delivered: resent on reconnect
    assert c.pending() == 1 and port.broker.received == []
    assert c.reconnect() == 0 and c.flush()
    (m,) = port.broker.received
    assert m.dup and not m.duplicate


def test_messages_record_the_fake_time_they_arrived():
    c, port = connected()
    port.clock.advance(1234)
    c.publish("dev1/t", b"x", qos=1)
    assert port.broker.received[0].at == 1234
    assert Message("t", b'{"a": 1}').json() == {"a": 1}


# ---- subscribing and delivery ----------------------------------------------------------


def test_injected_messages_reach_the_subscription_at_the_granted_qos():
    c, port = connected()
    got = []
    assert c.subscribe("dev1/cmd/#", lambda cl, p, t: got.append((t, p, cl.last_qos)), qos=1) == 1
    assert port.broker.subscriptions("dev1") == {"dev1/cmd/#": 1}
    assert port.broker.publish("dev1/cmd/led", b"on", qos=2) == 1
    assert port.broker.publish("other/topic", b"x", qos=1) == 0
    drain(c)
    assert got == [("dev1/cmd/led", b"on", 1)]  # QoS 2 downgraded to the granted 1
    assert port.broker.types()[-1] == "PUBACK"


def test_qos2_to_the_client_is_delivered_exactly_once():
    c, port = connected()
    got = []
    c.subscribe("dev1/cmd", lambda cl, p, t: got.append(p), qos=2)
    port.broker.publish("dev1/cmd", b"once", qos=2)
    drain(c)
    assert got == [b"once"]
    assert port.broker.types()[-2:] == ["PUBREC", "PUBCOMP"]
    assert port.broker.sessions["dev1"].out == {}


def test_refused_subscription():
    c, port = connected()
    port.broker.grant = 0x80
    mqtt_error(ERR_SUBSCRIBE_REFUSED, c.subscribe, "dev1/secret", lambda *a: None)


def test_two_clients_on_one_broker():
    device, dport = connected(client_id="device")
    console, cport = connected(FakePort(broker=dport.broker), client_id="console")
    assert cport.clock is dport.clock
    seen = []
    console.subscribe("devices/#", lambda cl, p, t: seen.append((t, p)))
    device.publish("devices/device/temp", b"21.5", qos=1)
    drain(console)
    assert seen == [("devices/device/temp", b"21.5")]


def test_retained_messages_go_to_new_subscriptions_with_the_retain_flag():
    c, port = connected()
    port.broker.publish("dev1/config", b"v1", qos=1, retain=True)
    got = []
    c.subscribe("dev1/#", lambda cl, p, t: got.append((t, p, cl.last_retain)), qos=1)
    drain(c)
    assert got == [("dev1/config", b"v1", 1)]
    port.broker.publish("dev1/config", b"", retain=True)  # empty: deletes it
    assert port.broker.retained == {}
    drain(c)
    assert got[-1] == ("dev1/config", b"", 0)  # live delivery: retain flag clear


def test_unsubscribe():
    c, port = connected()
    c.subscribe("dev1/x", lambda *a: None)
    c.unsubscribe("dev1/x")
    assert port.broker.subscriptions("dev1") == {}
    assert port.broker.types()[-1] == "UNSUBSCRIBE"


# ---- links that fail --------------------------------------------------------------------


def test_cut_resets_the_link_and_publishes_the_will():
    c, port = connected()
    c.set_will("dev1/status", "offline", qos=1, retain=True)
    assert c.reconnect() == 0  # the will goes in the next CONNECT
    port.broker.cut()
    e = raises(OSError, c.cycle)
    assert e.args[0] == ECONNRESET
    assert port.broker.retained == {"dev1/status": b"offline"}
    assert not port.broker.connected("dev1")


def test_disconnect_discards_the_will_and_keeps_a_persistent_session():
    c, port = connected(clean_session=False)
    c.set_will("dev1/status", "offline", qos=1, retain=True)
    c.subscribe("dev1/cmd", lambda *a: None, qos=1)
    c.disconnect()
    assert port.broker.retained == {}
    assert port.broker.types()[-1] == "DISCONNECT"
    # While the device is away, QoS 1 messages for it are queued...
    port.broker.publish("dev1/cmd", b"while away", qos=1)
    port.broker.publish("dev1/cmd", b"qos0 is dropped", qos=0)
    got = []
    c2 = Client("dev1", clean_session=False, port=port)
    c2.subscribe("dev1/cmd", lambda cl, p, t: got.append(p), qos=1)
    c2.connect("broker.test", 0, start_loop=False)
    assert c2.session_present
    drain(c2)
    assert got == [b"while away"]  # ...and delivered after CONNACK


def test_clean_session_starts_empty():
    c, port = connected(clean_session=False)
    c.subscribe("dev1/cmd", lambda *a: None, qos=1)
    c.disconnect()
    c2, _ = connected(port, clean_session=True)
    assert not c2.session_present
    assert port.broker.subscriptions("dev1") == {}


def test_a_second_connection_with_the_same_id_takes_the_session_over():
    first, port = connected()
    second, _ = connected(port)
    raises(OSError, first.cycle)
    assert second.connected() and port.broker.connected("dev1")


def test_keepalive_ping_and_a_stalled_link():
    c, port = connected(keepalive=10, cycle_timeout=1000)
    c.set_will("dev1/status", "offline", retain=True)
    assert c.reconnect() == 0
    for _ in range(5):
        c.cycle()
    assert port.clock.now == 5000 and port.broker.types()[-1] == "PINGREQ"  # keepalive / 2
    assert c.cycle() == 13  # PINGRESP, at once
    port.broker.stall()

    def run():
        for _ in range(30):
            c.cycle()

    mqtt_error(ERR_KEEPALIVE, run)  # the client finds the dead link...
    assert port.clock.now <= 5000 + 15000 + 1000
    # ...and the broker drops the silent client after 1.5 x keepalive: the will goes out
    assert port.broker.retained == {"dev1/status": b"offline"}


def test_reconnect_policy_on_the_fake_clock():
    port = FakePort()
    c = Client("dev1", port=port, cycle_timeout=500)
    policy = ReconnectPolicy(base_ms=1000, cap_ms=8000, blocking=False)
    c.connect("broker.test", 0, loop_failure=policy, start_loop=False)
    port.broker.cut()
    port.broker.unreachable = True
    for _ in range(40):  # 20 s of cycles while the broker is unreachable
        assert c.cycle() == -1 or not c.connected()
    assert policy.attempts >= 3 and not c.connected()
    port.broker.unreachable = False
    for _ in range(40):
        if c.cycle() == RECOVERED or c.connected():
            break
    assert c.connected() and port.broker.errors == []


def test_a_client_that_breaks_the_protocol_is_recorded_and_cut():
    port = FakePort()
    link = port.Network()
    link.open("broker.test", 1883, None, 1000)
    link.write(b"\xc0\x00", 2, 1000)  # PINGREQ before CONNECT
    assert port.broker.errors and "CONNECT" in port.broker.errors[0]
    raises(OSError, link.read_into, memoryview(bytearray(4)), 4, 100)


def test_scripted_switches_leave_out_the_answer_not_the_effect():
    c, port = connected(command_timeout=1000)
    b = port.broker
    c.subscribe("dev1/x", lambda *a: None)
    b.unsuback = False
    t0 = port.clock.now
    mqtt_error(ERR_TIMEOUT, c.unsubscribe, "dev1/x")  # no UNSUBACK came
    assert port.clock.now - t0 >= 1000 and b.subscriptions("dev1") == {}  # yet undone
    # forward = False: recorded and acked, neither retained nor sent on
    console, _ = connected(FakePort(broker=b), client_id="console")
    seen = []
    console.subscribe("dev1/#", lambda cl, p, t: seen.append(p))
    b.forward = False
    c.publish("dev1/t", b"kept here", qos=1, retain=True)
    drain(console)
    assert seen == [] and b.retained == {} and b.payloads("dev1/t") == [b"kept here"]
    b.forward = True
    c.publish("dev1/t", b"sent on", qos=1)
    drain(console)
    assert seen == [b"sent on"]


def test_session_present_overrides_what_connack_says():
    port = FakePort()
    b = port.broker
    b.session_present = True  # a lie: there is no session yet
    c, _ = connected(port, clean_session=False)
    assert c.session_present and b.errors == []
    c.subscribe("dev1/cmd", lambda *a: None, qos=1)
    c.disconnect()
    b.session_present = False  # as a broker restarted without persistence
    c2, _ = connected(port, clean_session=False)
    assert not c2.session_present and b.subscriptions("dev1") == {}  # the session is gone
    b.session_present = None  # the truth again
    c2.subscribe("dev1/cmd", lambda *a: None, qos=1)
    c2.disconnect()
    c3, _ = connected(port, clean_session=False)
    assert c3.session_present and b.subscriptions("dev1") == {"dev1/cmd": 1}


MALFORMED = (
    (b"\x82\x08\x00\x01\x00\x03a#b\x00", "MQTT-4.7.1-2"),  # '#' not last
    (b"\x82\x06\x00\x01\x00\x01a\x03", "MQTT-3.8.3-4"),  # QoS 3 asked
    (b"\x80\x06\x00\x01\x00\x01a\x00", "MQTT-2.2.2-1"),  # SUBSCRIBE flags 0000
    (b"\x30\x04\x00\x02\xc0\x80", "MQTT-1.5.3-1"),  # overlong UTF-8 topic
    (b"\x62\x03\x00\x01\x00", "remaining length"),  # PUBREL of 3 bytes
    (b"\xc0\xff\xff\xff\xff\x01", "longer than 4 bytes"),
)


def test_a_malformed_packet_from_the_client_is_caught_by_the_codec():
    # The broker decodes with servercodec, as strict as the codec's own tests.
    for packet, rule in MALFORMED:
        c, port = connected()
        port.link.write(packet, len(packet), 1000)
        errors = port.broker.errors
        assert len(errors) == 1 and rule in errors[0], (packet, errors)
        assert port.link.state == "cut" and not port.broker.connected("dev1")


# ---- the clock --------------------------------------------------------------------------


def test_clock_moves_only_when_something_waits():
    clock = FakeClock()
    port = FakePort(clock=clock)
    assert port.broker.clock is clock
    port.sleep_ms(250)
    clock.sleep(1.5)
    clock.advance(-5)
    assert clock.now == 1750 and port.ticks_ms() == 1750
    assert port.ticks_diff(port.ticks_add(100, 50), 100) == 50


def test_clock_can_wrap_like_micropython_ticks():
    clock = FakeClock(start_ms=(1 << 30) - 10, wrap=True)
    t0 = clock.ticks_ms()
    clock.advance(30)
    assert clock.ticks_ms() == 20  # wrapped
    assert clock.ticks_diff(clock.ticks_ms(), t0) == 30
    assert clock.ticks_diff(t0, clock.ticks_ms()) == -30
    assert clock.ticks_add(t0, 30) == 20


def test_a_client_works_across_the_ticks_wrap():
    port = FakePort(clock=FakeClock(start_ms=(1 << 30) - 3000, wrap=True))
    c, _ = connected(port, keepalive=4, cycle_timeout=1000)
    for _ in range(10):
        c.cycle()
    assert c.connected() and port.broker.types().count("PINGREQ") >= 3


def test_broker_alone():
    b = Broker()
    assert b.publish("t", b"x", retain=True) == 0 and b.retained == {"t": b"x"}
    raises(ValueError, b.publish, "t", b"x", qos=3)


# ---- on MicroPython -------------------------------------------------------------------

MP_SCRIPT = r"""
import json
from umqtt_paho import Client
from umqtt_paho.testing import FakePort, FakeClock
port = FakePort(clock=FakeClock(start_ms=(1 << 30) - 2000, wrap=True))
got = []
c = Client("dev1", clean_session=False, port=port)
c.set_will("dev1/status", "offline", qos=1, retain=True)
c.subscribe("dev1/cmd/#", lambda cl, p, t: got.append([t, p.decode()]), qos=2)
c.connect("broker.test", 10, start_loop=False)
c.publish("dev1/temp", b"21.5", qos=1)
c.publish("dev1/q2", b"x", qos=2)
port.broker.publish("dev1/cmd/led", b"on", qos=2)
while c.cycle(100) > 0:
    pass
for i in range(12):
    c.cycle(1000)
port.broker.cut()
try:
    c.cycle()
except OSError as e:
    cut = e.args[0]
print(json.dumps({
    "received": [[m.topic, m.payload.decode(), m.qos] for m in port.broker.received],
    "got": got, "cut_errno": cut, "retained": port.broker.retained["dev1/status"].decode(),
    "pings": port.broker.types().count("PINGREQ"), "errors": port.broker.errors,
    "ticks": port.ticks_ms(),
}))
"""


def micropython_binary():
    import subprocess

    import pytest

    script = os.path.join(REPO, "tools", "build_mp_unix.sh")
    try:
        out = subprocess.run(["bash", script], capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.fail("no MicroPython unix port: %s" % e)
    path = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    if out.returncode != 0 or not os.access(path, os.X_OK):
        pytest.fail("no MicroPython unix port (tools/build_mp_unix.sh): %s" % out.stderr[-500:])
    return path


def mp_lib(root):
    """umqtt_paho as on a board: ports/ inside it."""
    import shutil

    pkg = os.path.join(root, "umqtt_paho")
    os.makedirs(os.path.join(pkg, "ports"))
    for name in os.listdir(os.path.join(REPO, "umqtt_paho")):
        if name.endswith(".py"):
            shutil.copy(os.path.join(REPO, "umqtt_paho", name), pkg)
    for name in os.listdir(os.path.join(REPO, "ports")):
        if name.endswith(".py"):
            shutil.copy(os.path.join(REPO, "ports", name), os.path.join(pkg, "ports"))
    return root


def test_the_helper_runs_on_micropython(tmp_path):
    import errno
    import json
    import subprocess

    binary = micropython_binary()
    lib = mp_lib(str(tmp_path))
    script = tmp_path / "scenario.py"
    script.write_text(MP_SCRIPT)
    env = dict(os.environ, MICROPYPATH=lib)
    p = subprocess.run([binary, str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr + p.stdout
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["received"] == [["dev1/temp", "21.5", 1], ["dev1/q2", "x", 2]]
    assert r["got"] == [["dev1/cmd/led", "on"]]
    assert r["cut_errno"] == errno.ECONNRESET and r["retained"] == "offline"
    assert r["pings"] >= 2 and r["errors"] == []
    assert r["ticks"] < 20000  # the clock wrapped past 2**30
