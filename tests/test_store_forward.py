# Store and forward in the client (docs/store-and-forward.md), on the in-memory broker
# and fake clock of umqtt_paho.testing: the outbox (RAM ring) and the flash log wired
# into publish(), the drain after CONNACK, resets and packet ids. The live proof with
# mosquitto and the fault proxy is tests/test_store_forward_live.py; allocation on the
# MicroPython VM is tests/vm/test_vm_store.py. (The FlashLog's own RELEASED mark and
# pending(after) are in test_flashlog.py, a publish racing a refill in test_faults.py,
# the forward module's import and structure in test_codec_isolation.py.)
#
# Runs on CPython (pytest collects it) and inside the 32-bit MicroPython VM on the .mpy
# build (tests/test_vm.py): plain test functions and asserts, no pytest, no f-strings.

from umqtt_paho import Client
from umqtt_paho.errors import ERR_NO_CONN, ERR_PAYLOAD_SIZE, ERR_QUEUE_SIZE
from umqtt_paho.flashlog import FlashLog, REFUSE_NEW
from umqtt_paho.outbox import DROP_NEWEST, DROP_OLDEST, RAISE, Outbox

from fakenet import FakePort, arg_error, fresh_dir, mqtt_error, raises, remove_dir


def port_with_subscriber():
    # An in-memory broker with a QoS 2 subscriber to s/# collecting payloads.
    port = FakePort()
    sub = Client("sub", clean_session=False, port=port)
    sub.connect("broker.test", 60, start_loop=False)
    got = []
    sub.subscribe("s/#", lambda cl, p, t: got.append(p), 2)
    return port, sub, got


def offline_client(port, **kw):
    port.broker.unreachable = True
    return Client("dev", clean_session=False, port=port, **kw)


def connect(client, port):
    port.broker.unreachable = False
    client.connect("broker.test", 60, start_loop=False)


def run_until_flushed(client, cycles=5000):
    for _ in range(cycles):
        if not client.pending():
            return
        client.cycle(10)
    raise AssertionError("still %d pending after %d cycles" % (client.pending(), cycles))


def payloads(port, topic="#"):
    # What the broker got from "dev", resends of a message it already had left out.
    return port.broker.payloads(topic, sender="dev")


def sent(port, topic="s/t"):
    # Every PUBLISH the broker got from "dev", resends included.
    return [m for m in port.broker.received if m.sender == "dev" and m.topic == topic]


def nums(n, start=0):
    return [b"%d" % k for k in range(start, start + n)]


# ---- the RAM outbox -----------------------------------------------------------------


def test_offline_publishes_queue_and_go_out_in_order_after_connect():
    port = FakePort()
    c = offline_client(port, outbox=Outbox(4096))
    for k in range(60):
        qos = 1 + k % 2
        assert c.publish(b"s/t", b"%d" % k, qos, retain=k == 59) == 0  # queued: no id yet
    assert c.pending() == 60 and c.outbox.unsent == 60
    connect(c, port)
    run_until_flushed(c)
    got = port.broker.messages("s/t", sender="dev")
    assert [m.payload for m in got] == nums(60)
    assert [m.qos for m in got] == [1 + k % 2 for k in range(60)]
    assert [m.retain for m in got] == [k == 59 for k in range(60)]
    assert not any(m.dup for m in got)  # never sent before: DUP 0 [MQTT-3.3.1-1]
    assert c.outbox.count == 0 and c.outbox.used == 0  # acked records left the ring
    assert port.broker.retained["s/t"] == b"59"


def test_drop_oldest_keeps_the_newest_and_counts():
    port = FakePort()
    ob = Outbox(11 * 10 + 10 * (3 + 2), DROP_OLDEST)  # ten records of topic 3, payload 2
    c = offline_client(port, outbox=ob)
    for k in range(25):
        c.publish(b"s/t", b"%02d" % k, 1)
    assert ob.dropped == 15 and c.pending() == 10
    connect(c, port)
    run_until_flushed(c)
    assert payloads(port) == [b"%02d" % k for k in range(15, 25)]


def test_drop_newest_keeps_the_oldest_and_counts():
    port = FakePort()
    ob = Outbox(11 * 10 + 10 * 5, DROP_NEWEST)
    c = offline_client(port, outbox=ob)
    for k in range(25):
        assert c.publish(b"s/t", b"%02d" % k, 1) == 0
    assert ob.dropped == 15
    connect(c, port)
    run_until_flushed(c)
    assert payloads(port) == [b"%02d" % k for k in range(10)]


def test_raise_policy_refuses_before_accepting():
    port = FakePort()
    ob = Outbox(11 * 3 + 3 * 5, RAISE)
    c = offline_client(port, outbox=ob)
    for k in range(3):
        c.publish(b"s/t", b"%02d" % k, 1)
    e = mqtt_error(ERR_QUEUE_SIZE, c.publish, b"s/t", b"03", 1)
    assert "outbox full" in str(e)
    assert ob.dropped == 0 and c.pending() == 3
    connect(c, port)
    run_until_flushed(c)
    assert payloads(port) == [b"00", b"01", b"02"]  # the refused one never went out


def test_bad_messages_raise_before_they_are_queued():
    port = FakePort()
    c = offline_client(port, outbox=Outbox(64), send_buffer=16)
    arg_error("wildcard", c.publish, b"s/#", b"x", 1)
    arg_error("does not fit the outbox", c.publish, b"s/t", b"x" * 60, 1)
    # its header can never be sent
    mqtt_error(ERR_PAYLOAD_SIZE, c.publish, b"a/very/long/topic", b"x", 1)
    arg_error("qos", c.publish, b"s/t", b"x", 3)
    assert c.pending() == 0 and c.outbox.count == 0


def test_large_payload_goes_out_from_the_ring_in_two_writes():
    port = FakePort()
    c = offline_client(port, outbox=Outbox(4096), send_buffer=64)
    big = bytes(range(256)) * 8  # 2 KB: larger than the send buffer
    c.publish(b"s/big", big, 2)
    connect(c, port)
    run_until_flushed(c)
    assert payloads(port) == [big]


def test_window_full_while_connected_queues_instead_of_blocking():
    # No PUBACKs: the window (max_inflight - 1 slots: one stays free for SUBSCRIBE)
    # fills, later publishes queue and return at once; a reconnect resends the
    # window (DUP) and then the queue, in order.
    port = FakePort()
    c = Client("dev", clean_session=False, port=port, outbox=Outbox(8192), max_inflight=5)
    connect(c, port)
    port.broker.puback = False
    t0 = port.clock.now
    pids = [c.publish(b"s/t", b"%d" % k, 1, wait=False) for k in range(30)]
    assert port.clock.now == t0  # nothing waited for a slot
    assert all(pids[:4]) and pids[4:] == [0] * 26  # 4 sent, 26 queued
    assert c.pending() == 30
    assert c.subscribe("cmd", lambda *a: None, 1) == 1  # the spare slot
    port.broker.puback = True
    port.broker.cut()
    raises(OSError, c.cycle, 10)  # finds the link down; no loop_failure hook: raises
    assert c.reconnect() == 0  # (as a ReconnectPolicy would)
    run_until_flushed(c)
    assert payloads(port, "s/t") == nums(30)
    resent = [m for m in sent(port) if m.duplicate]
    assert [m.payload for m in resent] == nums(4) and all(m.dup for m in resent)


def test_drain_is_bounded_per_cycle_and_inbound_messages_get_through():
    port = FakePort()
    c = offline_client(port, outbox=Outbox(16384))
    got = []
    c.subscribe("cmd", lambda cl, payload, topic: got.append(payload), 1)
    for k in range(300):
        c.publish(b"s/t", b"%d" % k, 1)
    connect(c, port)
    # connect() sent a burst per read cycle (its SUBSCRIBE waited for SUBACK)
    assert len(payloads(port, "s/t")) <= 3 * c.drain_burst
    port.broker.publish("cmd", b"stop", 1)
    # In the stream it is behind the acks of the messages in flight (at most
    # max_inflight - 1): one packet is read per cycle.
    for k in range(25):
        c.cycle(10)
        if got:
            break
    assert got == [b"stop"] and k < 20  # delivered while most readings still wait
    assert c.pending() > 200
    sent = len(payloads(port, "s/t"))
    c.cycle(10)
    assert len(payloads(port, "s/t")) - sent <= c.drain_burst
    run_until_flushed(c)
    assert payloads(port, "s/t") == nums(300)


def test_keepalive_runs_through_a_long_flush():
    port = FakePort()
    c = offline_client(port, outbox=Outbox(16384))
    for k in range(300):
        c.publish(b"s/t", b"%d" % k, 1)
    port.broker.unreachable = False
    c.connect("broker.test", 2, start_loop=False)  # keepalive 2 s
    port.broker.puback = False  # the flush stalls: only PINGs keep the link
    for _ in range(100):
        c.cycle(100)  # 10 s of fake time
    assert c.connected()
    assert port.broker.types("dev").count("PINGREQ") >= 5


def test_queue_qos0_while_offline_when_asked():
    port = FakePort()
    c = offline_client(port, outbox=Outbox(1024))
    mqtt_error(ERR_NO_CONN, c.publish, b"s/t", b"a", 0)  # QoS 0 is not queued by default
    c.queue_qos0 = True
    c.publish(b"s/t", b"a", 0)
    c.publish(b"s/t", b"b", 1)
    c.publish(b"s/t", b"c", 0)
    assert c.pending() == 3
    connect(c, port)
    run_until_flushed(c)
    got = port.broker.messages("s/t", sender="dev")
    assert [(m.payload, m.qos) for m in got] == [(b"a", 0), (b"b", 1), (b"c", 0)]
    assert c.outbox.count == 0


def test_connected_publish_behind_a_backlog_waits_its_turn():
    # Per-topic order: while queued messages wait, a new one does not overtake them.
    port = FakePort()
    c = offline_client(port, outbox=Outbox(4096))
    for k in range(20):
        c.publish(b"s/t", b"%d" % k, 1)
    connect(c, port)
    assert c.outbox.unsent > 0
    assert c.publish(b"s/t", b"20", 1) == 0  # queued behind the backlog
    run_until_flushed(c)
    assert payloads(port) == nums(21)
    assert c.publish(b"s/t", b"21", 1) > 0  # nothing waits: straight out, with an id


# ---- the flash log ------------------------------------------------------------------


def test_every_message_is_logged_and_acked():
    port = FakePort()
    d = fresh_dir("sf_logged")
    log = FlashLog(d)
    c = Client("dev", port=port, store=log)
    connect(c, port)
    pid = c.publish(b"s/t", b"1", 1)
    assert pid == 1 and len(log) == 0  # acked on flash once PUBACK came
    port.broker.puback = False
    assert c.publish(b"s/t", b"2", 1, wait=False) == 2
    assert len(log) == 1 and [r[2] for r in log.pending()] == [b"2"]
    assert c.pending() == 1
    log.close()
    remove_dir(d)


def test_reset_resends_from_flash_with_dup_and_the_same_packet_ids():
    port = FakePort()
    d = fresh_dir("sf_reset")
    log = FlashLog(d)
    c = offline_client(port, store=log)
    for k in range(10):
        c.publish(b"s/t", b"%d" % k, 1)
    connect(c, port)
    port.broker.puback = False
    run = [c.cycle(10) for _ in range(3)]  # noqa: F841  (sends, no acks come)
    sent_pids = [m.pid for m in sent(port)]
    assert sent_pids == list(range(1, 11))  # pid = seq: 1, 2 ...
    # Power cut: nothing is closed, nothing synced, the objects are gone.
    port.broker.cut()
    del c, log
    port.broker.puback = True
    log2 = FlashLog(d)
    assert len(log2) == 10
    c2 = Client("dev", clean_session=False, port=port, store=log2)
    connect(c2, port)
    run_until_flushed(c2)
    again = sent(port)[10:]
    assert [m.payload for m in again] == nums(10)
    assert [m.pid for m in again] == sent_pids  # the ids the broker's session knows
    assert all(m.dup for m in again)  # may have been sent before the reset
    assert len(log2) == 0
    # New messages after the recovered ones continue the numbering, without DUP.
    assert c2.publish(b"s/t", b"10", 1) == 11
    assert not sent(port)[-1].dup
    log2.close()
    remove_dir(d)


def test_qos2_across_a_reset_is_delivered_once():
    # The broker got the messages and holds their ids awaiting PUBREL; the client
    # loses power before it heard back. After the reset the same ids go out again
    # (DUP): the broker acknowledges them without forwarding them twice
    # [MQTT-4.3.3-2]. With fresh ids they would be new messages: delivered twice.
    port, sub, got = port_with_subscriber()
    d = fresh_dir("sf_qos2_reset")
    c = Client("dev", clean_session=False, port=port, store=FlashLog(d))
    connect(c, port)
    port.broker.pubrec = False
    for k in range(5):
        c.publish(b"s/t", b"%d" % k, 2, wait=False)
    c.cycle(10)
    port.broker.cut("dev")
    del c
    port.broker.pubrec = True
    c2 = Client("dev", clean_session=False, port=port, store=FlashLog(d))
    connect(c2, port)
    run_until_flushed(c2)
    for _ in range(20):
        sub.cycle(10)
    assert got == nums(5)
    again = sent(port)[5:]
    assert [m.pid for m in again] == [1, 2, 3, 4, 5] and all(m.duplicate for m in again)
    c2.store.close()
    remove_dir(d)


def test_log_larger_than_the_outbox_is_sent_through_it_in_order():
    port = FakePort()
    d = fresh_dir("sf_larger")
    log = FlashLog(d, max_segments=64)
    ob = Outbox(256)  # ~12 messages at a time
    c = offline_client(port, store=log, outbox=ob)
    for k in range(500):
        c.publish(b"s/%d" % (k % 4), b"%d" % k, 1)
    assert len(log) == 500 and ob.count < 20 and c.pending() == 500
    assert ob.dropped == 0  # the log holds them: the window never drops
    connect(c, port)
    run_until_flushed(c)
    assert payloads(port) == nums(500)
    assert len(log) == 0 and ob.count == 0
    log.close()
    remove_dir(d)


def test_full_log_with_refuse_new_drops_and_counts():
    port = FakePort()
    d = fresh_dir("sf_full")
    log = FlashLog(d, segment_size=64, max_segments=2, when_full=REFUSE_NEW)
    c = offline_client(port, store=log)
    for k in range(20):
        c.publish(b"s/t", b"%02d" % k, 1)
    kept = len(log)
    assert 0 < kept < 20 and log.dropped == 20 - kept
    connect(c, port)
    run_until_flushed(c)
    assert payloads(port) == [b"%02d" % k for k in range(kept)]
    log.close()
    remove_dir(d)


def test_disconnect_writes_the_log_buffer():
    port = FakePort()
    d = fresh_dir("sf_disconnect")
    other = fresh_dir("sf_disconnect2")
    log = FlashLog(d, sync_records=100)  # batched: messages wait in RAM
    c = offline_client(port, store=log)
    for k in range(5):
        c.publish(b"s/t", b"%d" % k, 1)
    assert len(FlashLog(other)) == 0  # (a different directory: sanity)
    c.disconnect()
    assert [r[2] for r in FlashLog(d).pending()] == nums(5)
    remove_dir(d)
    remove_dir(other)


def test_subscribe_after_a_reset_does_not_reuse_a_logged_packet_id():
    # A queued message's id comes from its seq; SUBSCRIBE takes the next free id, and
    # a queued message whose id is taken waits for it to be released.
    port = FakePort()
    d = fresh_dir("sf_subscribe")
    c = offline_client(port, store=FlashLog(d))
    for k in range(3):
        c.publish(b"s/t", b"%d" % k, 1)
    del c
    c2 = Client("dev", clean_session=False, port=port, store=FlashLog(d))
    c2.subscribe("cmd", lambda *a: None, 1)
    connect(c2, port)
    run_until_flushed(c2)
    pids = [m.pid for m in sent(port)]
    assert pids == [1, 2, 3] and payloads(port) == nums(3)
    c2.store.close()
    remove_dir(d)


def test_qos2_released_before_a_reset_is_not_published_again():
    # The broker PUBREC'd, the client sent PUBREL and the broker forwarded the
    # messages, but the PUBCOMPs never came back before the power cut. Publishing
    # them again, even under the same ids, would be new messages to the broker (it
    # released those ids): the log recorded each PUBREC on flash before the PUBREL,
    # so after the reset only PUBRELs go out [MQTT-4.4.0-1].
    port, sub, got = port_with_subscriber()
    d = fresh_dir("sf_released")
    log = FlashLog(d)
    c = Client("dev", clean_session=False, port=port, store=log)
    connect(c, port)
    port.broker.pubcomp = False
    for k in range(5):
        c.publish(b"s/t", b"%d" % k, 2, wait=False)
    for _ in range(10):
        c.cycle(10)  # reads the PUBRECs, sends PUBRELs
    assert [log.released(s) for s in range(1, 6)] == [True] * 5
    assert port.broker.types("dev").count("PUBREL") == 5
    port.broker.cut("dev")
    del c, log  # power cut
    port.broker.pubcomp = True
    log2 = FlashLog(d)
    assert len(log2) == 5 and all(log2.released(s) for s in range(1, 6))
    c2 = Client("dev", clean_session=False, port=port, store=log2)
    connect(c2, port)
    run_until_flushed(c2)
    for _ in range(20):
        sub.cycle(10)
    assert got == nums(5)  # once each
    assert len(sent(port)) == 5  # no PUBLISH after the reset
    assert port.broker.types("dev").count("PUBREL") == 10
    assert len(log2) == 0 and not any(log2.released(s) for s in range(1, 6))
    log2.close()
    remove_dir(d)
