"""Client on a scripted fake network and fake clock: exact bytes, ack flows, timing.

Every time bound is checked against the fake clock, so "within command_timeout" means
exactly that, without sleeping. Real-broker behaviour is in test_live.py.
"""

import errno

import pytest

from fakenet import FakePort, connected_client
from umqtt_paho import BREAK_LOOP, RECOVERED, Client, MQTTError
from umqtt_paho import errors as E
from umqtt_paho import paho
from umqtt_paho import servercodec as pk


def publish_bytes(topic, payload, qos=0, pid=0, dup=False, retain=False):
    buf = bytearray(1024)
    n = pk.encode_publish(buf, topic, len(payload), qos, retain, dup, pid)
    return bytes(buf[:n]) + payload


# ---- connect --------------------------------------------------------------------------


def test_connect_writes_exact_connect_and_reads_connack():
    c, port = connected_client(keepalive=60)
    assert port.net.writes[0] == bytes(
        [0x10, 14]  # CONNECT, remaining length 14
        + [0, 4] + list(b"MQTT")  # protocol name
        + [4]  # level 4: MQTT 3.1.1
        + [0x02]  # flags: clean session
        + [0, 60]  # keepalive 60 s
        + [0, 2] + list(b"c1")  # client id
    )
    assert port.net.open_args[:2] == ("broker.test", 1883)
    assert c.connected() and c.get_rc() == 0 and c.session_present is False


def test_connect_with_will_credentials_and_mqtt31():
    port = FakePort()
    c = Client("dev", port=port, protocol=3, clean_session=False)
    c.set_will("dev/status", "offline", qos=1, retain=True)
    c.set_username_pw("alice", "secret")
    c.connect("h", 30, port=8883, start_loop=False)
    first, body = port.broker.received[0]
    assert first == 0x10
    assert body == (
        b"\x00\x06MQIsdp" + b"\x03"  # MQTT 3.1 name and level
        + bytes([0x80 | 0x40 | 0x20 | 0x08 | 0x04])  # user, password, will retain/qos1/will
        + b"\x00\x1e"  # keepalive 30
        + b"\x00\x03dev"
        + b"\x00\x0adev/status" + b"\x00\x07offline"
        + b"\x00\x05alice" + b"\x00\x06secret"
    )


def test_connack_refused_sets_rc_and_raises():
    port = FakePort()
    port.broker.connack_rc = 5
    c = Client("c", port=port)
    with pytest.raises(MQTTError) as ei:
        c.connect("h", 60, start_loop=False)
    assert ei.value.code == E.ERR_CONN_REFUSED
    assert "not authorised" in str(ei.value) and "CONNACK 5" in str(ei.value)
    assert c.get_rc() == 5 and not c.connected()
    assert port.net.closed


def test_no_connack_times_out_at_command_timeout():
    port = FakePort()
    port.broker.auto_connack = False
    c = Client("c", port=port, command_timeout=3000, cycle_timeout=500)
    with pytest.raises(MQTTError) as ei:
        c.connect("h", 60, start_loop=False)
    assert ei.value.code == E.ERR_TIMEOUT and "CONNACK" in str(ei.value)
    assert 3000 <= port.clock.now <= 3000 + 500
    assert c.get_rc() == -1 and port.net.closed


def test_first_packet_not_connack_is_a_protocol_error():
    port = FakePort()
    port.broker.auto_connack = False
    c = Client("c", port=port)
    port.Network  # noqa: B018
    # the broker answers CONNECT with a PINGRESP
    port.broker.on_packet = lambda first, body: port.broker.send(b"\xd0\x00")
    with pytest.raises(MQTTError) as ei:
        c.connect("h", 60, start_loop=False)
    assert ei.value.code == E.ERR_PROTOCOL and "MQTT-3.2.0-1" in str(ei.value)


def test_open_failure_is_raised_and_rc_is_minus_one():
    port = FakePort()
    port.open_error = OSError(errno.ECONNREFUSED, "refused")
    c = Client("c", port=port)
    with pytest.raises(OSError):
        c.connect("h", 60, start_loop=False)
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
    assert len(port.networks) == 3


def test_empty_client_id_rules():
    with pytest.raises(ValueError, match="MQTT-3.1.3-7"):
        Client("", clean_session=False, port=FakePort())
    with pytest.raises(ValueError):
        Client("", protocol=3, port=FakePort())
    c, port = connected_client(client_id="")
    assert port.broker.received[0][1].endswith(b"\x00\x00")  # empty id sent as such


def test_password_never_in_repr_or_errors():
    port = FakePort()
    port.broker.connack_rc = 4
    c = Client("c", port=port)
    c.set_username_pw("alice", "hunter2-secret")
    with pytest.raises(MQTTError) as ei:
        c.connect("h", 60, start_loop=False)
    assert "hunter2" not in repr(c) and "hunter2" not in str(ei.value)
    assert "hunter2" not in repr(ei.value)


# ---- publish --------------------------------------------------------------------------


def test_publish_qos0_one_write_exact_bytes():
    c, port = connected_client()
    n = len(port.net.writes)
    assert c.publish(b"a/b", b"hello") == 0
    assert port.net.writes[n:] == [b"\x30\x0a\x00\x03a/bhello"]


def test_publish_large_payload_goes_in_two_writes_without_copy():
    c, port = connected_client(send_buffer=64)
    n = len(port.net.writes)
    payload = bytes(range(200))
    c.publish("t", payload, qos=0, retain=True)
    assert port.net.writes[n:] == [b"\x31\xcb\x01\x00\x01t", payload]


def test_publish_qos1_waits_for_puback():
    c, port = connected_client()
    n = len(port.net.writes)
    assert c.publish("t/1", "x", qos=1) == 1
    assert port.net.writes[n] == b"\x32\x08\x00\x03t/1\x00\x01x"
    assert c.publish("t/1", "y", qos=1) == 2  # next packet id


def test_publish_qos2_full_flow():
    c, port = connected_client()
    pid = c.publish("q2", b"m", qos=2)
    assert pid == 1
    types = port.broker.types_received()
    assert types[-2:] == [pk.PUBLISH, pk.PUBREL]
    assert port.net.writes[-1] == b"\x62\x02\x00\x01"  # PUBREL, flags 0010 [MQTT-3.6.1-1]


def test_publish_qos1_without_puback_returns_at_command_timeout_and_stays_pending():
    # Accepted messages never raise later: the call returns after command_timeout and
    # the message stays in the session until its PUBACK comes.
    done = []
    c, port = connected_client(command_timeout=2000)
    c.on_publish = lambda cl, pid: done.append(pid)
    port.broker.auto_puback = False
    t0 = port.clock.now
    assert c.publish("t", "x", qos=1) == 1
    assert 2000 <= port.clock.now - t0 <= 2000 + 500
    assert c.pending() == 1 and done == []
    port.broker.send(b"\x40\x02\x00\x01")  # the late PUBACK completes it
    c.cycle()
    assert c.pending() == 0 and done == [1]
    assert c.session.payloads == [None] * 20  # the message is let go


def test_publish_qos2_without_pubcomp_returns_and_stays_pending():
    c, port = connected_client(command_timeout=1000)
    port.broker.auto_pubcomp = False
    assert c.publish("t", "x", qos=2) == 1
    assert c.pending() == 1 and c.session.states[0] == 3  # waits for PUBCOMP
    port.broker.send(b"\x70\x02\x00\x01")
    c.cycle()
    assert c.pending() == 0


def test_publish_raises_only_before_accepting():
    c, port = connected_client(send_buffer=32)
    with pytest.raises(MQTTError) as ei:
        c.publish("t" * 40, "x", qos=1)  # header cannot fit the send buffer
    assert ei.value.code == E.ERR_PAYLOAD_SIZE
    assert c.pending() == 0 and list(c.session.states) == [0] * 20  # nothing kept
    with pytest.raises(ValueError):
        c.publish("a/#", "x", qos=2)
    assert c.pending() == 0
    c.disconnect()
    with pytest.raises(MQTTError) as ei:
        c.publish("t", "x", qos=1)
    assert ei.value.code == E.ERR_NO_CONN and c.pending() == 0


def test_publish_whose_write_fails_is_accepted_and_resent_after_reconnect():
    c, port = connected_client(client_id="r", clean_session=False)
    port.write_error = OSError(errno.EPIPE, "broken pipe")
    c.on_log = lambda *a: None
    assert c.publish(b"t", b"keep", qos=1) == 1  # no exception: accepted
    assert not c.connected() and c.pending() == 1
    port.write_error = None
    port.broker.session_present = 1
    assert c.reconnect() == 0
    # resent with DUP and the same packet id [MQTT-4.4.0-1]
    assert port.net.writes[1] == b"\x3a\x09\x00\x01t\x00\x01keep"
    c.cycle()  # PUBACK
    assert c.pending() == 0


def test_unacked_messages_resent_in_order_with_dup_and_pubrel_for_pubrecd():
    c, port = connected_client(client_id="r", clean_session=False)
    port.broker.auto_puback = False
    port.broker.auto_pubcomp = False
    assert c.publish(b"a", b"1", qos=1, wait=False) == 1
    assert c.publish(b"b", b"2", qos=2, wait=False) == 2  # PUBREC comes, PUBCOMP not
    assert c.publish(b"c", b"3", qos=1, retain=True, wait=False) == 3
    c.cycle()  # reads the PUBREC of 2, sends PUBREL
    assert c.pending() == 3
    port.net.eof = True
    with pytest.raises(OSError):
        c.cycle()
    port.broker.session_present = 1
    port.broker.auto_puback = True
    port.broker.auto_pubcomp = True
    assert c.reconnect() == 0
    assert port.net.writes[1:] == [
        b"\x3a\x06\x00\x01a\x00\x011",  # PUBLISH DUP QoS 1, id 1
        b"\x62\x02\x00\x02",  # PUBREL id 2: the broker has it [MQTT-4.4.0-1]
        b"\x3b\x06\x00\x01c\x00\x033",  # PUBLISH DUP QoS 1 retain, id 3
    ]
    while c.cycle():
        pass
    assert c.pending() == 0


def test_without_a_session_pubrecd_qos2_is_published_again():
    c, port = connected_client()
    port.broker.auto_pubcomp = False
    c.publish(b"q", b"2", qos=2, wait=False)
    c.cycle()  # PUBREC -> PUBREL sent, waits for PUBCOMP
    port.net.eof = True
    with pytest.raises(OSError):
        c.cycle()
    port.broker.session_present = 0
    assert c.reconnect() == 0
    assert port.net.writes[1] == b"\x3c\x06\x00\x01q\x00\x012"  # PUBLISH DUP QoS 2


def test_mutable_payload_is_copied_on_accept():
    c, port = connected_client(clean_session=False)
    port.broker.auto_puback = False
    buf = bytearray(b"AAAA")
    c.publish(b"t", buf, qos=1, wait=False)
    buf[:] = b"BBBB"  # the application reuses its buffer
    port.net.eof = True
    with pytest.raises(OSError):
        c.cycle()
    port.broker.session_present = 1
    c.reconnect()
    assert port.net.writes[1].endswith(b"AAAA")


def test_flush_waits_for_every_ack():
    c, port = connected_client(command_timeout=5000)
    for k in range(5):
        c.publish(b"t", b"%d" % k, qos=1, wait=False)
    assert c.pending() == 5
    assert c.flush() is True and c.pending() == 0
    port.broker.auto_puback = False
    c.publish(b"t", b"x", qos=1, wait=False)
    t0 = port.clock.now
    assert c.flush(1500) is False and 1500 <= port.clock.now - t0 <= 2000


def test_insecure_tls_context_is_refused_unless_opted_out():
    class Ctx:
        verify_mode = 0  # CERT_NONE
        check_hostname = False

    port = FakePort()
    c = Client("c", port=port)
    with pytest.raises(MQTTError) as ei:
        c.connect("h", 60, ssl_ctx=Ctx(), start_loop=False)
    assert ei.value.code == E.ERR_TLS and "tls_insecure" in str(ei.value)
    assert port.networks == []  # refused before touching the network
    c.tls_insecure = True
    c.connect("h", 60, ssl_ctx=Ctx(), start_loop=False)
    assert port.net.open_args[2] is not None


def test_publish_argument_errors():
    c, port = connected_client()
    with pytest.raises(ValueError, match="qos"):
        c.publish("t", "x", qos=3)
    with pytest.raises(ValueError, match="MQTT-3.3.2-2"):
        c.publish("a/+", "x")
    with pytest.raises(ValueError, match="MQTT-4.7.3-1"):
        c.publish("", "x")
    c.disconnect()
    with pytest.raises(MQTTError) as ei:
        c.publish("t", "x")
    assert ei.value.code == E.ERR_NO_CONN


def inbound_ids(c):
    """The inbound QoS 2 ids awaiting PUBREL in the client's session."""
    ids = c.session.in_ids
    return [ids[i] << 8 | ids[i + 1] for i in range(0, len(ids), 2) if ids[i] | ids[i + 1]]


def test_inflight_table_full_waits_command_timeout_then_raises():
    c, port = connected_client(max_inflight=1, command_timeout=3000)
    i = c.session.take(8)  # one SUBSCRIBE already waiting, its ack never comes
    t0 = port.clock.now
    with pytest.raises(MQTTError) as ei:
        c.publish("t", "x", qos=1)
    assert ei.value.code == E.ERR_QUEUE_SIZE and "max_inflight" in str(ei.value)
    assert 3000 <= port.clock.now - t0 <= 3500
    assert pk.PUBLISH not in port.broker.types_received()  # nothing was sent
    c.session.free(i)
    assert c.publish("t", "x", qos=1) > 0


def test_callback_publishes_do_not_nest_and_free_their_slots_on_ack():
    c, port = connected_client(max_inflight=2)
    port.broker.auto_puback = False  # acks come later, in a burst
    sent = []
    c.subscribe("ask", lambda cl, p, t: sent.append(cl.publish("reply", p, qos=1)))
    for k in range(2):
        port.broker.send(publish_bytes(b"ask", b"q%d" % k))
        c.cycle()
    assert len(sent) == 2 and c._nest == 0
    assert [s for s in c.session.states] == [1, 1]  # both wait for PUBACK, no waiter
    port.broker.send(b"\x40\x02" + sent[0].to_bytes(2, "big"))
    port.broker.send(b"\x40\x02" + sent[1].to_bytes(2, "big"))
    c.cycle()
    c.cycle()
    assert list(c.session.states) == [0, 0]


def test_callback_publish_with_full_table_reads_nested_until_an_ack_frees_a_slot():
    c, port = connected_client(max_inflight=1)
    port.broker.auto_puback = False
    sent = []
    c.subscribe("ask", lambda cl, p, t: sent.append(cl.publish("reply", p, qos=1)))
    port.broker.send(publish_bytes(b"ask", b"q0"))
    c.cycle()  # slot taken by reply 0
    port.broker.send(publish_bytes(b"ask", b"q1"))
    port.broker.send(b"\x40\x02" + sent[0].to_bytes(2, "big"))  # ack of reply 0
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
    assert port.net.writes[-1] == b"\x82\x0a\x00\x01\x00\x05a/+/c\x02"
    port.broker.auto_suback = 1
    assert c.subscribe("b", lambda *a: None, qos=2) == 1  # broker downgraded


def test_subscribe_refused_raises_and_forgets_the_function():
    c, port = connected_client()
    port.broker.auto_suback = 0x80
    with pytest.raises(MQTTError) as ei:
        c.subscribe("secret/#", lambda *a: None, qos=1)
    assert ei.value.code == E.ERR_SUBSCRIBE_REFUSED and "0x80" in str(ei.value)
    assert c._handlers == []


def test_subscribe_before_connect_is_sent_after_connack_unless_session_present():
    port = FakePort()
    c = Client("c", port=port, clean_session=False)
    assert c.subscribe("cmd/#", lambda *a: None, qos=1) is None
    c.connect("h", 60, start_loop=False)
    assert port.broker.types_received() == [pk.CONNECT, pk.SUBSCRIBE]
    port.broker.session_present = 1
    assert c.reconnect() == 0 and c.session_present
    assert port.broker.types_received() == [pk.CONNECT, pk.SUBSCRIBE, pk.CONNECT]


def test_unsubscribe_sends_and_waits_for_unsuback():
    c, port = connected_client()
    c.subscribe("x", lambda *a: None)
    c.unsubscribe("x")
    assert port.net.writes[-1] == b"\xa2\x05\x00\x02\x00\x01x"
    assert c._handlers == []


# ---- inbound messages -----------------------------------------------------------------


def test_inbound_qos0_and_qos1_delivered_then_acked():
    got = []
    c, port = connected_client()
    c.subscribe("s/#", lambda cl, p, t: got.append((t, p, len(port.net.writes))))
    port.broker.send(publish_bytes(b"s/0", b"zero"))
    port.broker.send(publish_bytes(b"s/1", b"one", qos=1, pid=7))
    assert c.cycle() == pk.PUBLISH and c.cycle() == pk.PUBLISH
    n = len(port.net.writes)
    assert [g[:2] for g in got] == [("s/0", b"zero"), ("s/1", b"one")]
    assert port.net.writes[-1] == b"\x40\x02\x00\x07"  # PUBACK after the callback ran
    assert got[1][2] == n - 1


def test_inbound_qos2_delivered_exactly_once():
    got = []
    c, port = connected_client()
    c.subscribe("q", lambda cl, p, t: got.append(p), qos=2)
    msg = publish_bytes(b"q", b"once", qos=2, pid=9)
    dup = bytes([msg[0] | 0x08]) + msg[1:]
    port.broker.send(msg)
    c.cycle()
    assert port.net.writes[-1] == b"\x50\x02\x00\x09"  # PUBREC
    port.broker.send(dup)  # redelivered before PUBREL: acked, not delivered
    c.cycle()
    assert got == [b"once"] and port.net.writes[-1] == b"\x50\x02\x00\x09"
    port.broker.send(b"\x62\x02\x00\x09")  # PUBREL
    c.cycle()
    assert port.net.writes[-1] == b"\x70\x02\x00\x09"  # PUBCOMP
    port.broker.send(msg)  # same id after release: a new message
    c.cycle()
    assert got == [b"once", b"once"]


def test_inbound_qos2_table_full_of_this_connections_ids_closes_the_link_never_duplicates():
    # MQTT 3.1.1 sets no limit on QoS 2 messages awaiting PUBREL. Forgetting an id of
    # this connection could deliver a message twice, so the link is closed instead:
    # after the reconnect the broker resends the PUBRELs and the message.
    got = []
    c, port = connected_client(max_inflight_in=2, clean_session=False)
    c.on_message = lambda cl, p, t: got.append(p)
    c.on_log = lambda *a: None
    for pid in (1, 2):
        port.broker.send(publish_bytes(b"q", b"m%d" % pid, qos=2, pid=pid))
        c.cycle()
    port.broker.send(publish_bytes(b"q", b"m3", qos=2, pid=3))
    with pytest.raises(MQTTError) as ei:
        c.cycle()
    assert ei.value.code == E.ERR_QUEUE_SIZE and not c.connected()
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
        port.broker.send(publish_bytes(b"q", b"m%d" % pid, qos=2, pid=pid))
        c.cycle()
    port.broker.session_present = 1
    for _ in range(4):
        port.net.eof = True
        with pytest.raises(OSError):
            c.cycle()
        assert c.reconnect() == 0
        # the broker redelivers 1 each time (our PUBREC was lost); never mentions 2
        port.broker.send(publish_bytes(b"q", b"m1", qos=2, pid=1, dup=True))
        c.cycle()
    port.broker.send(publish_bytes(b"q", b"m3", qos=2, pid=3))
    c.cycle()
    assert got == [b"m1", b"m2", b"m3"] and c.connected()
    assert c.session.evicted == 1 and any("stale QoS 2 id 2" in t for t in logs)
    assert sorted(inbound_ids(c)) == [1, 3]


def test_unmatched_messages_go_to_on_message_or_are_counted():
    got = []
    logs = []
    c, port = connected_client()
    c.on_log = lambda cl, lvl, text: logs.append(text)
    port.broker.send(publish_bytes(b"early", b"1", qos=1, pid=1))
    c.cycle()
    assert c.unhandled == 1 and any("no function" in t for t in logs)
    assert port.net.writes[-1] == b"\x40\x02\x00\x01"  # still acked
    c.on_message = lambda cl, p, t: got.append((t, p))
    port.broker.send(publish_bytes(b"early", b"2"))
    c.cycle()
    assert got == [("early", b"2")]


def test_overlapping_filters_each_get_the_message_and_wildcards_match():
    got = []
    c, port = connected_client()
    c.subscribe("home/+/temp", lambda cl, p, t: got.append(("plus", t)))
    c.subscribe("home/#", lambda cl, p, t: got.append(("hash", t)))
    c.subscribe("#", lambda cl, p, t: got.append(("all", t)))
    port.broker.send(publish_bytes(b"home/kitchen/temp", b"21"))
    port.broker.send(publish_bytes(b"$SYS/x", b"1"))
    c.on_message = lambda cl, p, t: got.append(("default", t))
    c.cycle()
    c.cycle()
    assert got == [
        ("plus", "home/kitchen/temp"),
        ("hash", "home/kitchen/temp"),
        ("all", "home/kitchen/temp"),
        ("default", "$SYS/x"),  # '#' does not match '$' topics [MQTT-4.7.2-1]
    ]


def test_callback_that_raises_is_reported_and_message_still_acked():
    logs = []
    c, port = connected_client()
    c.on_log = lambda cl, lvl, text: logs.append((lvl, text))

    def bad(cl, p, t):
        raise RuntimeError("boom")

    c.subscribe("t", bad, qos=1)
    port.broker.send(publish_bytes(b"t", b"x", qos=1, pid=3))
    assert c.cycle() == pk.PUBLISH
    assert c.connected() and port.net.writes[-1] == b"\x40\x02\x00\x03"
    assert any("boom" in text for _, text in logs)


def test_callback_can_publish_qos1_nested():
    c, port = connected_client()
    seen = []

    def echo(cl, p, t):
        seen.append(cl.publish("echo", p, qos=1))

    c.subscribe("in", echo)
    port.broker.send(publish_bytes(b"in", b"ping"))
    c.cycle()
    assert seen == [2]  # pid 1 was the SUBSCRIBE
    assert port.broker.types_received()[-1] == pk.PUBLISH


def test_deliver_views_gives_memoryviews_without_copy():
    got = []
    c, port = connected_client()
    c.deliver_views = True
    c.subscribe("v", lambda cl, p, t: got.append((type(p), bytes(t), bytes(p))))
    port.broker.send(publish_bytes(b"v", b"data"))
    c.cycle()
    assert got == [(memoryview, b"v", b"data")]


def test_partial_reads_reassemble_packets():
    got = []
    c, port = connected_client()
    port.net.chunk = 1  # the network hands over one byte per read
    c.subscribe("p", lambda cl, p, t: got.append(p), qos=1)
    port.broker.send(publish_bytes(b"p", b"x" * 300, qos=1, pid=5))
    c.cycle()
    assert got == [b"x" * 300]


# ---- bad input from the broker --------------------------------------------------------


@pytest.mark.parametrize(
    "garbage, rule",
    [
        (b"\xf0\x00", "reserved packet type 15"),
        (b"\x00\x00", "reserved packet type 0"),
        (b"\x41\x02\x00\x01", "MQTT-2.2.2-1"),  # PUBACK with flag bits
        (b"\x36\x05\x00\x01t\x00\x01", "MQTT-3.3.1-4"),  # QoS 3
        (b"\x38\x04\x00\x01tx", "MQTT-3.3.1-2"),  # DUP at QoS 0
        (b"\x32\x05\x00\x01t\x00\x00", "MQTT-2.3.1-1"),  # packet id 0
        (b"\x30\x05\x00\x01+xy", "MQTT-3.3.2-2"),  # wildcard topic
        (b"\x30\x05\x00\x02\xc0\x80x", "MQTT-1.5.3-1"),  # overlong UTF-8
        (b"\x30\xff\xff\xff\xff\x01", "longer than 4 bytes"),
        (b"\x20\x02\x00\x00", "CONNACK"),  # a second CONNACK
        (b"\x82\x04\x00\x01\x00\x00", "SUBSCRIBE"),  # only a client sends it
        (b"\xd0\x01\x00", "PINGRESP remaining length"),
    ],
)
def test_garbage_from_broker_closes_the_session_with_a_clear_error(garbage, rule):
    calls = []
    c, port = connected_client()
    c._loop_failure = lambda cl: calls.append(cl.last_error) or BREAK_LOOP
    port.broker.send(garbage)
    with pytest.raises(MQTTError) as ei:
        c.cycle()
    assert ei.value.code == E.ERR_PROTOCOL and rule in str(ei.value)
    assert not c.connected() and port.net.closed
    assert calls == [ei.value]


def test_stall_mid_packet_is_bounded_by_command_timeout():
    c, port = connected_client(command_timeout=4000)
    port.broker.send(b"\x30\x0a\x00")  # PUBLISH that stops after 3 bytes
    t0 = port.clock.now
    with pytest.raises(MQTTError) as ei:
        c.cycle()
    assert ei.value.code == E.ERR_TIMEOUT and "mid-packet" in str(ei.value)
    assert 4000 <= port.clock.now - t0 <= 4000 + 1


def test_close_mid_packet_raises_at_once():
    c, port = connected_client(command_timeout=4000)
    port.broker.send(b"\x30\x0a\x00\x03a/")
    port.net.eof = True
    t0 = port.clock.now
    with pytest.raises(OSError):
        c.cycle()
    assert port.clock.now == t0  # EOF is not mistaken for a timeout
    assert not c.connected()


def test_eof_between_packets_is_a_failure_not_a_timeout():
    c, port = connected_client()
    port.net.eof = True
    with pytest.raises(OSError):
        c.cycle()
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
    c, port = connected_client(max_packet_size=64)
    c.on_log = lambda cl, lvl, text: logs.append(text)
    c._loop_failure = lambda cl: pytest.fail("loop_failure must not be called")
    c.subscribe("big", lambda cl, p, t: got.append(p), qos=1)
    port.broker.send(publish_bytes(b"big", b"y" * 1000, qos=1, pid=11))
    port.broker.send(publish_bytes(b"big", b"small", qos=1, pid=12))
    c.cycle()
    c.cycle()
    assert c.oversize_dropped == 1 and got == [b"small"]
    acks = [w for w in port.net.writes if w[0] == 0x40]
    assert acks == [b"\x40\x02\x00\x0b", b"\x40\x02\x00\x0c"]
    assert any("1007" in t or "max_packet_size" in t for t in logs)
    assert c.connected()


# ---- keepalive ------------------------------------------------------------------------


def test_pingreq_at_half_keepalive_when_idle_and_pingresp_clears_it():
    c, port = connected_client(keepalive=10, cycle_timeout=500)
    t0 = port.clock.now
    while pk.PINGREQ not in port.broker.types_received():
        c.cycle()
    assert port.clock.now - t0 == 5000
    assert port.net.writes[-1] == b"\xc0\x00"
    c.cycle()  # reads the PINGRESP
    assert c._ping_sent is None


def test_missing_pingresp_is_a_dead_link_within_1_5_keepalive():
    calls = []
    c, port = connected_client(keepalive=10, cycle_timeout=500)
    c._loop_failure = lambda cl: calls.append(cl.last_error) or BREAK_LOOP
    port.broker.auto_pingresp = False
    t0 = port.clock.now
    with pytest.raises(MQTTError) as ei:
        while True:
            c.cycle()
    assert ei.value.code == E.ERR_KEEPALIVE
    assert port.clock.now - t0 <= 15000  # last traffic at t0: 1.5 x keepalive
    assert len(calls) == 1 and not c.connected()


def test_pings_continue_while_waiting_for_an_ack():
    c, port = connected_client(keepalive=4, command_timeout=10000)
    port.broker.auto_puback = False
    c.publish("t", "x", qos=1)
    assert port.broker.types_received().count(pk.PINGREQ) >= 2


def test_keepalive_zero_never_pings():
    c, port = connected_client(keepalive=0)
    for _ in range(100):
        c.cycle()
    assert pk.PINGREQ not in port.broker.types_received()


# ---- loop_failure ---------------------------------------------------------------------


def test_loop_failure_recovered_reconnects_and_cycle_returns_minus_one():
    def hook(cl):
        assert isinstance(cl.last_error, OSError)
        return RECOVERED if cl.reconnect() == 0 else BREAK_LOOP

    c, port = connected_client()
    c._loop_failure = hook
    c.subscribe("s", lambda *a: None, qos=1)
    port.net.eof = True
    assert c.cycle() == -1
    assert c.connected() and len(port.networks) == 2
    # the subscription was renewed on the new connection (no session)
    assert port.broker.types_received()[-2:] == [pk.CONNECT, pk.SUBSCRIBE]


def test_loop_failure_that_raises_ends_the_loop_with_the_original_error():
    c, port = connected_client()

    def hook(cl):
        raise ValueError("hook bug")

    c._loop_failure = hook
    c.on_log = lambda *a: None
    port.net.eof = True
    with pytest.raises(OSError):
        c.cycle()


def test_write_failure_closes_the_session():
    c, port = connected_client()
    port.write_error = OSError(errno.EPIPE, "broken pipe")
    with pytest.raises(OSError):
        c.publish("t", "x")
    assert not c.connected() and port.net.closed


def test_disconnect_sends_disconnect_and_closes():
    c, port = connected_client()
    c.disconnect()
    assert port.net.writes[-1] == b"\xe0\x00" and port.net.closed and not c.connected()


def test_cycle_without_threads_port_and_loop_refused():
    port = FakePort()
    c = Client("c", port=port)
    with pytest.raises(MQTTError) as ei:
        c.connect("h", 60)  # start_loop=True on a port without threads
    assert ei.value.code == E.ERR_NOT_SUPPORTED and "cycle()" in str(ei.value)


def test_callback_burst_beyond_table_and_nesting_gets_a_clear_error_and_is_still_acked():
    # Replies from callbacks to a burst larger than max_inflight + nesting: the callback
    # that finds no room gets ERR_QUEUE_SIZE (its reply was not accepted: it may retry),
    # reported through on_log; the inbound messages are all acked.
    c, port = connected_client(max_inflight=1)
    port.broker.auto_puback = False
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
        port.broker.send(publish_bytes(b"ask", b"q%d" % k, qos=1, pid=100 + k))
    while c.cycle():
        pass
    assert errors and set(errors) == {E.ERR_QUEUE_SIZE}
    assert any("nested" in t for t in logs)
    acked = sorted(w[3] for w in port.net.writes if w[0] == 0x40)
    assert acked == [100 + k for k in range(7)] and c.connected() and c._nest == 0


def test_received_message_flags_are_visible_to_the_callback():
    seen = []
    c, port = connected_client()
    c.on_message = lambda cl, p, t: seen.append((cl.last_qos, cl.last_retain, cl.last_dup,
                                                 cl.last_mid))
    port.broker.send(publish_bytes(b"r", b"x", qos=0, retain=True))
    port.broker.send(publish_bytes(b"r", b"y", qos=1, pid=42, dup=True))
    c.cycle()
    c.cycle()
    assert seen == [(0, 1, 0, 0), (1, 0, 1, 42)]


def test_send_subscribe_many_filters_in_one_packet_without_waiting():
    # the paho layer's SUBSCRIBE of a list: through the core's _command, without waiting
    got = []
    c, port = connected_client()
    c.on_subscribe = lambda cl, pid, granted: got.append((pid, bytes(granted)))
    port.broker.auto_suback = None  # answer by hand: a multi-filter SUBACK
    pid = paho.send_subscribe(c, [("a/#", 1), (b"b/+", 2)])
    assert port.net.writes[-1] == b"\x82\x0e\x00\x01\x00\x03a/#\x01\x00\x03b/+\x02"
    assert c._handlers == []  # nothing registered: messages go to on_message
    port.broker.send(b"\x90\x04\x00\x01\x01\x80")
    c.cycle()
    assert got == [(pid, b"\x01\x80")] and list(c.session.states) == [0] * 20
    unsub = []
    c.on_unsubscribe = lambda cl, pid: unsub.append(pid)
    pid = paho.send_unsubscribe(c, ["a/#", "b/+"])
    c.cycle()
    assert unsub == [pid]


def test_topic_checks_are_skipped_only_for_the_same_immutable_topic():
    c, port = connected_client()
    topic = b"sensors/1/temp"
    c.publish(topic, b"1")
    assert c._topic_ok is topic
    c.publish(topic, b"2")  # same bytes object: valid, not scanned again
    t = bytearray(b"ok/topic")
    c.publish(t, b"x")
    t[0:1] = b"+"  # a mutable topic changed after it was checked: checked again
    with pytest.raises(ValueError, match="MQTT-3.3.2-2"):
        c.publish(t, b"x")
    assert port.net.writes[-1].endswith(b"ok/topicx")


def test_queue_offline_keeps_qos1_messages_and_sends_them_first_time_without_dup():
    c, port = connected_client(max_inflight=2)
    port.net.eof = True
    with pytest.raises(OSError):
        c.cycle()
    with pytest.raises(MQTTError):  # off by default: raise, not accepted
        c.publish(b"t", b"x", qos=1)
    c.queue_offline = True
    assert c.publish(b"t", b"a", qos=1) == 1
    with pytest.raises(ValueError):  # still validated before accepting
        c.publish(b"t/#", b"d", qos=1)
    assert c.pending() == 1
    pid_b = c.publish(b"t", b"b", qos=2)
    with pytest.raises(MQTTError) as ei:  # table full: refused, not kept
        c.publish(b"t", b"c", qos=1)
    assert ei.value.code == E.ERR_QUEUE_SIZE and c.pending() == 2
    assert c.reconnect() == 0
    assert port.net.writes[1:3] == [  # DUP 0: these never went out before
        b"\x32\x06\x00\x01t\x00\x01a",
        b"\x34\x06\x00\x01t" + bytes([0, pid_b]) + b"b",
    ]
    while c.cycle():
        pass
    assert c.pending() == 0


def test_lost_suback_of_send_subscribe_does_not_keep_its_slot():
    c, port = connected_client(max_inflight=1)
    port.broker.auto_suback = None
    paho.send_subscribe(c, [("x", 1)])
    assert c.session.states[0] != 0
    port.net.eof = True
    with pytest.raises(OSError):
        c.cycle()
    assert c.reconnect() == 0 and list(c.session.states) == [0]
    assert c.publish(b"t", b"x", qos=1) == 2
