# The Client inside the MicroPython VM, against an in-memory broker that speaks MQTT
# (tests/vm/vmport.py), with a fake clock: connect, publish at QoS 0/1/2, subscribe and
# inbound delivery at QoS 0/1/2, keepalive, and a broker that sends garbage.
#
# Runs in MicroPython (tests/test_vm.py loads the .mpy build into the VM) and on CPython
# (pytest collects it as it is): plain test functions and asserts, no pytest import, no
# f-strings.

from umqtt_paho import BREAK_LOOP, Client, MQTTError
from umqtt_paho import errors as E
from umqtt_paho import servercodec as pk

from vmport import VMPort, connected_client

# ---- helpers --------------------------------------------------------------------------


def raises(exc_type, fn, *args, **kw):
    """Call fn; return the exc_type it raises, fail if it raises nothing."""
    try:
        fn(*args, **kw)
    except exc_type as e:
        return e
    raise AssertionError("%r did not raise %s" % (fn, exc_type.__name__))


def mqtt_error(code, fn, *args, **kw):
    e = raises(MQTTError, fn, *args, **kw)
    assert e.code == code, "code %r, expected %r: %s" % (e.code, code, e)
    return e


def no_errors(port):
    assert port.broker.errors == [], port.broker.errors


def cycle_until(c, port, cond, limit_ms=60000):
    t0 = port.now
    while not cond():
        c.cycle()
        assert port.now - t0 <= limit_ms, "condition not met within %d ms" % limit_ms


# ---- connect --------------------------------------------------------------------------


def test_connect_sends_connect_and_reads_connack():
    c, port = connected_client(keepalive=60, client_id="vm-client")
    assert c.connected() and c.get_rc() == 0 and c.session_present is False
    assert port.link.written[0] == bytes(
        [0x10, 21]  # CONNECT, remaining length 21
        + [0, 4] + list(b"MQTT")  # protocol name [3.1.2.1]
        + [4]  # level 4: MQTT 3.1.1
        + [0x02]  # flags: clean session
        + [0, 60]  # keepalive 60 s
        + [0, 9] + list(b"vm-client")  # client id
    )
    t, connect = port.broker.received[0]
    assert t == pk.CONNECT
    assert connect["client_id"] == b"vm-client" and connect["keepalive"] == 60
    assert port.broker.sent == [(pk.CONNACK, b"\x20\x02\x00\x00")]
    assert port.link.open_args[:2] == ("broker.vm", 1883)
    no_errors(port)


def test_connect_with_credentials_and_will():
    port = VMPort()
    c = Client("dev", port=port, clean_session=False)
    c.set_will("dev/status", "offline", qos=1, retain=True)
    c.set_username_pw("alice", "secret")
    port.broker.session_present = 1
    c.connect("h", 30, start_loop=False)
    connect = port.broker.received[0][1]
    assert connect["username"] == b"alice" and connect["password"] == b"secret"
    assert connect["will_topic"] == b"dev/status" and connect["will_payload"] == b"offline"
    assert connect["will_qos"] == 1 and connect["will_retain"] is True
    assert connect["clean_session"] is False
    assert c.session_present is True
    assert "secret" not in repr(c)
    no_errors(port)


def test_connack_refused_raises_and_closes():
    port = VMPort()
    port.broker.connack_rc = 5
    c = Client("c", port=port)
    e = mqtt_error(E.ERR_CONN_REFUSED, c.connect, "h", 60, start_loop=False)
    assert "not authorised" in str(e) and "CONNACK 5" in str(e)
    assert c.get_rc() == 5 and not c.connected() and port.link.closed


def test_no_connack_times_out_on_the_fake_clock():
    port = VMPort()
    port.broker.connack_rc = 0
    port.broker._send_connack = lambda: None  # a broker that never answers
    c = Client("c", port=port, command_timeout=3000, cycle_timeout=500)
    e = mqtt_error(E.ERR_TIMEOUT, c.connect, "h", 60, start_loop=False)
    assert "CONNACK" in str(e)
    assert 3000 <= port.now <= 3500
    assert c.get_rc() == -1


def test_loop_needs_threads():
    c, port = connected_client()
    mqtt_error(E.ERR_NOT_SUPPORTED, c.loop)


# ---- publish --------------------------------------------------------------------------


def test_publish_qos0_is_one_write_of_exact_bytes():
    c, port = connected_client()
    n = port.link.writes
    assert c.publish(b"a/b", b"hello") == 0
    assert port.link.writes == n + 1
    assert port.link.written[-1] == b"\x30\x0a\x00\x03a/bhello"
    assert port.broker.received[-1] == (
        pk.PUBLISH,
        {"topic": b"a/b", "payload": b"hello", "qos": 0, "retain": False, "dup": False, "pid": 0},
    )
    # str topic and payload, retain
    c.publish("a/c", "x", retain=True)
    assert port.link.written[-1] == b"\x31\x06\x00\x03a/cx"
    no_errors(port)


def test_publish_large_payload_in_two_writes():
    c, port = connected_client(send_buffer=32)
    payload = bytes(range(100))
    c.publish(b"t", payload)
    assert port.link.written[-2:] == [b"\x30\x67\x00\x01t", payload]
    assert port.broker.received[-1][1]["payload"] == payload
    no_errors(port)


def test_publish_qos1_waits_for_puback():
    c, port = connected_client()
    assert c.publish("t/1", b"x", qos=1) == 1
    assert port.link.written[-1] == b"\x32\x08\x00\x03t/1\x00\x01x"
    assert port.broker.sent[-1] == (pk.PUBACK, b"\x40\x02\x00\x01")
    assert c.publish("t/1", b"y", qos=1) == 2  # the slot was freed, next id
    no_errors(port)


def test_publish_qos1_without_puback_times_out():
    c, port = connected_client(command_timeout=2000)
    port.broker.puback = False
    t0 = port.now
    assert c.publish("t", b"x", qos=1) == 1  # accepted: no exception after that
    assert 2000 <= port.now - t0 <= 2500
    assert c.pending() == 1
    port.broker.puback = True
    assert c.publish("t", b"y", qos=1) == 2  # another slot
    no_errors(port)


def test_publish_qos2_publish_pubrec_pubrel_pubcomp():
    c, port = connected_client()
    pid = c.publish("q/2", b"exactly once", qos=2)
    assert pid == 1
    assert port.broker.types_received()[-2:] == [pk.PUBLISH, pk.PUBREL]
    assert port.broker.types_sent()[-2:] == [pk.PUBREC, pk.PUBCOMP]
    assert port.link.written[-1] == b"\x62\x02\x00\x01"  # PUBREL, flags 0010 [MQTT-3.6.1-1]
    assert port.broker.in_qos2 == []
    assert c.publish("q/2", b"again", qos=2) == 2
    no_errors(port)


def test_publish_when_not_connected():
    c = Client("c", port=VMPort())
    mqtt_error(E.ERR_NO_CONN, c.publish, "t", b"x")


def test_publish_argument_errors():
    c, port = connected_client()
    raises(ValueError, c.publish, "a/+", b"x")
    raises(ValueError, c.publish, "t", b"x", qos=3)
    raises(ValueError, c.publish, "", b"x")


# ---- subscribe and inbound messages ---------------------------------------------------


def test_subscribe_sends_subscribe_and_returns_granted_qos():
    c, port = connected_client()
    assert c.subscribe("s/#", lambda cl, p, t: None, qos=2) == 2
    assert port.link.written[-1] == b"\x82\x08\x00\x01\x00\x03s/#\x02"
    assert port.broker.sent[-1] == (pk.SUBACK, b"\x90\x03\x00\x01\x02")
    port.broker.grant = 1
    assert c.subscribe("x", lambda cl, p, t: None, qos=2) == 1  # downgraded
    no_errors(port)


def test_subscribe_refused():
    c, port = connected_client()
    port.broker.grant = 0x80
    mqtt_error(E.ERR_SUBSCRIBE_REFUSED, c.subscribe, "no", lambda cl, p, t: None)
    assert c.connected()


def test_inbound_qos0_1_2_delivered_and_acked():
    got = []
    c, port = connected_client()
    c.subscribe("s/#", lambda cl, p, t: got.append((t, p)), qos=2)
    b = port.broker
    b.publish("s/0", b"zero", qos=0)
    assert c.cycle() == pk.PUBLISH
    pid1 = b.publish("s/1", b"one", qos=1)
    assert c.cycle() == pk.PUBLISH
    assert port.link.written[-1] == bytes([0x40, 2, 0, pid1])  # PUBACK
    pid2 = b.publish("s/2", b"two", qos=2)
    assert c.cycle() == pk.PUBLISH  # delivered at once, PUBREC sent
    assert port.link.written[-1] == bytes([0x50, 2, 0, pid2])
    assert c.cycle() == pk.PUBREL  # the broker's PUBREL; PUBCOMP goes back
    assert port.link.written[-1] == bytes([0x70, 2, 0, pid2])
    assert got == [("s/0", b"zero"), ("s/1", b"one"), ("s/2", b"two")]
    assert b.out_state == {}  # every flow finished on the broker's side
    no_errors(port)


def test_inbound_qos2_redelivery_is_not_delivered_twice():
    got = []
    c, port = connected_client()
    c.subscribe("q", lambda cl, p, t: got.append(p), qos=2)
    b = port.broker
    b.pubrel = False  # hold the PUBREL back
    pid = b.publish("q", b"once", qos=2)
    assert c.cycle() == pk.PUBLISH
    assert port.link.written[-1] == bytes([0x50, 2, 0, pid])  # PUBREC
    # As if our PUBREC were lost: the same message again, with DUP [MQTT-4.3.3-2]
    b.publish("q", b"once", qos=2, dup=True, pid=pid)
    assert c.cycle() == pk.PUBLISH
    assert got == [b"once"]  # acked again, not delivered again
    assert port.link.written[-1] == bytes([0x50, 2, 0, pid])
    b.release(pid)
    assert c.cycle() == pk.PUBREL
    assert port.link.written[-1] == bytes([0x70, 2, 0, pid])  # PUBCOMP
    # the same id after PUBCOMP is a new message
    b.pubrel = True
    b.publish("q", b"new", qos=2, pid=pid)
    c.cycle()
    c.cycle()
    assert got == [b"once", b"new"]
    assert b.out_state == {}
    no_errors(port)


def test_own_publish_comes_back_through_a_subscription():
    got = []
    c, port = connected_client()
    c.subscribe("echo/#", lambda cl, p, t: got.append((t, p)), qos=1)
    assert c.publish("echo/a", b"ping", qos=1) == 2  # id 1 was the SUBSCRIBE
    c.cycle()  # the broker forwards it at QoS 1
    assert got == [("echo/a", b"ping")]
    assert port.link.written[-1][0] == 0x40  # PUBACK for the forwarded message
    no_errors(port)


def test_wildcards_and_unmatched_messages():
    got = []
    c, port = connected_client()
    c.subscribe("home/+/temp", lambda cl, p, t: got.append(("plus", t)))
    c.on_message = lambda cl, p, t: got.append(("default", t))
    port.broker.publish("home/kitchen/temp", b"21")
    port.broker.publish("home/kitchen/light", b"on")
    c.cycle()
    c.cycle()
    assert got == [("plus", "home/kitchen/temp"), ("default", "home/kitchen/light")]


def test_unsubscribe():
    c, port = connected_client()
    c.subscribe("u", lambda cl, p, t: None)
    c.unsubscribe("u")
    assert port.broker.types_received()[-1] == pk.UNSUBSCRIBE
    assert port.broker.types_sent()[-1] == pk.UNSUBACK
    assert port.broker.subscriptions == []
    no_errors(port)


def test_partial_reads_reassemble_packets():
    got = []
    c, port = connected_client()
    c.subscribe("p", lambda cl, p, t: got.append(p), qos=1)
    port.link.chunk = 1  # one byte per read_into
    port.broker.publish("p", b"x" * 300, qos=1)
    c.cycle()
    assert got == [b"x" * 300]
    no_errors(port)


def test_deliver_views():
    got = []
    c, port = connected_client()
    c.deliver_views = True
    c.subscribe("v", lambda cl, p, t: got.append((type(p), bytes(t), bytes(p))))
    port.broker.publish("v", b"data")
    c.cycle()
    assert got == [(memoryview, b"v", b"data")]


# ---- keepalive ------------------------------------------------------------------------


def test_pingreq_at_half_keepalive_and_pingresp_clears_it():
    c, port = connected_client(keepalive=10, cycle_timeout=500)
    t0 = port.now
    cycle_until(c, port, lambda: pk.PINGREQ in port.broker.types_received())
    assert port.now - t0 == 5000
    assert port.link.written[-1] == b"\xc0\x00"
    assert c.cycle() == pk.PINGRESP
    assert c._ping_sent is None
    # the next one comes 5 s after the PINGRESP was read
    t1 = port.now
    cycle_until(c, port, lambda: port.broker.counts[pk.PINGREQ] == 2)
    assert port.now - t1 == 5000
    no_errors(port)


def test_missing_pingresp_is_a_dead_link():
    failures = []
    c, port = connected_client(keepalive=10, cycle_timeout=500)
    c._loop_failure = lambda cl: failures.append(cl.last_error) or BREAK_LOOP
    port.broker.pingresp = False
    t0 = port.now

    def run():
        while True:
            c.cycle()

    e = mqtt_error(E.ERR_KEEPALIVE, run)
    assert port.now - t0 <= 15000  # 1.5 x keepalive after the last traffic
    assert failures == [e] and not c.connected() and port.link.closed


def test_keepalive_zero_never_pings():
    c, port = connected_client(keepalive=0)
    for _ in range(50):
        assert c.cycle() == 0
    assert port.broker.counts[pk.PINGREQ] == 0


# ---- a broker that misbehaves ---------------------------------------------------------

GARBAGE = (
    (b"\xf0\x00", "reserved packet type 15"),
    (b"\x00\x00", "reserved packet type 0"),
    (b"\x41\x02\x00\x01", "MQTT-2.2.2-1"),  # PUBACK with flag bits
    (b"\x36\x05\x00\x01t\x00\x01", "MQTT-3.3.1-4"),  # QoS 3
    (b"\x38\x04\x00\x01tx", "MQTT-3.3.1-2"),  # DUP at QoS 0
    (b"\x32\x05\x00\x01t\x00\x00", "MQTT-2.3.1-1"),  # packet id 0
    (b"\x30\x05\x00\x01+xy", "MQTT-3.3.2-2"),  # wildcard in a topic name
    (b"\x30\x05\x00\x02\xc0\x80x", "MQTT-1.5.3-1"),  # overlong UTF-8
    (b"\x30\xff\xff\xff\xff\x01", "longer than 4 bytes"),
    (b"\x20\x02\x00\x00", "CONNACK"),  # a second CONNACK
    (b"\x82\x04\x00\x01\x00\x00", "SUBSCRIBE"),  # only a client sends it
    (b"\xd0\x01\x00", "PINGRESP remaining length"),
    (b"\x40\x03\x00\x01\x00", "PUBACK remaining length"),
)


def test_garbage_from_the_broker_is_an_mqtt_error_and_closes_the_session():
    for garbage, rule in GARBAGE:
        failures = []
        c, port = connected_client()
        c._loop_failure = lambda cl: failures.append(cl.last_error) or BREAK_LOOP
        port.broker.inject(garbage)
        e = mqtt_error(E.ERR_PROTOCOL, c.cycle)
        assert rule in str(e), "%r: %r does not cite %r" % (garbage, str(e), rule)
        assert not c.connected() and port.link.closed
        assert failures == [e]


def test_garbage_instead_of_connack():
    port = VMPort()
    port.broker._send_connack = lambda: port.broker.inject(b"\xd0\x00")  # PINGRESP
    c = Client("c", port=port)
    e = mqtt_error(E.ERR_PROTOCOL, c.connect, "h", 60, start_loop=False)
    assert "MQTT-3.2.0-1" in str(e)
    assert not c.connected()


def test_stall_mid_packet_is_bounded():
    c, port = connected_client(command_timeout=4000)
    port.broker.inject(b"\x30\x0a\x00")  # a PUBLISH that stops after 3 bytes
    t0 = port.now
    e = mqtt_error(E.ERR_TIMEOUT, c.cycle)
    assert "mid-packet" in str(e)
    assert 4000 <= port.now - t0 <= 4001


def test_close_mid_packet_is_an_oserror_at_once():
    c, port = connected_client()
    port.broker.inject(b"\x30\x0a\x00\x03a/")
    port.link.eof = True
    t0 = port.now
    raises(OSError, c.cycle)
    assert port.now == t0 and not c.connected()


def test_oversize_publish_is_dropped_acked_and_the_stream_stays_in_sync():
    got = []
    c, port = connected_client(max_packet_size=64)
    c.on_log = lambda cl, lvl, text: None
    c.subscribe("big", lambda cl, p, t: got.append(p), qos=1)
    port.broker.publish("big", b"y" * 1000, qos=1)
    port.broker.publish("big", b"small", qos=1)
    c.cycle()
    c.cycle()
    assert c.oversize_dropped == 1 and got == [b"small"]
    assert port.broker.out_state == {}  # both acked
    assert c.connected()
