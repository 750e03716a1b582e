# Store and forward in the client (docs/store-and-forward.md), on the in-memory broker
# and fake clock of umqtt_paho.testing: the outbox (RAM ring) and the flash log wired
# into publish(), the drain after CONNACK, resets and packet ids. The live proof with
# mosquitto and the fault proxy is tests/test_store_forward_live.py; allocation on the
# MicroPython VM is tests/vm/test_vm_store.py.

import pytest

from umqtt_paho import Client, MQTTError, forward
from umqtt_paho.errors import ERR_PAYLOAD_SIZE, ERR_QUEUE_SIZE
from umqtt_paho.flashlog import FlashLog, REFUSE_NEW
from umqtt_paho.outbox import DROP_NEWEST, DROP_OLDEST, RAISE, Outbox
from umqtt_paho.testing import FakePort


def test_forward_keeps_slots_through_the_session_not_its_own_states():
    # forward.py once copied client.py's slot states; now the session (session.py) owns
    # every transition and forward.py asks it (take, accept, ack) by packet type.
    import re

    src = open(forward.__file__).read()
    assert not re.search(r"^_(WAIT_\w+|RESERVED|SENT|FREE|DONE) = ", src, re.M)
    assert "states[" not in src and "from .client" not in src


def test_a_client_without_outbox_or_store_does_not_load_forward():
    import subprocess
    import sys

    code = ("import sys\nfrom umqtt_paho import Client\nfrom umqtt_paho.testing import FakePort\n"
            "Client('x', port=FakePort())\nprint('umqtt_paho.forward' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


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
    with pytest.raises(MQTTError) as e:
        c.publish(b"s/t", b"03", 1)
    assert e.value.code == ERR_QUEUE_SIZE and "outbox full" in str(e.value)
    assert ob.dropped == 0 and c.pending() == 3
    connect(c, port)
    run_until_flushed(c)
    assert payloads(port) == [b"00", b"01", b"02"]  # the refused one never went out


def test_bad_messages_raise_before_they_are_queued():
    port = FakePort()
    c = offline_client(port, outbox=Outbox(64), send_buffer=16)
    with pytest.raises(ValueError, match="wildcard"):
        c.publish(b"s/#", b"x", 1)
    with pytest.raises(ValueError, match="does not fit the outbox"):
        c.publish(b"s/t", b"x" * 60, 1)
    with pytest.raises(MQTTError) as e:
        c.publish(b"a/very/long/topic", b"x", 1)  # its header can never be sent
    assert e.value.code == ERR_PAYLOAD_SIZE
    with pytest.raises(ValueError, match="qos"):
        c.publish(b"s/t", b"x", 3)
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
    with pytest.raises(OSError):
        c.cycle(10)  # finds the link down; no loop_failure hook: raises
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
    with pytest.raises(MQTTError):
        c.publish(b"s/t", b"a", 0)  # QoS 0 is not queued by default
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


def test_every_message_is_logged_and_acked(tmp_path):
    port = FakePort()
    log = FlashLog(str(tmp_path / "log"))
    c = Client("dev", port=port, store=log)
    connect(c, port)
    pid = c.publish(b"s/t", b"1", 1)
    assert pid == 1 and len(log) == 0  # acked on flash once PUBACK came
    port.broker.puback = False
    assert c.publish(b"s/t", b"2", 1, wait=False) == 2
    assert len(log) == 1 and [r[2] for r in log.pending()] == [b"2"]
    assert c.pending() == 1


def test_reset_resends_from_flash_with_dup_and_the_same_packet_ids(tmp_path):
    port = FakePort()
    d = str(tmp_path / "log")
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


def test_qos2_across_a_reset_is_delivered_once(tmp_path):
    # The broker got the messages and holds their ids awaiting PUBREL; the client
    # loses power before it heard back. After the reset the same ids go out again
    # (DUP): the broker acknowledges them without forwarding them twice
    # [MQTT-4.3.3-2]. With fresh ids they would be new messages: delivered twice.
    port, sub, got = port_with_subscriber()
    d = str(tmp_path / "log")
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


def test_log_larger_than_the_outbox_is_sent_through_it_in_order(tmp_path):
    port = FakePort()
    log = FlashLog(str(tmp_path / "log"), max_segments=64)
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


def test_full_log_with_refuse_new_drops_and_counts(tmp_path):
    port = FakePort()
    log = FlashLog(str(tmp_path / "log"), segment_size=64, max_segments=2, when_full=REFUSE_NEW)
    c = offline_client(port, store=log)
    for k in range(20):
        c.publish(b"s/t", b"%02d" % k, 1)
    kept = len(log)
    assert 0 < kept < 20 and log.dropped == 20 - kept
    connect(c, port)
    run_until_flushed(c)
    assert payloads(port) == [b"%02d" % k for k in range(kept)]


def test_disconnect_writes_the_log_buffer(tmp_path):
    port = FakePort()
    d = str(tmp_path / "log")
    log = FlashLog(d, sync_records=100)  # batched: messages wait in RAM
    c = offline_client(port, store=log)
    for k in range(5):
        c.publish(b"s/t", b"%d" % k, 1)
    assert len(FlashLog(d + "2")) == 0  # (a different directory: sanity)
    c.disconnect()
    assert [r[2] for r in FlashLog(d).pending()] == nums(5)


def test_subscribe_after_a_reset_does_not_reuse_a_logged_packet_id(tmp_path):
    # A queued message's id comes from its seq; SUBSCRIBE takes the next free id, and
    # a queued message whose id is taken waits for it to be released.
    port = FakePort()
    d = str(tmp_path / "log")
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


def test_qos2_released_before_a_reset_is_not_published_again(tmp_path):
    # The broker PUBREC'd, the client sent PUBREL and the broker forwarded the
    # messages, but the PUBCOMPs never came back before the power cut. Publishing
    # them again, even under the same ids, would be new messages to the broker (it
    # released those ids): the log recorded each PUBREC on flash before the PUBREL,
    # so after the reset only PUBRELs go out [MQTT-4.4.0-1].
    port, sub, got = port_with_subscriber()
    d = str(tmp_path / "log")
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


def test_release_survives_on_flash_and_ack_clears_it(tmp_path):
    d = str(tmp_path / "log")
    log = FlashLog(d, sync_records=100)  # even with batching, release() writes at once
    s1 = log.append("a/b", b"x", 2)
    s2 = log.append("a/b", b"y", 2)
    assert log.release(s2) and not log.released(s1) and log.released(s2)
    again = FlashLog(d)  # a power cut now: both messages and the mark are on flash
    assert [r[0] for r in again.pending()] == [s1, s2]
    assert again.released(s2) and not again.released(s1)
    assert again.ack(s2) and not again.released(s2)
    again.sync()
    third = FlashLog(d)
    assert not third.released(s2) and [r[0] for r in third.pending()] == [s1]
    assert not third.release(s2)  # acknowledged: nothing to release
    assert not third.release(99)  # unknown


def test_release_mark_cut_at_every_byte(tmp_path):
    # A power cut while the RELEASED record is written: the message is released after
    # the reopen only if its record is whole; the message itself is never lost.
    import os
    import shutil

    src = str(tmp_path / "src")
    log = FlashLog(src)
    s1 = log.append("a/b", b"first", 2)
    s2 = log.append("a/b", b"second", 2)
    seg = os.path.join(src, sorted(os.listdir(src))[-1])
    before = os.path.getsize(seg)
    log.release(s2)
    data = open(seg, "rb").read()
    assert len(data) == before + 18  # one 18-byte record, written at once
    released_at = []
    for cut in range(before, len(data) + 1):
        d = str(tmp_path / ("c%d" % cut))
        shutil.copytree(src, d)
        with open(os.path.join(d, os.path.basename(seg)), "wb") as f:
            f.write(data[:cut])
        again = FlashLog(d)
        assert [r[0] for r in again.pending()] == [s1, s2]
        if again.released(s2):
            released_at.append(cut)
        assert not again.released(s1)
    assert released_at == [len(data)]


@pytest.mark.parametrize("sync_records", [1, 0])
def test_pending_after_skips_older_messages_by_their_header(tmp_path, sync_records):
    # The client resumes reading the log after the last message it loaded: older
    # segments are not read, older records are skipped without reading their bodies.
    log = FlashLog(str(tmp_path / "log"), segment_size=256, max_segments=64,
                   sync_records=sync_records)
    seqs = [log.append("s/%d" % (k % 3), b"p%03d" % k, 1 + k % 2) for k in range(120)]
    for s in seqs[::7]:
        log.ack(s)  # out of order acks: holes
    everything = list(log.pending())
    assert len(everything) == 120 - len(seqs[::7])
    for after in (0, 1, 5, 33, 64, 100, 119, 120, 500):
        assert list(log.pending(after)) == [r for r in everything if r[0] > after]


def test_publish_racing_a_refill_queues_the_message_once(tmp_path):
    # Found by the live tests' review: publish() logged a message, then, before it
    # decided where the message goes, the reading thread's refill loaded that very
    # message from the log; publish() queued it a second time (a QoS 2 duplicate).
    import threading

    from test_faults import Stepper

    port = FakePort()
    d = str(tmp_path / "log")
    log = FlashLog(d)
    for k in range(3):
        log.append("r/t", b"%d" % k, 2)  # from a previous boot, never sent
    log.close()
    c = Client("dev", clean_session=False, port=port, store=FlashLog(d))
    c._tlock = threading.Lock()  # as on a port with threads
    c._fwd.lock = threading.Lock()
    c.drain_burst = 0  # connect() sends nothing yet
    connect(c, port)
    app = Stepper(c.publish, "r/t", b"3", qos=2, wait=False)
    app.until(forward.Forward.publish, "i = -1")  # logged, not yet queued
    c.drain_burst = 4
    c._fwd.drain()  # the reading thread: refill loads seqs 1..4 and sends them
    assert app.finish() == 0
    seqs = []
    off = c.outbox.peek()
    while off >= 0:
        seqs.append(c.outbox.seq(off))
        off = c.outbox.after(off)
    assert seqs == [1, 2, 3, 4]
    run_until_flushed(c)
    assert [m.payload for m in sent(port, "r/t")] == nums(4)
