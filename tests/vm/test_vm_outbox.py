# umqtt_paho.outbox inside the MicroPython VM: the essentials of tests/test_outbox.py
# (FIFO across wraps, the three drop policies and their counter, capacity edges,
# copy_publish == packet.encode_publish + payload, accessors, seq, take / done), and
# measure_* functions for the bytes put(), take() / done() and copy_publish() allocate
# (budget 0 in tests/test_vm.py).
#
# Runs in MicroPython (tests/test_vm.py loads the .mpy build into the VM) and on CPython
# (pytest collects it as it is): plain test functions and asserts, no pytest import, no
# f-strings, no random module (a small LCG instead), no collections.deque.

import sys

from umqtt_paho import servercodec as pk
from umqtt_paho.errors import ERR_QUEUE_SIZE, MQTTError
from umqtt_paho.outbox import DROP_NEWEST, DROP_OLDEST, RAISE, RECORD_HEADER, Outbox

N = 1000
TOPIC = b"sensors/vm/temp/0001"  # 20 bytes
PAYLOAD = b"p" * 64

# ---- helpers --------------------------------------------------------------------------


class Lcg:
    def __init__(self, seed):
        self.x = seed

    def below(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) % n


def raises(exc_type, fn, *args):
    try:
        fn(*args)
    except exc_type as e:
        return e
    raise AssertionError("%r did not raise %s" % (fn, exc_type.__name__))


def walk(ob):
    out = []
    off = ob.peek()
    while off >= 0:
        out.append((off, ob.size(off)))
        assert len(out) <= ob.count
        off = ob.after(off)
    return out


def messages(ob):
    out = []
    for off, _ in walk(ob):
        t = ob.topic_off(off)
        p = ob.payload_off(off)
        out.append(
            (
                bytes(ob.buf[t : t + ob.topic_len(off)]),
                bytes(ob.buf[p : p + ob.payload_len(off)]),
                ob.qos(off),
                ob.retain(off),
            )
        )
    return out


def snapshot(ob):
    return (
        bytes(ob.buf),
        ob.count,
        ob.used,
        ob.dropped,
        ob._head,
        ob._tail,
        ob._wrap,
        ob.unsent,
        ob._next,
    )


def check(ob):
    recs = walk(ob)
    assert len(recs) == ob.count == len(ob)
    total = 0
    for off, size in recs:
        assert 0 <= off and off + size <= ob.capacity
        assert size == RECORD_HEADER + ob.topic_len(off) + ob.payload_len(off)
        total += size
    assert total == ob.used <= ob.capacity
    spans = sorted(recs)
    for i in range(1, len(spans)):
        assert spans[i - 1][0] + spans[i - 1][1] <= spans[i][0], "records overlap"
    return recs


def rec(n, tag):
    return tag, bytes([n & 0xFF]) * (n - RECORD_HEADER - len(tag))


def expected_publish(topic, payload, qos, retain, dup, pid):
    buf = bytearray(len(topic) + len(payload) + 16)
    n = pk.encode_publish(buf, topic, len(payload), qos, retain, dup, pid, True)
    return bytes(buf[:n]), bytes(buf[:n]) + payload


# ---- tests ----------------------------------------------------------------------------


def test_fifo_over_many_wraps():
    rnd = Lcg(7)
    ob = Outbox(211, RAISE)
    model = []
    out = bytearray(256)
    wraps = 0
    last = 0
    n = 0
    for _ in range(3000):
        if rnd.below(100) < 55:
            topic = ("s/%d" % n).encode()
            payload = bytes([(n + i) & 0xFF for i in range(rnd.below(100))])
            qos = rnd.below(3)
            retain = rnd.below(2) == 1
            n += 1
            try:
                ob.put(topic, payload, qos, retain)
            except MQTTError as e:
                assert e.code == ERR_QUEUE_SIZE
                continue
            model.append((topic, payload, qos, retain))
        elif model:
            off = ob.peek()
            topic, payload, qos, retain = model.pop(0)
            pid = 1 + rnd.below(65535)
            dup = qos > 0 and rnd.below(2) == 1
            k = ob.copy_publish(off, out, pid, dup)
            assert bytes(out[:k]) == expected_publish(topic, payload, qos, retain, dup, pid)[1]
            ob.pop()
            head = ob.peek()
            if 0 <= head < last:
                wraps += 1
            last = head if head > 0 else 0
        assert ob.count == len(model)
    assert wraps > 50, wraps
    check(ob)
    assert messages(ob) == model


def test_drop_oldest_evicts_as_many_as_needed():
    ob = Outbox(100, DROP_OLDEST)
    for t in (b"1", b"2", b"3"):
        assert ob.put(rec(30, t)[0], rec(30, t)[1], 1) is True
    ob.put(rec(30, b"4")[0], rec(30, b"4")[1], 1)
    assert ob.dropped == 1 and walk(ob) == [(30, 30), (60, 30), (0, 30)]
    ob.put(rec(50, b"5")[0], rec(50, b"5")[1], 1)
    assert ob.dropped == 3 and walk(ob) == [(0, 30), (30, 50)]
    assert [m[0] for m in messages(ob)] == [b"4", b"5"]
    ob.put(rec(100, b"6")[0], rec(100, b"6")[1], 2)  # as large as the ring: all go
    assert ob.dropped == 5 and walk(ob) == [(0, 100)]
    check(ob)


def test_drop_newest_refuses_and_counts():
    ob = Outbox(90, DROP_NEWEST)
    for t in (b"1", b"2", b"3"):
        assert ob.put(rec(30, t)[0], rec(30, t)[1], 1) is True
    assert ob.used == 90  # filled exactly
    before = snapshot(ob)
    assert ob.put(b"", b"", 0) is False
    assert ob.put(b"x", b"y", 1) is False
    assert ob.dropped == 2
    assert snapshot(ob)[:3] == before[:3] and snapshot(ob)[4:] == before[4:]
    ob.pop()
    assert ob.put(rec(30, b"4")[0], rec(30, b"4")[1], 1) is True
    assert [m[0] for m in messages(ob)] == [b"2", b"3", b"4"]


def test_raise_stores_nothing():
    ob = Outbox(89, RAISE)
    ob.put(rec(30, b"a")[0], rec(30, b"a")[1], 1)
    ob.put(rec(30, b"b")[0], rec(30, b"b")[1], 2, True)
    before = snapshot(ob)
    e = raises(MQTTError, ob.put, rec(30, b"c")[0], rec(30, b"c")[1], 1)  # off by one
    assert e.code == ERR_QUEUE_SIZE
    assert snapshot(ob) == before and ob.dropped == 0
    assert ob.put(rec(29, b"c")[0], rec(29, b"c")[1], 1) is True  # fits exactly
    assert ob.used == 89


def test_too_large_for_the_ring_whatever_the_policy():
    for policy in (DROP_OLDEST, DROP_NEWEST, RAISE):
        ob = Outbox(50, policy)
        assert ob.put(rec(50, b"z")[0], rec(50, b"z")[1], 1) is True  # == capacity
        before = snapshot(ob)
        raises(ValueError, ob.put, rec(51, b"z")[0], rec(51, b"z")[1], 1)
        assert snapshot(ob) == before
    raises(ValueError, Outbox, RECORD_HEADER - 1)
    assert RECORD_HEADER == 11 and Outbox(11).capacity == 11
    raises(ValueError, Outbox, 100, 7)
    raises(ValueError, Outbox(100).put, b"a", b"b", 3)


def test_accessors_and_pop_clear():
    ob = Outbox(100, DROP_OLDEST)
    assert ob.peek() == -1 and len(ob) == 0
    raises(IndexError, ob.pop)
    ob.put(b"a/b", b"hello", 1, True)
    ob.put(bytearray(b"t\xc3\xa9"), memoryview(b"xyz"), 0)
    # size 19, flags retain | qos 1 << 1, tlen 3, seq 0, topic, payload
    assert bytes(ob.buf[0:19]) == b"\x00\x00\x00\x13\x03\x00\x03\x00\x00\x00\x00a/bhello"
    assert (ob.qos(0), ob.retain(0), ob.topic_len(0), ob.payload_len(0)) == (1, True, 3, 5)
    assert ob.topic_off(0) == 11 and ob.payload_off(0) == 14 and ob.size(0) == 19
    assert ob.seq(0) == 0 and not ob.taken(0)
    second = ob.after(0)
    assert second == 19 and ob.after(second) == -1 and ob.size(second) == 11 + 3 + 3
    assert (ob.qos(second), ob.retain(second), ob.payload_len(second)) == (0, False, 3)
    assert len(ob) == 2 and ob.used == 36
    ob.pop()
    assert ob.peek() == 19 and messages(ob) == [(b"t\xc3\xa9", b"xyz", 0, False)]
    ob.clear()
    assert ob.peek() == -1 and ob.count == ob.used == ob.dropped == 0
    ob.put(b"c", b"d", 2)
    assert ob.peek() == 0


def test_copy_publish_matches_encode_publish():
    topics = (b"a/b", b"temp\xc3\xa9rature/\xe6\x97\xa5/\xf0\x9f\x98\x80", b"t" * 300)
    cases = (
        (0, False, False, 0),
        (0, True, False, 0),
        (1, False, False, 1),
        (1, True, True, 258),
        (2, False, True, 65535),
    )
    ob = Outbox(21000, RAISE)
    for topic in topics:
        for plen in (0, 1, 200, 20000):  # 20000: a 3-byte remaining length
            payload = bytes([i & 0xFF for i in range(plen)])
            for qos, retain, dup, pid in cases:
                ob.clear()
                ob.put(b"x", b"y" * 33, 1)  # so the record is not at offset 0
                ob.put(topic, payload, qos, retain)
                ob.pop()
                off = ob.peek()
                assert off == 45  # 11 + 1 + 33
                header, whole = expected_publish(topic, payload, qos, retain, dup, pid)
                out = bytearray(len(whole))
                assert ob.copy_publish(off, out, pid, dup) == len(whole)
                assert bytes(out) == whole
                short = bytearray(len(whole) - 1)
                assert ob.copy_publish(off, short, pid, dup) == -1
                assert short == bytearray(len(whole) - 1)
                out = bytearray(len(header))
                assert ob.copy_header(off, out, pid, dup) == len(header)
                assert bytes(out) == header
                assert ob.copy_header(off, bytearray(len(header) - 1), pid, dup) == -1


def test_copy_publish_argument_errors():
    ob = Outbox(100)
    ob.put(b"a", b"b", 1)
    ob.put(b"c", b"d", 0)
    out = bytearray(20)
    raises(ValueError, ob.copy_publish, 0, out, 0)
    raises(ValueError, ob.copy_publish, 0, out, 65536)
    raises(ValueError, ob.copy_publish, ob.after(0), out, 0, True)  # DUP at QoS 0
    raises(ValueError, ob.copy_publish, -1, out, 1)
    assert out == bytearray(20)


def test_seq_take_done():
    ob = Outbox(100, RAISE)
    seqs = (0, 0x3FFFFFFF, 0x40000000, 0xFFFFFFFF)  # small ints and not, on 32 bits
    for i in range(4):
        t, p = rec(20, str(i).encode())
        assert ob.put(t, p, 1, False, seqs[i]) is True
    assert [off for off, _ in walk(ob)] == [0, 20, 40, 60]
    assert [ob.seq(off) for off in (0, 20, 40, 60)] == list(seqs)
    assert bytes(ob.buf[67:71]) == b"\xff\xff\xff\xff" and bytes(ob.buf[27:31]) == b"?\xff\xff\xff"
    assert (ob.count, ob.unsent, ob.next_unsent()) == (4, 4, 0)
    assert ob.take() == 0 and ob.take() == 20 and ob.taken(20) and not ob.taken(40)
    assert (ob.count, ob.unsent, ob.next_unsent()) == (4, 2, 40)
    out = bytearray(64)
    n = ob.copy_publish(20, out, 7, False)  # a taken record: no flag bit in the packet
    assert out[0] == 0x32  # PUBLISH, qos 1, no DUP: the TAKEN bit (0x08) does not leak
    assert bytes(out[:n]) == expected_publish(b"1", rec(20, b"1")[1], 1, False, False, 7)[1]
    ob.done(20)  # out of order: both stay
    assert ob.count == 4 and ob.used == 80 and ob.seq(20) == seqs[1]
    ob.done(0)  # now both leave
    assert (ob.count, ob.unsent, ob.used, ob.peek()) == (2, 2, 40, 40)
    ob.put(rec(20, b"4")[0], rec(20, b"4")[1], 2, True, 4)  # 80..100
    ob.put(rec(20, b"5")[0], rec(20, b"5")[1], 0, False, 5)  # wraps: 0..20
    assert walk(ob) == [(40, 20), (60, 20), (80, 20), (0, 20)]
    assert [ob.take() for _ in range(5)] == [40, 60, 80, 0, -1]
    assert (ob.count, ob.unsent, ob.next_unsent()) == (4, 0, -1)
    for off in (0, 80, 60):  # newest first: nothing leaves
        ob.done(off)
        assert ob.count == 4
    ob.done(40)
    assert (ob.count, ob.unsent, ob.used, ob.peek()) == (0, 0, 0, -1)
    # pop() of an untaken head moves the cursor; clear() resets it
    for i in range(3):
        ob.put(rec(30, b"p")[0], rec(30, b"p")[1], 1)
    ob.pop()
    assert (ob.count, ob.unsent, ob.next_unsent()) == (2, 2, 30)
    assert ob.take() == 30
    ob.clear()
    assert (ob.count, ob.unsent, ob.next_unsent(), ob.take()) == (0, 0, -1, -1)


def test_drop_oldest_never_evicts_a_taken_record():
    ob = Outbox(90, DROP_OLDEST)
    for t in (b"1", b"2", b"3"):
        ob.put(rec(30, t)[0], rec(30, t)[1], 1)
    assert ob.take() == 0
    before = snapshot(ob)
    assert ob.put(rec(30, b"4")[0], rec(30, b"4")[1], 1) is False  # refused
    assert ob.dropped == 1
    after = snapshot(ob)
    assert after[:3] == before[:3] and after[4:] == before[4:]
    assert ob.has_room(1, 18) is False
    ob.done(0)
    assert ob.has_room(1, 18) is True
    assert ob.put(rec(30, b"4")[0], rec(30, b"4")[1], 1) is True and ob.dropped == 1
    assert ob.put(rec(30, b"5")[0], rec(30, b"5")[1], 1) is True  # evicts "2", untaken
    assert ob.dropped == 2 and [m[0] for m in messages(ob)] == [b"3", b"4", b"5"]
    assert ob.next_unsent() == 60 and ob.unsent == 3
    check(ob)


def _allocated(work, n):
    # Bytes n calls of work() allocate, the GC off (as tests/vm/vmrunner.py measures).
    import gc

    gc.disable()
    try:
        a = gc.mem_alloc()
        for _ in range(n):
            work()
        b = gc.mem_alloc()
    finally:
        gc.enable()
    return b - a


def test_take_done_and_seq_allocate_nothing():
    # The measure_* functions below are judged by tests/test_vm.py's ALLOC_BUDGET; this
    # checks the take / done / seq ones here as well. MicroPython only (gc.mem_alloc).
    if sys.implementation.name != "micropython":
        return
    assert _allocated(_nothing, N) == 0  # the loop itself
    for measure in (
        measure_outbox_put_seq,
        measure_outbox_take_done,
        measure_outbox_take_accessors,
    ):
        work, n = measure()
        used = _allocated(work, n)
        assert used == 0, "%s: %d bytes in %d calls" % (measure.__name__, used, n)


def _nothing():
    pass


# ---- allocation -----------------------------------------------------------------------


def measure_outbox_put():
    """Outbox.put(20-byte bytes topic, 64-byte bytes payload, qos 1), then pop(): steady
    state with 5 records queued, moving around the ring (it wraps, never fills)."""
    ob = Outbox(1024, DROP_OLDEST)
    topic = TOPIC
    payload = PAYLOAD
    for _ in range(5):
        ob.put(topic, payload, 1, False)
    for _ in range(50):  # warm-up: several laps of the ring
        ob.put(topic, payload, 1, False)
        ob.pop()
    assert len(topic) == 20 and len(payload) == 64 and ob.dropped == 0

    def work():
        ob.put(topic, payload, 1, False)
        ob.pop()

    return work, N


def measure_outbox_put_drop_oldest():
    """put() into a full ring under DROP_OLDEST: every put evicts the oldest record."""
    ob = Outbox(300, DROP_OLDEST)
    topic = TOPIC
    payload = PAYLOAD
    for _ in range(10):
        ob.put(topic, payload, 2, True)
    assert ob.dropped > 0

    def work():
        ob.put(topic, payload, 2, True)

    return work, N


def measure_outbox_put_drop_newest():
    """put() into a full ring under DROP_NEWEST: refused, counted."""
    ob = Outbox(300, DROP_NEWEST)
    topic = TOPIC
    payload = PAYLOAD
    for _ in range(10):
        ob.put(topic, payload, 1, False)
    assert ob.dropped > 0

    def work():
        ob.put(topic, payload, 1, False)

    return work, N


def measure_outbox_copy_publish():
    """copy_publish(off, send buffer, pid, dup) of a QoS 1 record (20 + 64 bytes)."""
    ob = Outbox(1024)
    ob.put(b"x", b"y", 0)
    ob.put(TOPIC, PAYLOAD, 1, True)
    ob.pop()
    off = ob.peek()
    out = bytearray(256)
    for _ in range(10):
        ob.copy_publish(off, out, 1234, True)
    n = ob.copy_publish(off, out, 1234, True)
    assert bytes(out[:n]) == expected_publish(TOPIC, PAYLOAD, 1, True, True, 1234)[1]

    def work():
        ob.copy_publish(off, out, 1234, True)

    return work, N


def measure_outbox_copy_header():
    """copy_header(off, send buffer, pid, dup): header only, for a large payload."""
    ob = Outbox(1024)
    ob.put(TOPIC, PAYLOAD, 2, False)
    out = bytearray(64)

    def work():
        ob.copy_header(0, out, 4321, False)

    return work, N


def measure_outbox_accessors():
    """peek, qos, retain, topic_len, payload_len, payload_off, size, after, len()."""
    ob = Outbox(1024)
    ob.put(TOPIC, PAYLOAD, 1, True)
    ob.put(TOPIC, PAYLOAD, 2, False)

    def work():
        off = ob.peek()
        ob.qos(off)
        ob.retain(off)
        ob.topic_len(off)
        ob.payload_len(off)
        ob.payload_off(off)
        ob.size(off)
        ob.after(off)
        len(ob)

    return work, N


def measure_outbox_drain():
    """A sender's cycle: peek, copy_publish into the send buffer, pop; then a new put."""
    ob = Outbox(1024, RAISE)
    topic = TOPIC
    payload = PAYLOAD
    out = bytearray(256)
    for _ in range(8):
        ob.put(topic, payload, 1, False)

    def work():
        off = ob.peek()
        ob.copy_publish(off, out, 77, False)
        ob.pop()
        ob.put(topic, payload, 1, False)

    return work, N


def measure_outbox_put_seq():
    """put(20-byte topic, 64-byte payload, qos 1, retain False, seq), then pop(): as
    measure_outbox_put, with the flash log's seq stored (a small int: up to 2**30 - 1
    on 32-bit MicroPython)."""
    ob = Outbox(1024, DROP_OLDEST)
    topic = TOPIC
    payload = PAYLOAD
    seq = 0x3FFFFFFF
    for _ in range(5):
        ob.put(topic, payload, 1, False, seq)
    for _ in range(50):  # warm-up: several laps of the ring
        ob.put(topic, payload, 1, False, seq)
        ob.pop()
    assert ob.seq(ob.peek()) == seq and ob.dropped == 0

    def work():
        ob.put(topic, payload, 1, False, seq)
        ob.pop()

    return work, N


def measure_outbox_take_done():
    """The client's cycle: put two (with a seq), take the two oldest, their acks out of
    order: done(second), then done(first) pops both. Two untaken records stay queued;
    the ring wraps, never fills."""
    ob = Outbox(1024, DROP_OLDEST)
    topic = TOPIC
    payload = PAYLOAD
    seq = 123456
    ob.put(topic, payload, 1, False, seq)
    ob.put(topic, payload, 1, False, seq)

    def work():
        ob.put(topic, payload, 1, False, seq)
        ob.put(topic, payload, 2, False, seq)
        a = ob.take()
        b = ob.take()
        ob.done(b)
        ob.done(a)

    for _ in range(50):  # warm-up: several laps of the ring
        work()
    assert ob.count == ob.unsent == 2 and ob.dropped == 0

    return work, N


def measure_outbox_take_accessors():
    """next_unsent, taken, seq, has_room, unsent: what the client reads to take."""
    ob = Outbox(1024)
    ob.put(TOPIC, PAYLOAD, 1, True, 0x3FFFFFFF)
    ob.put(TOPIC, PAYLOAD, 2, False, 1)
    ob.take()

    def work():
        off = ob.next_unsent()
        ob.taken(off)
        ob.seq(off)
        ob.seq(0)
        ob.has_room(20, 64)
        ob.unsent

    return work, N


def measure_outbox_seq_large():
    """put() + seq() + pop() with a seq of 2**32 - 1: above 2**30 - 1 a seq is not a small
    int on 32-bit MicroPython, and the shifts allocate (put about 128 B, seq() about
    160 B on 1.29). Not in ALLOC_BUDGET: printed, not judged."""
    ob = Outbox(1024)
    topic = TOPIC
    payload = PAYLOAD
    seq = 0xFFFFFFFF

    def work():
        ob.put(topic, payload, 1, False, seq)
        ob.seq(ob.peek())
        ob.pop()

    return work, N
