# The Client on the fake broker and fake clock of umqtt_paho.testing (through
# tests/fakenet.py): exact bytes, every QoS 1/2 ack flow both ways, the broker's side
# of each flow, ping timing, timeouts, garbage, stalls, closes mid-packet, oversize
# messages.
#
# Every time bound is checked against the fake clock, so "within command_timeout" means
# exactly that, without sleeping. Real-broker behaviour is in test_live.py.
#
# Runs on CPython (pytest collects it) and inside the 32-bit MicroPython VM on the .mpy
# build (tests/test_vm.py): plain test functions and asserts, no pytest, no f-strings.

from umqtt_paho import BREAK_LOOP, RECOVERED, Client, MQTTError
from umqtt_paho import errors as E
from umqtt_paho import paho
from umqtt_paho import servercodec as pk

from fakenet import (
    FakePort,
    arg_error,
    connected_client,
    cycle_all,
    cycle_until,
    mqtt_error,
    no_errors,
    publish_bytes,
    raises,
)


def packet_types(chunks):
    """The packet type of each packet in a list of whole packets (link.sent)."""
    return [p[0] >> 4 for p in chunks]


# ---- connect --------------------------------------------------------------------------


def test_connect_writes_exact_connect_and_reads_connack():
    c, port = connected_client(keepalive=60)
    assert port.link.written[0] == bytes(
        [0x10, 14]  # CONNECT, remaining length 14
        + [0, 4] + list(b"MQTT")  # protocol name [3.1.2.1]
        + [4]  # level 4: MQTT 3.1.1
        + [0x02]  # flags: clean session
        + [0, 60]  # keepalive 60 s
        + [0, 2] + list(b"c1")  # client id
    )  # fmt: skip
    assert port.link.open_args[:2] == ("broker.test", 1883)
    assert c.connected() and c.get_rc() == 0 and c.session_present is False
    cid, name, info = port.broker.packets[0]
    assert (cid, name, info["protocol"], info["level"]) == ("c1", "CONNECT", "MQTT", 4)
    assert info["keepalive"] == 60 and info["clean_session"] is True
    assert port.link.sent == [b"\x20\x02\x00\x00"]  # CONNACK, accepted
    no_errors(port)


def test_connect_with_will_credentials_and_mqtt31():
    port = FakePort()
    c = Client("dev", port=port, protocol=3, clean_session=False)
    c.set_will("dev/status", "offline", qos=1, retain=True)
    c.set_username_pw("alice", "secret")
    c.connect("h", 30, port=8883, start_loop=False)
    body = (
        b"\x00\x06MQIsdp" + b"\x03"  # MQTT 3.1 name and level
        + bytes([0x80 | 0x40 | 0x20 | 0x08 | 0x04])  # user, password, will retain/qos1/will
        + b"\x00\x1e"  # keepalive 30
        + b"\x00\x03dev"
        + b"\x00\x0adev/status" + b"\x00\x07offline"
        + b"\x00\x05alice" + b"\x00\x06secret"
    )  # fmt: skip
    assert port.link.written[0] == bytes([0x10, len(body)]) + body
    assert port.link.open_args[:2] == ("h", 8883)
    info = port.broker.packets[0][2]
    assert (info["protocol"], info["level"]) == ("MQIsdp", 3)


def test_connect_with_credentials_and_will_as_the_broker_decodes_them():
    port = FakePort()
    c = Client("dev", port=port, clean_session=False)
    c.set_will("dev/status", "offline", qos=1, retain=True)
    c.set_username_pw("alice", "secret")
    port.broker.session_present = True  # what CONNACK says, whatever the broker had
    c.connect("h", 30, start_loop=False)
    info = port.broker.packets[0][2]
    assert (info["username"], info["password"]) == ("alice", b"secret")
    will = info["will"]
    assert (will.topic, will.payload, will.qos, will.retain) == (
        "dev/status",
        b"offline",
        1,
        True,
    )
    assert info["clean_session"] is False and info["keepalive"] == 30
    assert c.session_present is True
    assert "secret" not in repr(c)
    no_errors(port)


def test_connack_refused_sets_rc_and_raises():
    port = FakePort()
    port.broker.connack_rc = 5
    c = Client("c", port=port)
    e = mqtt_error(E.ERR_CONN_REFUSED, c.connect, "h", 60, start_loop=False)
    assert "not authorised" in str(e) and "CONNACK 5" in str(e)
    assert c.get_rc() == 5 and not c.connected()
    assert port.link.closed


def test_no_connack_times_out_at_command_timeout():
    port = FakePort()
    port.broker.connack = False
    c = Client("c", port=port, command_timeout=3000, cycle_timeout=500)
    e = mqtt_error(E.ERR_TIMEOUT, c.connect, "h", 60, start_loop=False)
    assert "CONNACK" in str(e)
    assert 3000 <= port.clock.now <= 3000 + 500
    assert c.get_rc() == -1 and port.link.closed


def test_first_packet_not_connack_is_a_protocol_error():
    port = FakePort()
    port.broker.connack = False

    def answer(link, name, value):
        if name == "CONNECT":
            link.send(b"\xd0\x00")  # a PINGRESP instead of the CONNACK

    port.broker.on_packet = answer
    c = Client("c", port=port)
    e = mqtt_error(E.ERR_PROTOCOL, c.connect, "h", 60, start_loop=False)
    assert "MQTT-3.2.0-1" in str(e)
    assert not c.connected()


def test_open_failure_is_raised_and_rc_is_minus_one():
    port = FakePort()
    port.broker.unreachable = True
    c = Client("c", port=port)
    e = raises(OSError, c.connect, "h", 60, start_loop=False)
    assert e.args[0] == 113
    assert c.get_rc() == -1 and not c.connected()
    assert c.reconnect() == -1 and isinstance(c.last_error, OSError)


def test_reconnect_runs_breconnect_cb_first_and_returns_rc():
    calls = []
    port = FakePort()
    c = Client("c", port=port)
    c.connect(
        "h",
        60,
        breconnect_cb=lambda cl: calls.append(("b", cl.connected())),
        aconnect_cb=lambda cl: calls.append(("a", cl.connected())),
        start_loop=False,
    )
    assert calls == [("a", True)]
    port.broker.connack_rc = 3
    assert c.reconnect() == 3 and c.get_rc() == 3 and not c.connected()
    port.broker.connack_rc = 0
    assert c.reconnect() == 0 and c.connected()
    assert calls == [("a", True), ("b", True), ("b", False), ("a", True)]
    assert len(port.links) == 3


def test_empty_client_id_rules():
    arg_error("MQTT-3.1.3-7", Client, "", clean_session=False, port=FakePort())
    raises(ValueError, Client, "", protocol=3, port=FakePort())
    c, port = connected_client(client_id="")
    assert port.link.written[0].endswith(b"\x00\x00")  # empty id sent as such
    assert port.broker.packets[0][2]["client_id"] == "" and c.connected()


def test_password_never_in_repr_or_errors():
    port = FakePort()
    port.broker.connack_rc = 4
    c = Client("c", port=port)
    c.set_username_pw("alice", "hunter2-secret")
    e = mqtt_error(E.ERR_CONN_REFUSED, c.connect, "h", 60, start_loop=False)
    assert "hunter2" not in repr(c) and "hunter2" not in str(e)
    assert "hunter2" not in repr(e)


# ---- publish --------------------------------------------------------------------------


def test_publish_qos0_one_write_exact_bytes():
    c, port = connected_client()
    n = port.link.writes
    assert c.publish(b"a/b", b"hello") == 0
    assert port.link.writes == n + 1
    assert port.link.written[n:] == [b"\x30\x0a\x00\x03a/bhello"]
    m = port.broker.received[-1]
    assert (m.topic, m.payload, m.qos, m.retain, m.dup, m.pid) == (
        "a/b",
        b"hello",
        0,
        False,
        False,
        0,
    )
    c.publish("a/c", "x", retain=True)  # str topic and payload, retain
    assert port.link.written[-1] == b"\x31\x06\x00\x03a/cx"
    no_errors(port)


def test_publish_large_payload_goes_in_two_writes_without_copy():
    c, port = connected_client(send_buffer=64)
    n = len(port.link.written)
    payload = bytes(range(200))
    c.publish("t", payload, qos=0, retain=True)
    assert port.link.written[n:] == [b"\x31\xcb\x01\x00\x01t", payload]
    assert port.broker.received[-1].payload == payload  # the broker framed it whole
    no_errors(port)


def test_publish_qos1_waits_for_puback():
    c, port = connected_client()
    n = len(port.link.written)
    assert c.publish("t/1", "x", qos=1) == 1
    assert port.link.written[n] == b"\x32\x08\x00\x03t/1\x00\x01x"
    assert port.link.sent[-1] == b"\x40\x02\x00\x01"  # the broker's PUBACK
    assert c.publish("t/1", "y", qos=1) == 2  # next packet id
    no_errors(port)


def test_publish_qos1_without_puback_returns_at_command_timeout_and_stays_pending():
    # Accepted messages never raise later: the call returns after command_timeout and
    # the message stays in the session until its PUBACK comes.
    done = []
    c, port = connected_client(command_timeout=2000)
    c.on_publish = lambda cl, pid: done.append(pid)
    port.broker.puback = False
    t0 = port.clock.now
    assert c.publish("t", "x", qos=1) == 1
    assert 2000 <= port.clock.now - t0 <= 2000 + 500
    assert c.pending() == 1 and done == []
    port.broker.puback = True
    assert c.publish("t", b"y", qos=1) == 2  # another slot; 1 still waits
    assert c.pending() == 1 and done == [2]
    port.link.send(b"\x40\x02\x00\x01")  # the late PUBACK completes it
    c.cycle()
    assert c.pending() == 0 and done == [2, 1]
    assert c.session.payloads == [None] * 20  # the messages are let go


def test_publish_qos2_full_flow():
    c, port = connected_client()
    assert c.publish("q2", b"m", qos=2) == 1
    assert port.broker.types()[-2:] == ["PUBLISH", "PUBREL"]
    assert packet_types(port.link.sent[-2:]) == [pk.PUBREC, pk.PUBCOMP]
    assert port.link.written[-1] == b"\x62\x02\x00\x01"  # PUBREL, flags 0010 [MQTT-3.6.1-1]
    assert port.broker.sessions["c1"].in_qos2 == []
    assert c.publish("q2", b"again", qos=2) == 2
    no_errors(port)


def test_publish_qos2_without_pubcomp_returns_and_stays_pending():
    c, port = connected_client(command_timeout=1000)
    port.broker.pubcomp = False
    assert c.publish("t", "x", qos=2) == 1
    assert c.pending() == 1 and c.session.states[0] == 3  # waits for PUBCOMP
    port.link.send(b"\x70\x02\x00\x01")
    c.cycle()
    assert c.pending() == 0


def test_publish_raises_only_before_accepting():
    c, port = connected_client(send_buffer=32)
    # the header cannot fit the send buffer
    mqtt_error(E.ERR_PAYLOAD_SIZE, c.publish, "t" * 40, "x", qos=1)
    assert c.pending() == 0 and list(c.session.states) == [0] * 20  # nothing kept
    raises(ValueError, c.publish, "a/#", "x", qos=2)
    assert c.pending() == 0
    c.disconnect()
    mqtt_error(E.ERR_NO_CONN, c.publish, "t", "x", qos=1)
    assert c.pending() == 0


def test_publish_whose_write_fails_is_accepted_and_resent_after_reconnect():
    c, port = connected_client(client_id="r", clean_session=False)
    port.broker.cut()  # the link is reset: the client's next write fails
    c.on_log = lambda *a: None
    assert c.publish(b"t", b"keep", qos=1) == 1  # no exception: accepted
    assert not c.connected() and c.pending() == 1
    assert port.broker.received == []  # it never arrived
    assert c.reconnect() == 0 and c.session_present  # the broker kept the session
    # resent with DUP and the same packet id [MQTT-4.4.0-1]
    assert port.link.written[1] == b"\x3a\x09\x00\x01t\x00\x01keep"
    c.cycle()  # PUBACK
    assert c.pending() == 0
    assert port.broker.payloads() == [b"keep"]


def test_unacked_messages_resent_in_order_with_dup_and_pubrel_for_pubrecd():
    c, port = connected_client(client_id="r", clean_session=False)
    port.broker.puback = False
    port.broker.pubcomp = False
    assert c.publish(b"a", b"1", qos=1, wait=False) == 1
    assert c.publish(b"b", b"2", qos=2, wait=False) == 2  # PUBREC comes, PUBCOMP not
    assert c.publish(b"c", b"3", qos=1, retain=True, wait=False) == 3
    c.cycle()  # reads the PUBREC of 2, sends PUBREL
    assert c.pending() == 3
    port.broker.hangup()
    raises(OSError, c.cycle)
    port.broker.puback = True
    port.broker.pubcomp = True
    assert c.reconnect() == 0 and c.session_present
    assert port.link.written[1:] == [
        b"\x3a\x06\x00\x01a\x00\x011",  # PUBLISH DUP QoS 1, id 1
        b"\x62\x02\x00\x02",  # PUBREL id 2: the broker has it [MQTT-4.4.0-1]
        b"\x3b\x06\x00\x01c\x00\x033",  # PUBLISH DUP QoS 1 retain, id 3
    ]
    cycle_all(c)
    assert c.pending() == 0
    assert port.broker.payloads() == [b"1", b"2", b"3"]  # each once: the resends are DUPs


def test_without_a_session_pubrecd_qos2_is_published_again():
    c, port = connected_client()
    port.broker.pubcomp = False
    c.publish(b"q", b"2", qos=2, wait=False)
    c.cycle()  # PUBREC -> PUBREL sent, waits for PUBCOMP
    port.broker.hangup()
    raises(OSError, c.cycle)
    assert c.reconnect() == 0 and not c.session_present  # clean session: none kept
    assert port.link.written[1] == b"\x3c\x06\x00\x01q\x00\x012"  # PUBLISH DUP QoS 2


def test_mutable_payload_is_copied_on_accept():
    c, port = connected_client(clean_session=False)
    port.broker.puback = False
    buf = bytearray(b"AAAA")
    c.publish(b"t", buf, qos=1, wait=False)
    buf[:] = b"BBBB"  # the application reuses its buffer
    port.broker.hangup()
    raises(OSError, c.cycle)
    c.reconnect()
    assert port.link.written[1].endswith(b"AAAA")


def test_flush_waits_for_every_ack():
    c, port = connected_client(command_timeout=5000)
    for k in range(5):
        c.publish(b"t", str(k), qos=1, wait=False)
    assert c.pending() == 5
    assert c.flush() is True and c.pending() == 0
    port.broker.puback = False
    c.publish(b"t", b"x", qos=1, wait=False)
    t0 = port.clock.now
    assert c.flush(1500) is False and 1500 <= port.clock.now - t0 <= 2000


def test_insecure_tls_context_is_refused_unless_opted_out():
    class Ctx:
        verify_mode = 0  # CERT_NONE
        check_hostname = False

    port = FakePort()
    c = Client("c", port=port)
    e = mqtt_error(E.ERR_TLS, c.connect, "h", 60, ssl_ctx=Ctx(), start_loop=False)
    assert "tls_insecure" in str(e)
    assert port.links == []  # refused before touching the network
    c.tls_insecure = True
    c.connect("h", 60, ssl_ctx=Ctx(), start_loop=False)
    assert port.link.open_args[2] is not None


def test_publish_argument_errors():
    c = Client("c", port=FakePort())
    mqtt_error(E.ERR_NO_CONN, c.publish, "t", b"x")  # never connected
    c, port = connected_client()
    arg_error("qos", c.publish, "t", "x", qos=3)
    arg_error("MQTT-3.3.2-2", c.publish, "a/+", "x")
    arg_error("MQTT-4.7.3-1", c.publish, "", "x")
    c.disconnect()
    mqtt_error(E.ERR_NO_CONN, c.publish, "t", "x")


def inbound_ids(c):
    """The inbound QoS 2 ids awaiting PUBREL in the client's session."""
    t = c.session.inbound  # made by the first inbound QoS 2 message
    ids = t.ids if t is not None else b""
    return [ids[i] << 8 | ids[i + 1] for i in range(0, len(ids), 2) if ids[i] | ids[i + 1]]


def test_inflight_table_full_waits_command_timeout_then_raises():
    c, port = connected_client(max_inflight=1, command_timeout=3000)
    i = c.session.take(8)  # one SUBSCRIBE already waiting, its ack never comes
    t0 = port.clock.now
    e = mqtt_error(E.ERR_QUEUE_SIZE, c.publish, "t", "x", qos=1)
    assert "max_inflight" in str(e)
    assert 3000 <= port.clock.now - t0 <= 3500
    assert "PUBLISH" not in port.broker.types()  # nothing was sent
    c.session.free(i)
    assert c.publish("t", "x", qos=1) > 0


def test_callback_publishes_do_not_nest_and_free_their_slots_on_ack():
    c, port = connected_client(max_inflight=2)
    port.broker.puback = False  # acks come later, in a burst
    sent = []
    c.subscribe("ask", lambda cl, p, t: sent.append(cl.publish("reply", p, qos=1)))
    for k in range(2):
        port.link.send(publish_bytes(b"ask", b"q" + str(k).encode()))
        c.cycle()
    assert len(sent) == 2 and c._nest == 0
    assert [s for s in c.session.states] == [1, 1]  # both wait for PUBACK, no waiter
    port.link.send(b"\x40\x02" + sent[0].to_bytes(2, "big"))
    port.link.send(b"\x40\x02" + sent[1].to_bytes(2, "big"))
    c.cycle()
    c.cycle()
    assert list(c.session.states) == [0, 0]


def test_callback_publish_with_full_table_reads_nested_until_an_ack_frees_a_slot():
    c, port = connected_client(max_inflight=1)
    port.broker.puback = False
    sent = []
    c.subscribe("ask", lambda cl, p, t: sent.append(cl.publish("reply", p, qos=1)))
    port.link.send(publish_bytes(b"ask", b"q0"))
    c.cycle()  # slot taken by reply 0
    port.link.send(publish_bytes(b"ask", b"q1"))
    port.link.send(b"\x40\x02" + sent[0].to_bytes(2, "big"))  # ack of reply 0
    c.cycle()  # q1's publish finds the table full, reads the ack nested, then sends
    assert len(sent) == 2 and c._nest == 0


def test_packet_ids_wrap_and_skip_ids_in_use():
    c, port = connected_client(max_inflight=2)
    c.session._pid = 65534
    held = c.session.take(8)  # takes 65535
    assert c.session.pids[held] == 65535
    assert c.publish("t", "x", qos=1) == 1  # wraps to 1, never 0
    c.session.free(held)


# ---- subscribe ------------------------------------------------------------------------


def test_subscribe_exact_bytes_and_granted_qos():
    c, port = connected_client()
    assert c.subscribe("a/+/c", lambda *a: None, qos=2) == 2
    assert port.link.written[-1] == b"\x82\x0a\x00\x01\x00\x05a/+/c\x02"
    assert port.link.sent[-1] == b"\x90\x03\x00\x01\x02"  # SUBACK granting QoS 2
    port.broker.grant = 1
    assert c.subscribe("b", lambda *a: None, qos=2) == 1  # broker downgraded
    assert port.broker.subscriptions("c1") == {"a/+/c": 2, "b": 1}
    no_errors(port)


def test_subscribe_refused_raises_and_forgets_the_function():
    c, port = connected_client()
    port.broker.grant = 0x80
    e = mqtt_error(E.ERR_SUBSCRIBE_REFUSED, c.subscribe, "secret/#", lambda *a: None, qos=1)
    assert "0x80" in str(e)
    assert c._handlers == [] and c.connected()


def test_subscribe_before_connect_is_sent_after_connack_unless_session_present():
    port = FakePort()
    c = Client("c", port=port, clean_session=False)
    assert c.subscribe("cmd/#", lambda *a: None, qos=1) is None
    c.connect("h", 60, start_loop=False)
    assert port.broker.types() == ["CONNECT", "SUBSCRIBE"]
    assert c.reconnect() == 0 and c.session_present  # the broker kept the session
    assert port.broker.types() == ["CONNECT", "SUBSCRIBE", "CONNECT"]


def test_unsubscribe_sends_and_waits_for_unsuback():
    c, port = connected_client()
    c.subscribe("x", lambda *a: None)
    c.unsubscribe("x")
    assert port.link.written[-1] == b"\xa2\x05\x00\x02\x00\x01x"
    assert port.link.sent[-1] == b"\xb0\x02\x00\x02"  # UNSUBACK
    assert c._handlers == [] and port.broker.subscriptions("c1") == {}
    no_errors(port)


# ---- inbound messages -----------------------------------------------------------------


def test_inbound_qos0_and_qos1_delivered_then_acked():
    got = []
    c, port = connected_client()
    c.subscribe("s/#", lambda cl, p, t: got.append((t, p, len(port.link.written))))
    port.link.send(publish_bytes(b"s/0", b"zero"))
    port.link.send(publish_bytes(b"s/1", b"one", qos=1, pid=7))
    assert c.cycle() == pk.PUBLISH and c.cycle() == pk.PUBLISH
    n = len(port.link.written)
    assert [g[:2] for g in got] == [("s/0", b"zero"), ("s/1", b"one")]
    assert port.link.written[-1] == b"\x40\x02\x00\x07"  # PUBACK after the callback ran
    assert got[1][2] == n - 1


def test_inbound_qos0_1_2_flows_run_to_their_end_on_the_broker():
    got = []
    c, port = connected_client()
    c.subscribe("s/#", lambda cl, p, t: got.append((t, p)), qos=2)
    b = port.broker
    b.deliver("s/0", b"zero", qos=0)
    assert c.cycle() == pk.PUBLISH
    pid1 = b.deliver("s/1", b"one", qos=1)
    assert c.cycle() == pk.PUBLISH
    assert port.link.written[-1] == bytes([0x40, 2, 0, pid1])  # PUBACK
    pid2 = b.deliver("s/2", b"two", qos=2)
    assert c.cycle() == pk.PUBLISH  # delivered at once, PUBREC sent
    assert port.link.written[-1] == bytes([0x50, 2, 0, pid2])
    assert c.cycle() == pk.PUBREL  # the broker's PUBREL; PUBCOMP goes back
    assert port.link.written[-1] == bytes([0x70, 2, 0, pid2])
    assert got == [("s/0", b"zero"), ("s/1", b"one"), ("s/2", b"two")]
    assert b.sessions["c1"].out == {}  # every flow finished on the broker's side
    no_errors(port)


def test_inbound_qos2_delivered_exactly_once():
    got = []
    c, port = connected_client()
    c.subscribe("q", lambda cl, p, t: got.append(p), qos=2)
    msg = publish_bytes(b"q", b"once", qos=2, pid=9)
    dup = bytes([msg[0] | 0x08]) + msg[1:]
    port.link.send(msg)
    c.cycle()
    assert port.link.written[-1] == b"\x50\x02\x00\x09"  # PUBREC
    port.link.send(dup)  # redelivered before PUBREL: acked, not delivered
    c.cycle()
    assert got == [b"once"] and port.link.written[-1] == b"\x50\x02\x00\x09"
    port.link.send(b"\x62\x02\x00\x09")  # PUBREL
    c.cycle()
    assert port.link.written[-1] == b"\x70\x02\x00\x09"  # PUBCOMP
    port.link.send(msg)  # same id after release: a new message
    c.cycle()
    assert got == [b"once", b"once"]


def test_inbound_qos2_redelivered_by_the_broker_is_not_delivered_twice():
    got = []
    c, port = connected_client()
    c.subscribe("q", lambda cl, p, t: got.append(p), qos=2)
    b = port.broker
    b.pubrel = False  # hold the PUBREL back
    pid = b.deliver("q", b"once", qos=2)
    assert c.cycle() == pk.PUBLISH
    assert port.link.written[-1] == bytes([0x50, 2, 0, pid])  # PUBREC
    # As if our PUBREC were lost: the same message again, with DUP [MQTT-4.3.3-2]
    b.deliver("q", b"once", qos=2, dup=True, pid=pid)
    assert c.cycle() == pk.PUBLISH
    assert got == [b"once"]  # acked again, not delivered again
    assert port.link.written[-1] == bytes([0x50, 2, 0, pid])
    b.release(pid)
    assert c.cycle() == pk.PUBREL
    assert port.link.written[-1] == bytes([0x70, 2, 0, pid])  # PUBCOMP
    # the same id after PUBCOMP is a new message
    b.pubrel = True
    b.deliver("q", b"new", qos=2, pid=pid)
    c.cycle()
    c.cycle()
    assert got == [b"once", b"new"]
    assert b.sessions["c1"].out == {}
    no_errors(port)


def test_inbound_qos2_table_full_of_this_connections_ids_closes_the_link_never_duplicates():
    # MQTT 3.1.1 sets no limit on QoS 2 messages awaiting PUBREL. Forgetting an id of
    # this connection could deliver a message twice, so the link is closed instead:
    # after the reconnect the broker resends the PUBRELs and the message.
    got = []
    c, port = connected_client(max_inflight_in=2, clean_session=False)
    c.on_message = lambda cl, p, t: got.append(p)
    c.on_log = lambda *a: None
    for pid in (1, 2):
        port.link.send(publish_bytes(b"q", b"m" + str(pid).encode(), qos=2, pid=pid))
        c.cycle()
    port.link.send(publish_bytes(b"q", b"m3", qos=2, pid=3))
    mqtt_error(E.ERR_QUEUE_SIZE, c.cycle)
    assert not c.connected()
    assert got == [b"m1", b"m2"]  # m3 neither delivered nor acked: it comes again
    assert inbound_ids(c) == [1, 2]


def test_inbound_qos2_ids_the_broker_stopped_mentioning_are_forgotten_when_full():
    # After each CONNACK the broker resends PUBREL or PUBLISH for every id it still
    # holds [MQTT-4.4.0-1]: an id nobody mentioned over 4 reconnects is stale; one the
    # broker redelivered is kept (it would otherwise be delivered twice).
    got = []
    logs = []
    c, port = connected_client(max_inflight_in=2, clean_session=False)
    c.on_message = lambda cl, p, t: got.append(p)
    c.on_log = lambda cl, lvl, text: logs.append(text)
    for pid in (1, 2):
        port.link.send(publish_bytes(b"q", b"m" + str(pid).encode(), qos=2, pid=pid))
        c.cycle()
    for _ in range(4):
        port.broker.hangup()
        raises(OSError, c.cycle)
        assert c.reconnect() == 0 and c.session_present
        # the broker redelivers 1 each time (our PUBREC was lost); never mentions 2
        port.link.send(publish_bytes(b"q", b"m1", qos=2, pid=1, dup=True))
        c.cycle()
    port.link.send(publish_bytes(b"q", b"m3", qos=2, pid=3))
    c.cycle()
    assert got == [b"m1", b"m2", b"m3"] and c.connected()
    assert c.session.inbound.evicted == 1 and any("stale QoS 2 id 2" in t for t in logs)
    assert sorted(inbound_ids(c)) == [1, 3]


def test_unmatched_messages_go_to_on_message_or_are_counted():
    got = []
    logs = []
    c, port = connected_client()
    c.on_log = lambda cl, lvl, text: logs.append(text)
    port.link.send(publish_bytes(b"early", b"1", qos=1, pid=1))
    c.cycle()
    assert c.unhandled == 1 and any("no function" in t for t in logs)
    assert port.link.written[-1] == b"\x40\x02\x00\x01"  # still acked
    c.on_message = lambda cl, p, t: got.append((t, p))
    port.link.send(publish_bytes(b"early", b"2"))
    c.cycle()
    assert got == [("early", b"2")]


def test_overlapping_filters_each_get_the_message_and_wildcards_match():
    got = []
    c, port = connected_client()
    c.subscribe("home/+/temp", lambda cl, p, t: got.append(("plus", t)))
    c.subscribe("home/#", lambda cl, p, t: got.append(("hash", t)))
    c.subscribe("#", lambda cl, p, t: got.append(("all", t)))
    port.link.send(publish_bytes(b"home/kitchen/temp", b"21"))
    port.link.send(publish_bytes(b"$SYS/x", b"1"))
    c.on_message = lambda cl, p, t: got.append(("default", t))
    c.cycle()
    c.cycle()
    assert got == [
        ("plus", "home/kitchen/temp"),
        ("hash", "home/kitchen/temp"),
        ("all", "home/kitchen/temp"),
        ("default", "$SYS/x"),  # '#' does not match '$' topics [MQTT-4.7.2-1]
    ]


def test_wildcards_and_unmatched_messages():
    got = []
    c, port = connected_client()
    c.subscribe("home/+/temp", lambda cl, p, t: got.append(("plus", t)))
    c.on_message = lambda cl, p, t: got.append(("default", t))
    port.broker.deliver("home/kitchen/temp", b"21")
    port.broker.deliver("home/kitchen/light", b"on")  # sent though nobody subscribed
    c.cycle()
    c.cycle()
    assert got == [("plus", "home/kitchen/temp"), ("default", "home/kitchen/light")]


def test_own_publish_comes_back_through_a_subscription():
    got = []
    c, port = connected_client()
    c.subscribe("echo/#", lambda cl, p, t: got.append((t, p)), qos=1)
    assert c.publish("echo/a", b"ping", qos=1) == 2  # id 1 was the SUBSCRIBE
    c.cycle()  # the broker forwards it at QoS 1
    assert got == [("echo/a", b"ping")]
    assert port.link.written[-1][0] == 0x40  # PUBACK for the forwarded message
    no_errors(port)


def test_callback_that_raises_is_reported_and_message_still_acked():
    logs = []
    c, port = connected_client()
    c.on_log = lambda cl, lvl, text: logs.append((lvl, text))

    def bad(cl, p, t):
        raise RuntimeError("boom")

    c.subscribe("t", bad, qos=1)
    port.link.send(publish_bytes(b"t", b"x", qos=1, pid=3))
    assert c.cycle() == pk.PUBLISH
    assert c.connected() and port.link.written[-1] == b"\x40\x02\x00\x03"
    assert any("boom" in text for _, text in logs)


def test_callback_can_publish_qos1_nested():
    c, port = connected_client()
    seen = []

    def echo(cl, p, t):
        seen.append(cl.publish("echo", p, qos=1))

    c.subscribe("in", echo)
    port.link.send(publish_bytes(b"in", b"ping"))
    c.cycle()
    assert seen == [2]  # pid 1 was the SUBSCRIBE
    assert port.broker.types()[-1] == "PUBLISH"


def test_deliver_views_gives_memoryviews_without_copy():
    got = []
    c, port = connected_client()
    c.deliver_views = True
    c.subscribe("v", lambda cl, p, t: got.append((type(p), bytes(t), bytes(p))))
    port.link.send(publish_bytes(b"v", b"data"))
    c.cycle()
    assert got == [(memoryview, b"v", b"data")]


def test_partial_reads_reassemble_packets():
    got = []
    c, port = connected_client()
    port.link.chunk = 1  # the network hands over one byte per read
    c.subscribe("p", lambda cl, p, t: got.append(p), qos=1)
    port.broker.deliver("p", b"x" * 300, qos=1)
    c.cycle()
    assert got == [b"x" * 300]
    assert port.broker.sessions["c1"].out == {}  # and its PUBACK reached the broker
    no_errors(port)


# ---- bad input from the broker --------------------------------------------------------

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


def test_garbage_from_broker_closes_the_session_with_a_clear_error():
    for garbage, rule in GARBAGE:
        calls = []
        c, port = connected_client()
        c._loop_failure = lambda cl: calls.append(cl.last_error) or BREAK_LOOP
        port.link.send(garbage)
        e = mqtt_error(E.ERR_PROTOCOL, c.cycle)
        assert rule in str(e), "%r: %r does not cite %r" % (garbage, str(e), rule)
        assert not c.connected() and port.link.closed
        assert calls == [e]


def test_stall_mid_packet_is_bounded_by_command_timeout():
    c, port = connected_client(command_timeout=4000)
    port.link.send(b"\x30\x0a\x00")  # PUBLISH that stops after 3 bytes
    t0 = port.clock.now
    e = mqtt_error(E.ERR_TIMEOUT, c.cycle)
    assert "mid-packet" in str(e)
    assert 4000 <= port.clock.now - t0 <= 4000 + 1


def test_close_mid_packet_raises_at_once():
    c, port = connected_client(command_timeout=4000)
    port.link.send(b"\x30\x0a\x00\x03a/")
    port.broker.hangup()
    t0 = port.clock.now
    raises(OSError, c.cycle)
    assert port.clock.now == t0  # EOF is not mistaken for a timeout
    assert not c.connected()


def test_eof_between_packets_is_a_failure_not_a_timeout():
    c, port = connected_client()
    port.broker.hangup()
    raises(OSError, c.cycle)
    assert not c.connected()


def test_idle_cycle_returns_zero_after_cycle_timeout():
    c, port = connected_client(cycle_timeout=250)
    t0 = port.clock.now
    assert c.cycle() == 0
    assert port.clock.now - t0 == 250
    assert c.cycle(40) == 0 and port.clock.now - t0 == 290


def test_oversize_publish_is_drained_acked_counted_and_stream_stays_in_sync():
    got = []
    logs = []
    failures = []
    c, port = connected_client(max_packet_size=64)
    c.on_log = lambda cl, lvl, text: logs.append(text)
    c._loop_failure = lambda cl: failures.append(cl.last_error) or BREAK_LOOP
    c.subscribe("big", lambda cl, p, t: got.append(p), qos=1)
    port.broker.deliver("big", b"y" * 1000, qos=1, pid=11)
    port.broker.deliver("big", b"small", qos=1, pid=12)
    c.cycle()
    c.cycle()
    assert c.oversize_dropped == 1 and got == [b"small"]
    acks = [w for w in port.link.written if w[0] == 0x40]
    assert acks == [b"\x40\x02\x00\x0b", b"\x40\x02\x00\x0c"]
    assert any("1007" in t or "max_packet_size" in t for t in logs)
    assert c.connected() and failures == []
    assert port.broker.sessions["c1"].out == {}  # both acked
    no_errors(port)


# ---- keepalive ------------------------------------------------------------------------


def test_pingreq_at_half_keepalive_when_idle_and_pingresp_clears_it():
    c, port = connected_client(keepalive=10, cycle_timeout=500)
    t0 = port.clock.now
    cycle_until(c, port, lambda: "PINGREQ" in port.broker.types())
    assert port.clock.now - t0 == 5000
    assert port.link.written[-1] == b"\xc0\x00"
    assert c.cycle() == pk.PINGRESP
    assert c._ping_sent is None
    # the next one comes 5 s after the PINGRESP was read
    t1 = port.clock.now
    cycle_until(c, port, lambda: port.broker.types().count("PINGREQ") == 2)
    assert port.clock.now - t1 == 5000
    no_errors(port)


def test_missing_pingresp_is_a_dead_link_within_1_5_keepalive():
    calls = []
    c, port = connected_client(keepalive=10, cycle_timeout=500)
    c._loop_failure = lambda cl: calls.append(cl.last_error) or BREAK_LOOP
    port.broker.pingresp = False
    t0 = port.clock.now

    def run():
        while True:
            c.cycle()

    e = mqtt_error(E.ERR_KEEPALIVE, run)
    assert port.clock.now - t0 <= 15000  # last traffic at t0: 1.5 x keepalive
    assert calls == [e] and not c.connected() and port.link.closed


def test_pings_continue_while_waiting_for_an_ack():
    c, port = connected_client(keepalive=4, command_timeout=10000)
    port.broker.puback = False
    c.publish("t", "x", qos=1)
    assert port.broker.types().count("PINGREQ") >= 2


def test_keepalive_zero_never_pings():
    c, port = connected_client(keepalive=0)
    for _ in range(100):
        assert c.cycle() == 0
    assert "PINGREQ" not in port.broker.types()


# ---- loop_failure ---------------------------------------------------------------------


def test_loop_failure_recovered_reconnects_and_cycle_returns_minus_one():
    errors = []

    def hook(cl):
        errors.append(cl.last_error)
        return RECOVERED if cl.reconnect() == 0 else BREAK_LOOP

    c, port = connected_client()
    c._loop_failure = hook
    c.subscribe("s", lambda *a: None, qos=1)
    port.broker.hangup()
    assert c.cycle() == -1
    assert len(errors) == 1 and isinstance(errors[0], OSError)
    assert c.connected() and len(port.links) == 2
    # the subscription was renewed on the new connection (no session)
    assert port.broker.types()[-2:] == ["CONNECT", "SUBSCRIBE"]


def test_loop_failure_that_raises_ends_the_loop_with_the_original_error():
    c, port = connected_client()

    def hook(cl):
        raise ValueError("hook bug")

    c._loop_failure = hook
    c.on_log = lambda *a: None
    port.broker.hangup()
    raises(OSError, c.cycle)


def test_write_failure_closes_the_session():
    c, port = connected_client()
    port.broker.cut()  # the link is reset: the next write raises
    raises(OSError, c.publish, "t", "x")
    assert not c.connected() and port.link.closed


def test_disconnect_sends_disconnect_and_closes():
    c, port = connected_client()
    c.disconnect()
    assert port.link.written[-1] == b"\xe0\x00" and port.link.closed and not c.connected()
    assert port.broker.types()[-1] == "DISCONNECT"


def test_cycle_without_threads_port_and_loop_refused():
    port = FakePort()
    c = Client("c", port=port)
    e = mqtt_error(E.ERR_NOT_SUPPORTED, c.connect, "h", 60)  # start_loop=True, no threads
    assert "cycle()" in str(e)
    c, port = connected_client()
    mqtt_error(E.ERR_NOT_SUPPORTED, c.loop)


def test_callback_burst_beyond_table_and_nesting_gets_a_clear_error_and_is_still_acked():
    # Replies from callbacks to a burst larger than max_inflight + nesting: the callback
    # that finds no room gets ERR_QUEUE_SIZE (its reply was not accepted: it may retry),
    # reported through on_log; the inbound messages are all acked.
    c, port = connected_client(max_inflight=1)
    port.broker.puback = False
    errors = []
    logs = []
    c.on_log = lambda cl, lvl, text: logs.append(text)

    def answer(cl, p, t):
        try:
            cl.publish("reply", p, qos=1)
        except MQTTError as e:
            errors.append(e.code)
            raise

    c.subscribe("ask", answer, qos=1)
    for k in range(7):
        port.link.send(publish_bytes(b"ask", b"q" + str(k).encode(), qos=1, pid=100 + k))
    cycle_all(c)
    assert errors and set(errors) == {E.ERR_QUEUE_SIZE}
    assert any("nested" in t for t in logs)
    acked = sorted(w[3] for w in port.link.written if w[0] == 0x40)
    assert acked == [100 + k for k in range(7)] and c.connected() and c._nest == 0


def test_received_message_flags_are_visible_to_the_callback():
    seen = []
    c, port = connected_client()
    c.on_message = lambda cl, p, t: seen.append(
        (cl.last_qos, cl.last_retain, cl.last_dup, cl.last_mid)
    )
    port.link.send(publish_bytes(b"r", b"x", qos=0, retain=True))
    port.link.send(publish_bytes(b"r", b"y", qos=1, pid=42, dup=True))
    c.cycle()
    c.cycle()
    assert seen == [(0, 1, 0, 0), (1, 0, 1, 42)]


def test_send_subscribe_many_filters_in_one_packet_without_waiting():
    # the paho layer's SUBSCRIBE of a list: through the core's _command, without waiting
    got = []
    c, port = connected_client()
    c.on_subscribe = lambda cl, pid, granted: got.append((pid, bytes(granted)))
    port.broker.suback = False  # answer by hand: a multi-filter SUBACK
    pid = paho.send_subscribe(c, [("a/#", 1), (b"b/+", 2)])
    assert port.link.written[-1] == b"\x82\x0e\x00\x01\x00\x03a/#\x01\x00\x03b/+\x02"
    assert c._handlers == []  # nothing registered: messages go to on_message
    port.link.send(b"\x90\x04\x00\x01\x01\x80")
    c.cycle()
    assert got == [(pid, b"\x01\x80")] and list(c.session.states) == [0] * 20
    unsub = []
    c.on_unsubscribe = lambda cl, pid: unsub.append(pid)
    pid = paho.send_unsubscribe(c, ["a/#", "b/+"])
    c.cycle()
    assert unsub == [pid]
    assert port.broker.packets[-1][1:] == ("UNSUBSCRIBE", (pid, ["a/#", "b/+"]))


def test_topic_checks_are_skipped_only_for_the_same_immutable_topic():
    c, port = connected_client()
    topic = b"sensors/1/temp"
    c.publish(topic, b"1")
    assert c._topic_ok is topic
    c.publish(topic, b"2")  # same bytes object: valid, not scanned again
    t = bytearray(b"ok/topic")
    c.publish(t, b"x")
    t[0:1] = b"+"  # a mutable topic changed after it was checked: checked again
    arg_error("MQTT-3.3.2-2", c.publish, t, b"x")
    assert port.link.written[-1].endswith(b"ok/topicx")


def test_queue_offline_keeps_qos1_messages_and_sends_them_first_time_without_dup():
    c, port = connected_client(max_inflight=2)
    port.broker.hangup()
    raises(OSError, c.cycle)
    mqtt_error(E.ERR_NO_CONN, c.publish, b"t", b"x", qos=1)  # off by default: not accepted
    c.queue_offline = True
    assert c.publish(b"t", b"a", qos=1) == 1
    raises(ValueError, c.publish, b"t/#", b"d", qos=1)  # still validated before accepting
    assert c.pending() == 1
    pid_b = c.publish(b"t", b"b", qos=2)
    e = mqtt_error(E.ERR_QUEUE_SIZE, c.publish, b"t", b"c", qos=1)  # table full: refused
    assert e is not None and c.pending() == 2
    assert c.reconnect() == 0
    assert port.link.written[1:3] == [  # DUP 0: these never went out before
        b"\x32\x06\x00\x01t\x00\x01a",
        b"\x34\x06\x00\x01t" + bytes([0, pid_b]) + b"b",
    ]
    cycle_all(c)
    assert c.pending() == 0


def test_lost_suback_of_send_subscribe_does_not_keep_its_slot():
    c, port = connected_client(max_inflight=1)
    port.broker.suback = False
    paho.send_subscribe(c, [("x", 1)])
    assert c.session.states[0] != 0
    port.broker.hangup()
    raises(OSError, c.cycle)
    assert c.reconnect() == 0 and list(c.session.states) == [0]
    assert c.publish(b"t", b"x", qos=1) == 2
