# Store and forward through the Client inside the MicroPython VM: Client(...,
# outbox=Outbox(n)) and Client(..., store=FlashLog(dir)) against the in-memory broker of
# umqtt_paho.testing (tests/fakenet.py), with a fake clock.
#
# - test_*: messages queued offline reach the broker in order with their QoS, retain,
#   topic and payload; the Outbox's DROP_OLDEST / DROP_NEWEST / RAISE through
#   client.publish(); a backlog keeps its order when new messages come in connected;
#   a flash log survives a reset: a new FlashLog and Client on the same directory send
#   every unacknowledged message with DUP and the packet id ((seq - 1) % 65535) + 1
#   (the ids wrap: the log is seeded so that its seqs cross 65535); and the measured
#   workloads below, run on their own, are checked to do what their names say (one
#   message per call, the queue path taken).
# - measure_*: bytes allocated per message (tests/test_vm.py prints them and holds the
#   Outbox paths to a budget of 0): publish QoS 1/2 while offline into the ring, the
#   drain after connect (each message sent from the ring, its PUBACK or PUBREC/PUBREL/
#   PUBCOMP handled), publish while connected with a backlog; and, printed only, the
#   flash paths (FlashLog.append's CRC, its file writes, acks and the refill from flash
#   allocate; see tests/vm/test_vm_flashlog.py).
#
# Runs in MicroPython (tests/test_vm.py loads the .mpy build into the VM) and on CPython
# (pytest collects it as it is): plain test functions and asserts, no pytest import, no
# f-strings, no os.path.

import os
import struct
from binascii import crc32

from umqtt_paho import Client, MQTTError
from umqtt_paho import errors as E
from umqtt_paho import servercodec as pk
from umqtt_paho.flashlog import FlashLog
from umqtt_paho.outbox import DROP_NEWEST, DROP_OLDEST, RAISE, Outbox

from fakenet import FakePort, fresh_dir, raises, remove_dir, tmp_dir

N = 1000  # iterations of an Outbox measure
NF = 200  # iterations of a flash measure (each may write a file)
TOPIC = b"sensors/vm/temp/0001"  # 20 bytes
PAYLOAD = b"p" * 64
BIG = b"b" * 300
RECORD = 11 + 20 + 64  # bytes one message takes in the Outbox ring
WINDOW = 19  # queued messages in flight at once: max_inflight (20) - 1 left free

# ---- helpers --------------------------------------------------------------------------


def offline_client(outbox=None, store=None, client_id=b"store", **kw):
    """A Client with an outbox (and maybe a flash log) on a FakePort, not connected."""
    port = FakePort()
    c = Client(client_id, port=port, outbox=outbox, store=store, **kw)
    return c, port


def connect(c):
    c.connect("broker.vm", 0, start_loop=False)  # keepalive 0: no PINGREQ


def settle(c, port, limit_ms=600000):
    """Cycle until every accepted message is acknowledged."""
    t0 = port.clock.now
    while c.pending():
        c.cycle(10)
        assert port.clock.now - t0 <= limit_ms, "%d messages pending after %d ms" % (
            c.pending(),
            limit_ms,
        )


def publishes(port):
    """The PUBLISH packets the broker received (resends included), in order."""
    return list(port.broker.received)


def fields(msgs):
    return [(m.topic.encode(), m.payload, m.qos, m.retain) for m in msgs]


def no_errors(port):
    assert port.broker.errors == [], port.broker.errors


def pid_of(seq):
    return ((seq - 1) % 65535) + 1


def snapshot(ob):
    return (bytes(ob.buf), ob.count, ob.unsent, ob.used, ob.dropped)


def log_record(seq, flags, topic, payload):
    # One record in the flash log's format (umqtt_paho/flashlog.py, top of the file).
    body = struct.pack(">HBIH", 7 + len(topic) + len(payload), flags, seq, len(topic))
    body += topic + payload
    return b"\xa5" + body + struct.pack(">I", crc32(body) & 0xFFFFFFFF)


def seed_log(path, seq):
    """A log directory whose newest message, seq, is already acknowledged: the next
    message appended gets seq + 1."""
    remove_dir(path)
    os.mkdir(path)
    data = log_record(seq, 2, b"old/topic", b"acked") + log_record(
        seq, 0x80, b"", struct.pack(">I", seq)
    )
    with open(path + "/seg00000001.log", "wb") as f:
        f.write(data)


def messages(n, first=0):
    """n varied messages: (topic, payload, qos 1 or 2, retain)."""
    out = []
    for i in range(first, first + n):
        out.append(
            (
                ("m/%d" % (i % 5)).encode(),
                bytes([i & 0xFF]) * (i % 9) + ("#%d" % i).encode(),
                1 + i % 2,
                i % 3 == 0,
            )
        )
    return out


# ---- the Outbox through Client.publish ------------------------------------------------


def test_offline_queue_arrives_in_order():
    c, port = offline_client(Outbox(4096, RAISE))
    c.queue_qos0 = True  # QoS 0 is queued offline too, in the same order
    msgs = []
    for i in range(40):
        topic = ("q/%d" % (i % 4)).encode()
        payload = bytes([i]) * (i % 7) + b"!"
        msgs.append((topic, payload, i % 3, i % 5 == 0))
    for m in msgs:
        assert c.publish(m[0], m[1], m[2], m[3]) == 0  # queued: no packet id yet
    ob = c.outbox
    assert ob.count == ob.unsent == 40 and c.pending() == 40
    assert not port.links  # nothing was sent: no connection was even opened
    connect(c)
    settle(c, port)
    got = publishes(port)
    assert fields(got) == msgs
    assert [m.dup for m in got] == [False] * 40  # first time out
    pids = [m.pid for m in got]
    assert [p == 0 for p in pids] == [m[2] == 0 for m in msgs]
    assert [p for p in pids if p] == list(range(1, len([p for p in pids if p]) + 1))
    assert ob.count == ob.unsent == ob.used == ob.dropped == 0 and c.pending() == 0
    no_errors(port)


def test_queued_while_connected_behind_a_backlog_keeps_the_order():
    c, port = offline_client(Outbox(8192, RAISE))
    first = messages(40)
    for m in first:
        c.publish(m[0], m[1], m[2], m[3])
    connect(c)  # sends a first burst (drain_burst) only
    assert 0 < len(publishes(port)) < 40 and c.outbox.unsent > 0
    later = messages(10, 40)
    for m in later:
        # A backlog: into the ring behind it, whatever the window (never overtaking).
        assert c.publish(m[0], m[1], m[2], m[3]) == 0
    settle(c, port)
    assert fields(publishes(port)) == first + later
    assert c.outbox.count == 0
    no_errors(port)


def test_drain_burst_and_window():
    c, port = offline_client(Outbox(8192, RAISE))
    port.broker.puback = False  # nothing is acknowledged: the window fills
    port.broker.pubrec = False
    for m in messages(40):
        c.publish(m[0], m[1], m[2], m[3])
    connect(c)
    assert len(publishes(port)) == c.drain_burst == 4
    for _ in range(10):
        c.cycle(10)
    # max_inflight 20, one slot left free for other commands
    assert len(publishes(port)) == WINDOW
    assert c.outbox.unsent == 40 - WINDOW and c.outbox.count == 40
    assert c.pending() == 40
    no_errors(port)


def test_drop_oldest_through_publish():
    ob = Outbox(3 * RECORD, DROP_OLDEST)  # three messages fit
    c, port = offline_client(ob)
    topics = [("sensors/vm/temp/%04d" % i).encode() for i in range(7)]
    for t in topics:
        assert c.publish(t, PAYLOAD, 1) == 0
    assert ob.dropped == 4 and ob.count == 3
    connect(c)
    settle(c, port)
    assert fields(publishes(port)) == [(t, PAYLOAD, 1, False) for t in topics[4:]]
    assert ob.dropped == 4 and ob.count == 0
    no_errors(port)


def test_drop_newest_through_publish():
    ob = Outbox(3 * RECORD, DROP_NEWEST)
    c, port = offline_client(ob)
    topics = [("sensors/vm/temp/%04d" % i).encode() for i in range(7)]
    for t in topics:
        assert c.publish(t, PAYLOAD, 2, True) == 0
    assert ob.dropped == 4 and ob.count == 3
    connect(c)
    settle(c, port)
    assert fields(publishes(port)) == [(t, PAYLOAD, 2, True) for t in topics[:3]]
    no_errors(port)


def test_raise_through_publish_refuses_before_accepting():
    ob = Outbox(3 * RECORD, RAISE)
    c, port = offline_client(ob)
    topics = [("sensors/vm/temp/%04d" % i).encode() for i in range(4)]
    for t in topics[:3]:
        assert c.publish(t, PAYLOAD, 1) == 0
    before = snapshot(ob)
    e = raises(MQTTError, c.publish, topics[3], PAYLOAD, 1)
    assert e.code == E.ERR_QUEUE_SIZE, e
    assert snapshot(ob) == before and ob.dropped == 0 and c.pending() == 3
    # Invalid arguments are refused before anything is queued too.
    raises(ValueError, c.publish, b"a/+/b", PAYLOAD, 1)
    raises(ValueError, c.publish, TOPIC, b"x" * (3 * RECORD), 1)  # larger than the ring
    assert snapshot(ob) == before
    connect(c)
    settle(c, port)
    assert fields(publishes(port)) == [(t, PAYLOAD, 1, False) for t in topics[:3]]
    # Room again: the refused message can be published now, once.
    c.publish(topics[3], PAYLOAD, 1)
    settle(c, port)
    assert fields(publishes(port))[3:] == [(topics[3], PAYLOAD, 1, False)]
    no_errors(port)


def test_qos0_not_queued_by_default():
    c, port = offline_client(Outbox(1024))
    e = raises(MQTTError, c.publish, TOPIC, PAYLOAD, 0)  # as without an outbox
    assert e.code == E.ERR_NO_CONN and c.outbox.count == 0


# ---- the flash log ----------------------------------------------------------------------


def test_flash_log_survives_a_reset_with_dup_and_the_pid_of_each_seq():
    d = fresh_dir("reset")
    seed_log(d, 65531)  # the next seqs cross 65535: their packet ids wrap to 1, 2 ...
    log = FlashLog(d)
    assert log.last_seq() == 65531 and len(log) == 0
    c1, port1 = offline_client(store=log)
    msgs = messages(9)
    for m in msgs:
        assert c1.publish(m[0], m[1], m[2], m[3]) == 0
    assert len(log) == 9 and log.last_seq() == 65540
    seqs = list(range(65532, 65541))
    # A reset: the client and the log are dropped, nothing closed or disconnected
    # (sync_records=1, the default: every append reached the file).
    c1 = log = None
    log2 = FlashLog(d)
    assert [r[0] for r in log2.pending()] == seqs
    c2, port = offline_client(store=log2)
    assert c2.pending() == 9
    connect(c2)
    settle(c2, port)
    got = publishes(port)
    assert fields(got) == msgs
    assert [m.dup for m in got] == [True] * 9  # they may have gone out before
    assert [m.pid for m in got] == [pid_of(s) for s in seqs]
    assert [m.pid for m in got] == [65532, 65533, 65534, 65535, 1, 2, 3, 4, 5]
    assert len(log2) == 0 and c2.pending() == 0
    # A message logged by this client: first time out, the pid of its seq.
    c2.publish(b"m/new", b"fresh", 1)
    last = publishes(port)[-1]
    assert (last.topic, last.dup, last.pid) == ("m/new", False, pid_of(65541))
    assert len(log2) == 0
    no_errors(port)
    # Everything acknowledged: a third start sends nothing.
    log2.close()
    c3, port3 = offline_client(store=FlashLog(d))
    connect(c3)
    settle(c3, port3)
    assert publishes(port3) == []
    remove_dir(d)


def test_flash_log_larger_than_the_outbox_is_sent_through_it():
    d = fresh_dir("window")
    log = FlashLog(d, segment_size=1024)
    c1, _ = offline_client(store=log, outbox=Outbox(6 * 40))  # a few messages at a time
    msgs = messages(60)
    for m in msgs:
        assert c1.publish(m[0], m[1], m[2], m[3]) == 0
    assert len(log) == 60
    c1 = log = None
    log2 = FlashLog(d, segment_size=1024)
    c2, port = offline_client(store=log2, outbox=Outbox(6 * 40))
    connect(c2)
    settle(c2, port)
    got = publishes(port)
    assert fields(got) == msgs
    assert [m.pid for m in got] == [pid_of(s) for s in range(1, 61)]
    assert [m.dup for m in got] == [True] * 60
    assert len(log2) == 0 and c2.outbox.count == 0
    no_errors(port)
    remove_dir(d)


def test_flash_log_same_client_offline_then_connected():
    d = fresh_dir("live")
    log = FlashLog(d)
    c, port = offline_client(store=log)
    offline = messages(5)
    for m in offline:
        assert c.publish(m[0], m[1], m[2], m[3]) == 0  # logged and queued
    assert len(log) == 5
    connect(c)
    settle(c, port)
    live = messages(12, 5)
    for m in live:
        # connected, nothing queued: sent at once, under the pid of its seq
        assert c.publish(m[0], m[1], m[2], m[3]) == pid_of(log.last_seq())
    assert len(log) == 0
    got = publishes(port)
    assert fields(got) == offline + live
    assert [m.pid for m in got] == list(range(1, 18))
    assert [m.dup for m in got] == [False] * 17  # logged by this client: first time out
    no_errors(port)
    remove_dir(d)


# ---- workloads of the measures ----------------------------------------------------------
#
# Each returns (client, port, work, n): the client in steady state after a warm-up,
# work() one message. The measure_* functions hand (work, n) to tests/vm/vmrunner.py;
# the check_* tests run the same workload and check it does what its name says.


def _offline_publish(qos, n):
    # publish(bytes, bytes, qos) while offline, into a ring that holds every message.
    c, port = offline_client(Outbox((n + 20) * RECORD, RAISE))
    publish = c.publish
    topic = TOPIC
    payload = PAYLOAD
    for _ in range(10):  # warm-up: the topic is checked once, then cached
        publish(topic, payload, qos)

    def work():
        publish(topic, payload, qos)

    return c, port, work, n


def _offline_publish_evicting(qos, n):
    # The same into a full ring under DROP_OLDEST: every publish evicts the oldest.
    c, port = offline_client(Outbox(10 * RECORD, DROP_OLDEST))
    publish = c.publish
    topic = TOPIC
    payload = PAYLOAD
    for _ in range(30):
        publish(topic, payload, qos)

    def work():
        publish(topic, payload, qos)

    return c, port, work, n


def _cycles(c, qos):
    # work(): the packets one message costs the reader once the window is full: its
    # PUBACK (QoS 1), or its PUBREC and PUBCOMP (QoS 2); each ack frees a slot, into
    # which the drain sends the next queued message. A cycle that reads nothing fails.
    cycle = c.cycle
    if qos == 1:

        def work():
            if not cycle(0):
                raise AssertionError("no packet to read")

    else:

        def work():
            if not cycle(0):
                raise AssertionError("no packet to read")
            if not cycle(0):
                raise AssertionError("no packet to read")

    return work


def _drain_after_connect(qos, n):
    # Queued offline, then connect(): each message is sent from the ring and acked.
    total = 40 + n + WINDOW + 10
    c, port = offline_client(Outbox(total * RECORD, RAISE))
    for _ in range(total):
        c.publish(TOPIC, PAYLOAD, qos)
    connect(c)
    port.broker.record = False  # the broker acks from preallocated buffers
    work = _cycles(c, qos)
    for _ in range(40):  # warm-up: the window fills up to WINDOW
        work()
    return c, port, work, n


def _backlog_publish(qos, n):
    # publish() while connected, behind a backlog, the window full: into the ring.
    total = 30
    c, port = offline_client(Outbox((total + n + 20) * RECORD, RAISE))
    for _ in range(total):
        c.publish(TOPIC, PAYLOAD, qos)
    connect(c)
    port.broker.record = False
    publish = c.publish
    topic = TOPIC
    payload = PAYLOAD
    for _ in range(10):  # each drains a burst until the window is full
        publish(topic, payload, qos)

    def work():
        publish(topic, payload, qos)

    return c, port, work, n


def _backlog_steady(qos, n):
    # publish() behind a backlog and the reads that send one message: the queue in
    # steady state (as many in as out, the ring going round).
    c, port = offline_client(Outbox(60 * RECORD, RAISE))
    for _ in range(30):
        c.publish(TOPIC, PAYLOAD, qos)
    connect(c)
    port.broker.record = False
    publish = c.publish
    topic = TOPIC
    payload = PAYLOAD
    read = _cycles(c, qos)

    def work():
        publish(topic, payload, qos)
        read()

    for _ in range(100):  # several laps of the ring
        work()
    return c, port, work, n


def _flash_offline_publish(n):
    # publish() offline with a flash log (defaults: every append written to the file).
    d = fresh_dir("m_offline")
    c, port = offline_client(store=FlashLog(d), outbox=Outbox((n + 20) * RECORD))
    publish = c.publish
    topic = TOPIC
    payload = PAYLOAD
    for _ in range(10):
        publish(topic, payload, 1)

    def work():
        publish(topic, payload, 1)

    return c, port, work, n


def _flash_connected_publish(n):
    # publish(qos=1) connected, nothing queued: logged, sent, PUBACK, log.ack().
    d = fresh_dir("m_live")
    c, port = offline_client(store=FlashLog(d))
    connect(c)
    port.broker.record = False
    publish = c.publish
    topic = TOPIC
    payload = PAYLOAD
    for _ in range(50):
        publish(topic, payload, 1)

    def work():
        publish(topic, payload, 1)

    return c, port, work, n


def _flash_drain_after_reset(qos, n):
    # A log written before a reset, sent by a new Client: refilled from flash into the
    # default Outbox(2048), sent from it, acked in the log (segments removed).
    d = fresh_dir("m_reset%d" % qos)
    total = 40 + n + WINDOW + 10
    log = FlashLog(d, sync_records=0, max_segments=64)
    for _ in range(total):
        log.append(TOPIC, PAYLOAD, qos)
    log.close()
    c, port = offline_client(store=FlashLog(d, max_segments=64))
    connect(c)
    port.broker.record = False
    work = _cycles(c, qos)
    for _ in range(40):
        work()
    return c, port, work, n


def _flash_idle_behind(n):
    # Waiting for acks with a log larger than the default Outbox(2048) and messages of
    # 300 bytes: the ring holds only taken records (sent, unacknowledged), none unsent,
    # no room for the next one. work(): cycle(10) with nothing to read.
    d = fresh_dir("m_idle")
    log = FlashLog(d, sync_records=0, max_segments=64)
    for _ in range(100):
        log.append(TOPIC, BIG, 1)
    log.close()
    c, port = offline_client(store=FlashLog(d, max_segments=64))
    port.broker.puback = False  # a slow broker: no PUBACK comes
    connect(c)
    port.broker.record = False
    cycle = c.cycle

    def work():
        cycle(10)

    for _ in range(20):
        work()
    return c, port, work, n


# ---- the workloads checked (CPython and VM) ---------------------------------------------


def _run(wl, n=None):
    c, port, work, m = wl
    counts = port.broker.counts
    before = (counts[pk.PUBLISH], counts[pk.PUBREL])
    ob = c.outbox
    queued = (ob.count, ob.unsent, ob.dropped)
    for _ in range(m if n is None else n):
        work()
    return c, port, before, queued


def test_check_offline_publish():
    for qos in (1, 2):
        c, port, before, queued = _run(_offline_publish(qos, 50))
        ob = c.outbox
        assert (ob.count, ob.unsent, ob.dropped) == (60, 60, 0) and not port.links
        assert ob.qos(ob.peek()) == qos
        c, port, before, queued = _run(_offline_publish_evicting(qos, 50))
        ob = c.outbox
        assert ob.count == 10 and ob.dropped == queued[2] + 50 == 70


def _one_per_call(port, before, n, qos):
    # QoS 1: exactly one message sent (and one acked) per work(). QoS 2: the PUBRECs and
    # PUBCOMPs interleave, so n calls (2n packets read) finish n messages give or take
    # the phase of that pattern (a few).
    counts = port.broker.counts
    sent = counts[pk.PUBLISH] - before[0]
    released = counts[pk.PUBREL] - before[1]
    if qos == 1:
        assert sent == n and released == 0, (sent, released)
    else:
        assert abs(sent - n) <= 5 and abs(released - n) <= 5, (sent, released, n)
    return sent


def test_check_drain_after_connect():
    for qos in (1, 2):
        c, port, before, queued = _run(_drain_after_connect(qos, 100))
        sent = _one_per_call(port, before, 100, qos)
        ob = c.outbox
        assert queued[1] - ob.unsent == sent and queued[0] - ob.count == sent
        assert ob.unsent > 0  # the backlog lasted the whole run
        no_errors(port)


def test_check_backlog_publish():
    for qos in (1, 2):
        c, port, before, queued = _run(_backlog_publish(qos, 50))
        ob = c.outbox
        assert port.broker.counts[pk.PUBLISH] == before[0]  # the window is full
        assert ob.unsent - queued[1] == 50 and ob.count - queued[0] == 50
        c, port, before, queued = _run(_backlog_steady(qos, 100))
        sent = _one_per_call(port, before, 100, qos)
        ob = c.outbox
        assert ob.unsent - queued[1] == 100 - sent and ob.unsent > 0  # still a backlog
        no_errors(port)


def test_check_flash_workloads():
    c, port, before, queued = _run(_flash_offline_publish(20))
    assert len(c.store) == 30 and c.outbox.count == 30 and not port.links
    c, port, before, queued = _run(_flash_connected_publish(20))
    assert port.broker.counts[pk.PUBLISH] - before[0] == 20 and len(c.store) == 0
    for qos in (1, 2):
        wl = _flash_drain_after_reset(qos, 40)
        logged = len(wl[0].store)
        c, port, before, queued = _run(wl)
        # The ring is refilled from flash in batches (once a quarter of it is free):
        # sends come in bursts, one per call on average.
        counts = port.broker.counts
        sent = counts[pk.PUBLISH] - before[0]
        assert abs(sent - 40) <= WINDOW, sent
        if qos == 1:
            assert logged - len(c.store) == sent  # each acknowledged in the log
        else:
            assert abs(logged - len(c.store) - sent) <= 5
        assert c._fwd.behind or c.outbox.unsent  # still messages to send
        first = publishes(port)  # the burst of connect(), recorded
        assert len(first) == 4 and [m.dup for m in first] == [True] * 4
        assert [m.pid for m in first] == [1, 2, 3, 4]
        no_errors(port)
    c, port, before, queued = _run(_flash_idle_behind(20))
    ob = c.outbox
    assert port.broker.counts[pk.PUBLISH] == before[0] == ob.count  # all sent, none acked
    assert ob.unsent == 0 and not ob.has_room(len(TOPIC), len(BIG)) and c._fwd.behind
    assert c.pending() == 100
    for name in ("m_offline", "m_live", "m_reset1", "m_reset2", "m_idle"):
        remove_dir(tmp_dir(name))


# ---- allocation (tests/test_vm.py: budget 0 for the Outbox paths) ----------------------


def measure_store_outbox_2048_instance():
    """RAM of the queue itself: one Outbox(2048) (ring, its memoryview, the object)."""

    def work():
        Outbox(2048)

    return work, 20


def measure_store_flashlog_instance():
    """RAM of an empty FlashLog with its defaults (1 KB write buffer), recovery included."""
    d = fresh_dir("m_inst")

    def work():
        FlashLog(d)

    return work, 20


def measure_store_offline_publish_qos1():
    """publish(bytes topic, bytes payload, 1) while offline: into the Outbox ring."""
    return _offline_publish(1, N)[2:]


def measure_store_offline_publish_qos2():
    """publish(..., 2) while offline: into the Outbox ring."""
    return _offline_publish(2, N)[2:]


def measure_store_offline_publish_qos1_evicting():
    """publish(..., 1) offline into a full DROP_OLDEST ring: each evicts the oldest."""
    return _offline_publish_evicting(1, N)[2:]


def measure_store_drain_qos1():
    """After connect(): one queued message sent from the ring, its PUBACK handled."""
    return _drain_after_connect(1, N)[2:]


def measure_store_drain_qos2():
    """After connect(): one queued message sent, PUBREC, PUBREL, PUBCOMP handled."""
    return _drain_after_connect(2, N)[2:]


def measure_store_backlog_publish_qos1():
    """publish(..., 1) connected behind a backlog, window full: into the ring."""
    return _backlog_publish(1, N)[2:]


def measure_store_backlog_publish_qos2():
    return _backlog_publish(2, N)[2:]


def measure_store_backlog_steady_qos1():
    """publish(..., 1) behind a backlog + the read that sends the oldest queued one."""
    return _backlog_steady(1, N)[2:]


def measure_store_backlog_steady_qos2():
    return _backlog_steady(2, N)[2:]


def measure_store_flash_offline_publish_qos1():
    """publish(..., 1) offline with store=FlashLog(dir): append (a file write each) +
    ring. Printed, not judged."""
    return _flash_offline_publish(NF)[2:]


def measure_store_flash_connected_publish_qos1():
    """publish(..., 1) connected with a FlashLog: append, send, PUBACK, ack. Printed."""
    return _flash_connected_publish(NF)[2:]


def measure_store_flash_drain_after_reset_qos1():
    """A new Client sending a log written before a reset: refill from flash, send,
    PUBACK, ack. Printed."""
    return _flash_drain_after_reset(1, NF)[2:]


def measure_store_flash_drain_after_reset_qos2():
    return _flash_drain_after_reset(2, NF)[2:]


def measure_store_flash_idle_cycle_behind():
    """cycle(10) reading nothing while the window waits for acks and the log holds more
    than the ring can take (300-byte messages, default Outbox(2048)). Printed. Allocates
    today: _drain() calls _refill() on every cycle, which parses the oldest segment of
    the log before finding that nothing fits."""
    return _flash_idle_behind(NF)[2:]
