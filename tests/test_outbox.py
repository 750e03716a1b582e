"""umqtt_paho.outbox: the ring of queued outgoing messages (CPython, pytest, hypothesis).

What is checked:
- FIFO order across many wraps, every record read back in place (accessors, view) and
  through copy_publish decoded by packet.decode_publish;
- each drop policy against a reference built only from what the outbox shows (record
  offsets and sizes): DROP_OLDEST evicts exactly as many oldest records as needed,
  DROP_NEWEST refuses the new one, RAISE raises before anything changes (state and ring
  bytes compared), and the dropped counter;
- capacity edges: exact fill, off by one, a record as large as the ring, one byte more;
- copy_publish / copy_header produce exactly packet.encode_publish's bytes (+ payload),
  taken or acknowledged records included (no flag bit leaks into the packet);
- seq stored and read back; take() in order across wraps, done() in and out of order,
  unsent / next_unsent() through pop() and clear(), has_room(); DROP_OLDEST evicts
  untaken records only (a taken head refuses the new record), against the same
  reference model in a hypothesis test and a long seeded walk.

The MicroPython VM runs the essentials in tests/vm/test_vm_outbox.py, with the
allocation figures.
"""

import random
from collections import deque

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from umqtt_paho import servercodec as pk
from umqtt_paho.errors import ERR_QUEUE_SIZE, MQTTError
from umqtt_paho.outbox import DROP_NEWEST, DROP_OLDEST, RAISE, RECORD_HEADER, Outbox

POLICIES = [DROP_OLDEST, DROP_NEWEST, RAISE]
POLICY_IDS = ["DROP_OLDEST", "DROP_NEWEST", "RAISE"]

# database=None: no .hypothesis directory left in the working tree
PROPS = settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# ---- helpers: what the outbox shows ---------------------------------------------------


def walk(ob):
    """[(offset, size)] of the records, oldest first, through peek() / after()."""
    out = []
    off = ob.peek()
    while off >= 0:
        out.append((off, ob.size(off)))
        assert len(out) <= ob.count, "after() runs past count"
        off = ob.after(off)
    return out


def messages(ob):
    """[(topic, payload, qos, retain)] read in place, oldest first."""
    out = []
    for off, _ in walk(ob):
        t = ob.topic_off(off)
        p = ob.payload_off(off)
        out.append(
            (
                bytes(ob.view[t : t + ob.topic_len(off)]),
                bytes(ob.view[p : p + ob.payload_len(off)]),
                ob.qos(off),
                ob.retain(off),
            )
        )
    return out


def snapshot(ob):
    """Everything an outbox holds: its attributes and the ring's bytes."""
    state = {k: v for k, v in vars(ob).items() if k not in ("buf", "view")}
    state["bytes"] = bytes(ob.buf)
    return state


def fits(recs, cap, size):
    """Whether a record of size bytes fits now without dropping anything, worked out
    from the record offsets only: after the newest record, up to the oldest one (or
    the end of the ring), or else at offset 0 below the oldest one."""
    if not recs:
        return size <= cap
    head = recs[0][0]
    end = recs[-1][0] + recs[-1][1]
    if end <= head:  # wrapped: the newest record sits below the oldest
        return head - end >= size
    return cap - end >= size or head >= size


def check_invariants(ob):
    recs = walk(ob)
    assert len(recs) == ob.count == len(ob)
    assert sum(s for _, s in recs) == ob.used <= ob.capacity
    spans = sorted(recs)
    for off, size in spans:
        assert 0 <= off and off + size <= ob.capacity  # contiguous, inside the ring
        assert size == RECORD_HEADER + ob.topic_len(off) + ob.payload_len(off)
        assert ob.qos(off) in (0, 1, 2)
    for (a, sa), (b, _) in zip(spans, spans[1:]):
        assert a + sa <= b, "records overlap"
    assert ob.peek() == (recs[0][0] if recs else -1)
    return recs


def decode(out, n):
    """A PUBLISH packet out[:n] back to (topic, payload, qos, retain, dup, pid)."""
    mv = memoryview(out)[:n]
    first = mv[0]
    assert pk.packet_type(first) == pk.PUBLISH
    hs = pk.header_size(mv, 0, n)
    rl = pk.remaining_length(mv, 1, n)
    assert hs + rl == n
    start = pk.decode_publish(first, mv, hs, rl)
    tl = mv[hs] << 8 | mv[hs + 1]
    qos = (first >> 1) & 3
    pid = (mv[start - 2] << 8 | mv[start - 1]) if qos else 0
    topic = bytes(mv[hs + 2 : hs + 2 + tl])
    return topic, bytes(mv[start:n]), qos, bool(first & 1), bool(first & 8), pid


def expected_publish(topic, payload, qos, retain, dup, pid):
    buf = bytearray(len(topic) + len(payload) + 16)
    n = pk.encode_publish(buf, topic, len(payload), qos, retain, dup, pid, True)
    return bytes(buf[:n]), bytes(buf[:n]) + payload


# ---- construction and accessors --------------------------------------------------------


def test_constructor_checks():
    assert RECORD_HEADER == 11  # size u32, flags u8, tlen u16, seq u32
    for cap in (0, 10, -1, 0x40000000):  # 10: one byte less than a header
        with pytest.raises(ValueError, match="capacity"):
            Outbox(cap)
    with pytest.raises(ValueError, match="policy"):
        Outbox(100, 3)
    ob = Outbox(11)
    assert ob.capacity == 11 and ob.policy == DROP_OLDEST and len(ob.buf) == 11
    assert ob.count == ob.used == ob.dropped == ob.unsent == 0 and ob.peek() == -1
    assert ob.next_unsent() == -1 and ob.take() == -1


def test_accessors_read_the_record_in_place():
    ob = Outbox(200, RAISE)
    assert ob.put(b"a/b", b"hello", 1, True) is True
    assert ob.put(bytearray(b"t\xc3\xa9"), memoryview(b"xyz123"), 2, False) is True
    assert ob.put(b"q0", b"", 0) is True
    first = ob.peek()
    assert first == 0
    assert ob.size(0) == 11 + 3 + 5
    assert (ob.qos(0), ob.retain(0), ob.topic_len(0), ob.payload_len(0)) == (1, True, 3, 5)
    assert ob.topic_off(0) == 11 and ob.payload_off(0) == 14
    assert ob.seq(0) == 0 and not ob.taken(0)  # seq defaults to 0
    # the diagram: size 19, flags retain | qos 1 << 1, tlen 3, seq 0, topic, payload
    assert bytes(ob.buf[0:19]) == b"\x00\x00\x00\x13\x03\x00\x03\x00\x00\x00\x00a/bhello"
    second = ob.after(first)
    assert second == 19
    assert (ob.qos(second), ob.retain(second), ob.topic_len(second)) == (2, False, 3)
    assert ob.payload_len(second) == 6 and ob.size(second) == 11 + 3 + 6
    assert bytes(ob.buf[second : second + 11]) == b"\x00\x00\x00\x14\x04\x00\x03\x00\x00\x00\x00"
    third = ob.after(second)
    assert third == 39 and ob.size(third) == 11 + 2
    assert (ob.qos(third), ob.retain(third), ob.payload_len(third)) == (0, False, 0)
    assert ob.after(third) == -1
    assert messages(ob) == [
        (b"a/b", b"hello", 1, True),
        (b"t\xc3\xa9", b"xyz123", 2, False),
        (b"q0", b"", 0, False),
    ]
    assert len(ob) == ob.count == ob.unsent == 3 and ob.used == 19 + 20 + 13
    assert repr(ob) == "<Outbox 3 records, 52/200 bytes, dropped 0>"


def test_put_copies_the_callers_bytes():
    ob = Outbox(100)
    topic = bytearray(b"a/b")
    payload = bytearray(b"12345")
    ob.put(topic, payload, 1)
    topic[0] = ord("z")
    payload[:] = b"xxxxx"
    assert messages(ob) == [(b"a/b", b"12345", 1, False)]


def test_put_argument_errors_change_nothing():
    ob = Outbox(70000, DROP_OLDEST)
    ob.put(b"a", b"b", 1)
    before = snapshot(ob)
    for qos in (3, -1, None):
        with pytest.raises(ValueError, match="QoS"):
            ob.put(b"a", b"b", qos)
    with pytest.raises(ValueError, match="65535"):
        ob.put(b"t" * 65536, b"", 1)
    for seq in (-1, 2**32):
        with pytest.raises(ValueError, match="seq"):
            ob.put(b"a", b"b", 1, seq=seq)
    assert snapshot(ob) == before


def test_pop_and_clear():
    ob = Outbox(64, DROP_NEWEST)
    with pytest.raises(IndexError):
        ob.pop()
    ob.put(b"a", b"1", 1)
    ob.put(b"b", b"2", 2)
    ob.pop()
    assert messages(ob) == [(b"b", b"2", 2, False)] and ob.used == 11 + 2
    ob.pop()
    assert ob.peek() == -1 and ob.count == ob.used == 0
    ob.put(b"c", b"3", 1)
    assert ob.peek() == 0  # an empty ring restarts at 0
    for _ in range(10):
        ob.put(b"x", b"y" * 20, 1)  # fills, then refused
    assert ob.dropped > 0
    dropped = ob.dropped
    ob.clear()
    assert ob.count == ob.used == 0 and ob.peek() == -1 and len(ob) == 0
    assert ob.dropped == dropped  # clear() is not a drop
    ob.put(b"d", b"4", 1)
    assert ob.peek() == 0 and messages(ob) == [(b"d", b"4", 1, False)]


# ---- capacity edges ----------------------------------------------------------------------


def rec(n, tag=b"t"):
    """(topic, payload) of a record of exactly n bytes in the ring
    (n >= RECORD_HEADER + len(tag))."""
    assert n >= RECORD_HEADER + len(tag), "a %d-byte record cannot hold tag %r" % (n, tag)
    return tag, bytes([n & 0xFF]) * (n - RECORD_HEADER - len(tag))


@pytest.mark.parametrize("policy", POLICIES, ids=POLICY_IDS)
def test_fills_exactly(policy):
    ob = Outbox(90, policy)
    for i in range(3):
        assert ob.put(*rec(30, b"%d" % i), qos=1) is True
    assert ob.used == ob.capacity == 90 and ob.count == 3
    assert walk(ob) == [(0, 30), (30, 30), (60, 30)]
    before = snapshot(ob)
    smallest = (b"", b"")  # an 11-byte record: no room left at all
    if policy == RAISE:
        with pytest.raises(MQTTError) as e:
            ob.put(*smallest, qos=1)
        assert e.value.code == ERR_QUEUE_SIZE
        assert snapshot(ob) == before
    elif policy == DROP_NEWEST:
        assert ob.put(*smallest, qos=1) is False
        assert ob.dropped == 1
        before["dropped"] = 1
        assert snapshot(ob) == before
    else:
        assert ob.put(*smallest, qos=1) is True
        assert ob.dropped == 1 and walk(ob) == [(30, 30), (60, 30), (0, 11)]
        assert [m[0] for m in messages(ob)] == [b"1", b"2", b""]


@pytest.mark.parametrize("policy", POLICIES, ids=POLICY_IDS)
def test_off_by_one(policy):
    ob = Outbox(89, policy)
    ob.put(*rec(30, b"a"), qos=1)
    ob.put(*rec(30, b"b"), qos=1)
    before = snapshot(ob)
    if policy == RAISE:
        with pytest.raises(MQTTError):
            ob.put(*rec(30, b"c"), qos=1)
        assert snapshot(ob) == before
    elif policy == DROP_NEWEST:
        assert ob.put(*rec(30, b"c"), qos=1) is False and ob.dropped == 1
        assert [m[0] for m in messages(ob)] == [b"a", b"b"]
    else:
        # 29 bytes left at the end, none below the head: the oldest goes, the new one
        # starts at 0 (the upper part holds "b" up to offset 60).
        assert ob.put(*rec(30, b"c"), qos=1) is True and ob.dropped == 1
        assert walk(ob) == [(30, 30), (0, 30)]
    ob2 = Outbox(89, policy)
    ob2.put(*rec(30, b"a"), qos=1)
    ob2.put(*rec(30, b"b"), qos=1)
    assert ob2.put(*rec(29, b"c"), qos=1) is True  # one byte less fits exactly
    assert ob2.used == 89 and ob2.dropped == 0


@pytest.mark.parametrize("policy", POLICIES, ids=POLICY_IDS)
def test_record_as_large_as_the_ring(policy):
    ob = Outbox(50, policy)
    assert ob.put(*rec(50), qos=2) is True  # empty: it fits
    assert walk(ob) == [(0, 50)] and ob.used == 50
    ob.pop()
    ob.put(*rec(20, b"a"), qos=1)
    ob.put(*rec(20, b"b"), qos=1)  # 10 bytes left: the 50-byte record needs both gone
    before = snapshot(ob)
    if policy == DROP_OLDEST:
        assert ob.put(*rec(50, b"z"), qos=1) is True
        assert ob.dropped == 2 and walk(ob) == [(0, 50)]
        assert messages(ob)[0][0] == b"z"
    elif policy == DROP_NEWEST:
        assert ob.put(*rec(50, b"z"), qos=1) is False and ob.dropped == 1
        assert [m[0] for m in messages(ob)] == [b"a", b"b"]
    else:
        with pytest.raises(MQTTError) as e:
            ob.put(*rec(50, b"z"), qos=1)
        assert e.value.code == ERR_QUEUE_SIZE and snapshot(ob) == before


@pytest.mark.parametrize("policy", POLICIES, ids=POLICY_IDS)
@pytest.mark.parametrize("queued", [0, 2])
def test_record_larger_than_the_ring_is_refused_whatever_the_policy(policy, queued):
    ob = Outbox(50, policy)
    for i in range(queued):
        ob.put(*rec(20, b"%d" % i), qos=1)
    before = snapshot(ob)
    with pytest.raises(ValueError, match="needs 51 bytes .* holds 50"):
        ob.put(*rec(51), qos=1)
    assert snapshot(ob) == before and ob.dropped == 0


def test_minimum_record_in_minimum_ring():
    ob = Outbox(11, DROP_OLDEST)
    for qos in (0, 1, 2, 1):
        assert ob.put(b"", b"", qos, qos == 2, seq=qos + 5) is True
        assert walk(ob) == [(0, 11)] and ob.qos(0) == qos and ob.retain(0) == (qos == 2)
        assert ob.seq(0) == qos + 5
    assert ob.dropped == 3
    with pytest.raises(ValueError):
        ob.put(b"a", b"", 1)


def test_wrap_at_exact_end_and_with_a_gap():
    ob = Outbox(60, DROP_NEWEST)
    ob.put(*rec(30, b"a"), qos=1)
    ob.put(*rec(30, b"b"), qos=1)  # tail == capacity
    ob.pop()
    ob.put(*rec(30, b"c"), qos=1)  # wraps with no gap
    assert walk(ob) == [(30, 30), (0, 30)] and ob.used == 60
    ob.pop()  # the upper part empties: unwrapped, head at 0
    assert walk(ob) == [(0, 30)]
    ob.put(*rec(25, b"d"), qos=1)  # 30..55, 5 bytes left at the end
    ob.pop()  # head 30
    ob.put(*rec(16, b"e"), qos=1)  # does not fit the 5: starts at 0 below head 30
    assert walk(ob) == [(30, 25), (0, 16)]
    assert ob.put(*rec(15, b"f"), qos=1) is False  # 14 bytes between 16 and 30
    assert ob.put(*rec(14, b"g"), qos=1) is True
    assert walk(ob) == [(30, 25), (0, 16), (16, 14)] and ob.used == 55
    assert [m[0] for m in messages(ob)] == [b"d", b"e", b"g"]
    ob.pop()
    assert walk(ob) == [(0, 16), (16, 14)]
    ob.put(*rec(30, b"h"), qos=1)  # 30..60 after unwrapping
    assert walk(ob) == [(0, 16), (16, 14), (30, 30)] and ob.used == 60


# ---- drop policies -----------------------------------------------------------------------


def test_drop_oldest_evicts_as_many_as_needed():
    ob = Outbox(100, DROP_OLDEST)
    for t in (b"1", b"2", b"3"):
        ob.put(*rec(30, t), qos=1)
    ob.put(*rec(30, b"4"), qos=1)  # 10 left at the end: "1" goes, "4" at 0
    assert ob.dropped == 1 and walk(ob) == [(30, 30), (60, 30), (0, 30)]
    ob.put(*rec(50, b"5"), qos=1)  # no room below head 30: "2", then "3" go
    assert ob.dropped == 3
    assert walk(ob) == [(0, 30), (30, 50)]
    assert [m[0] for m in messages(ob)] == [b"4", b"5"]
    ob.put(*rec(20, b"6"), qos=1)  # 80..100: no drop
    assert ob.dropped == 3 and ob.used == 100
    ob.put(*rec(95, b"7"), qos=1)  # everything goes
    assert ob.dropped == 6 and walk(ob) == [(0, 95)]


def test_drop_newest_refuses_and_counts():
    ob = Outbox(76, DROP_NEWEST)  # 3 records of 24 bytes, 4 bytes to spare
    while ob.put(b"a/b", b"x" * 10, 1):
        pass
    assert ob.count == 3 and ob.used == 72 and ob.dropped == 1
    before = snapshot(ob)
    for i in range(5):
        assert ob.put(b"a/b", b"%d" % i, 2) is False
    assert ob.dropped == 6
    before["dropped"] = 6
    assert snapshot(ob) == before
    ob.pop()
    assert ob.put(b"a/b", b"y" * 10, 1) is True  # room again (at 0, below the head)
    assert walk(ob) == [(24, 24), (48, 24), (0, 24)]
    assert [m[1] for m in messages(ob)] == [b"x" * 10, b"x" * 10, b"y" * 10]


def test_raise_stores_nothing():
    ob = Outbox(80, RAISE)
    ob.put(b"a/b", b"x" * 10, 1)  # 24 bytes each
    ob.put(b"a/b", b"x" * 10, 1)
    ob.pop()
    ob.put(b"a/b", b"z" * 10, 2)  # 48..72
    ob.put(b"a/b", b"w" * 5, 1, True)  # 19 bytes: wrapped now, at 0..19 below head 24
    assert walk(ob) == [(24, 24), (48, 24), (0, 19)]
    before = snapshot(ob)
    for payload in (b"q" * 40, b"q" * 11):
        with pytest.raises(MQTTError) as e:
            ob.put(b"a/b", payload, 1)
        assert e.value.code == ERR_QUEUE_SIZE and "outbox full" in str(e.value)
        assert snapshot(ob) == before
    assert ob.dropped == 0


# ---- seq, take / done ----------------------------------------------------------------------


def state(ob):
    """(count, unsent, used, next_unsent())"""
    return ob.count, ob.unsent, ob.used, ob.next_unsent()


def test_seq_round_trip():
    seqs = [0, 1, 0xFF, 0x100, 0x01020304, 0x3FFFFFFF, 0x40000000, 2**31, 2**32 - 1]
    ob = Outbox(200, RAISE)
    offs = []
    for i, seq in enumerate(seqs):
        assert ob.put(b"s", b"%d" % i, 1, i % 2 == 1, seq=seq) is True
        offs.append(walk(ob)[-1][0])
    assert offs == [13 * i for i in range(len(seqs))]  # 11 + 1 + 1 bytes each
    for off, seq in zip(offs, seqs):
        assert ob.seq(off) == seq
        assert bytes(ob.buf[off + 7 : off + 11]) == seq.to_bytes(4, "big")  # u32 at +7
    # the other fields are not disturbed by the seq bytes
    assert messages(ob) == [(b"s", b"%d" % i, 1, i % 2 == 1) for i in range(len(seqs))]
    assert ob.put(b"t", b"p", 2, True, 0xCAFEBABE) is True  # seq positional, as the client
    assert ob.put(b"u", b"q", 0) is True  # no seq: 0
    last2, last = [off for off, _ in walk(ob)[-2:]]
    assert ob.seq(last2) == 0xCAFEBABE
    assert ob.seq(last) == 0 and bytes(ob.buf[last + 7 : last + 11]) == bytes(4)
    # take / done change the flags, never the seq
    assert [ob.take() for _ in range(3)] == offs[:3]
    ob.done(offs[1])  # out of order: stays
    assert [ob.seq(off) for off in offs] == seqs
    ob.done(offs[0])  # the first two leave
    assert ob.peek() == offs[2] and [ob.seq(off) for off in offs[2:]] == seqs[2:]


def test_seq_across_a_wrap():
    ob = Outbox(100, DROP_OLDEST)
    for t, seq in ((b"1", 0xA1A2A3A4), (b"2", 0xB1B2B3B4), (b"3", 0xC1C2C3C4)):
        ob.put(*rec(30, t), qos=1, seq=seq)
    ob.put(*rec(30, b"4"), qos=2, seq=0xD1D2D3D4)  # evicts "1", goes to 0 over it
    assert walk(ob) == [(30, 30), (60, 30), (0, 30)]
    assert [ob.seq(off) for off, _ in walk(ob)] == [0xB1B2B3B4, 0xC1C2C3C4, 0xD1D2D3D4]


def test_take_in_order_across_a_wrap():
    ob = Outbox(100, RAISE)
    for t in (b"a", b"b", b"c"):
        ob.put(*rec(30, t), qos=1)
    assert state(ob) == (3, 3, 90, 0)
    assert ob.take() == 0 and ob.taken(0) and not ob.taken(30) and not ob.taken(60)
    assert state(ob) == (3, 2, 90, 30)
    ob.done(0)  # "a" leaves: head 30
    assert state(ob) == (2, 2, 60, 30) and ob.peek() == 30
    ob.put(*rec(30, b"d"), qos=1)  # 10 bytes left at the end: "d" starts at 0
    assert walk(ob) == [(30, 30), (60, 30), (0, 30)]
    assert state(ob) == (3, 3, 90, 30)
    assert ob.take() == 30 and ob.next_unsent() == 60
    assert ob.take() == 60 and ob.next_unsent() == 0  # the cursor follows the wrap
    assert ob.take() == 0 and state(ob) == (3, 0, 90, -1)
    assert ob.take() == -1 and state(ob) == (3, 0, 90, -1)  # nothing left to take
    assert [ob.taken(off) for off, _ in walk(ob)] == [True, True, True]
    assert [m[0] for m in messages(ob)] == [b"b", b"c", b"d"]
    ob.done(30)
    assert state(ob) == (2, 0, 60, -1) and ob.peek() == 60
    ob.done(60)  # the upper part empties: unwrapped, head 0
    assert state(ob) == (1, 0, 30, -1) and ob.peek() == 0
    ob.done(0)
    assert state(ob) == (0, 0, 0, -1) and ob.peek() == -1
    ob.put(*rec(30, b"e"), qos=1)  # an empty ring restarts at 0
    assert state(ob) == (1, 1, 30, 0) and not ob.taken(0)  # no flag left over


def test_done_out_of_order():
    ob = Outbox(100, DROP_NEWEST)
    for t in (b"a", b"b", b"c"):
        ob.put(*rec(30, t), qos=1)
    assert (ob.take(), ob.take()) == (0, 30)
    ob.done(30)  # "b" acknowledged before "a": both stay
    assert state(ob) == (3, 1, 90, 60) and walk(ob) == [(0, 30), (30, 30), (60, 30)]
    assert [m[0] for m in messages(ob)] == [b"a", b"b", b"c"]
    assert ob.taken(0) and ob.taken(30) and not ob.taken(60)
    ob.done(0)  # now both leave, in order
    assert state(ob) == (1, 1, 30, 60) and walk(ob) == [(60, 30)]
    # three taken, acknowledged newest first: nothing leaves until the oldest is done
    ob.put(*rec(30, b"d"), qos=1)  # wraps to 0
    ob.put(*rec(30, b"e"), qos=1)  # 30..60
    assert [ob.take() for _ in range(3)] == [60, 0, 30]
    ob.done(30)
    assert state(ob) == (3, 0, 90, -1)
    ob.done(0)
    assert state(ob) == (3, 0, 90, -1) and [m[0] for m in messages(ob)] == [b"c", b"d", b"e"]
    ob.done(60)
    assert state(ob) == (0, 0, 0, -1) and ob.peek() == -1 and ob.dropped == 0


def test_unsent_and_count_bookkeeping():
    ob = Outbox(200, DROP_NEWEST)
    assert state(ob) == (0, 0, 0, -1) and len(ob) == 0
    for i in range(5):
        ob.put(*rec(20, b"%d" % i), qos=i % 3)
        assert state(ob) == (i + 1, i + 1, 20 * (i + 1), 0)
    for i in range(3):
        assert ob.take() == 20 * i
        assert state(ob) == (5, 4 - i, 100, 20 * (i + 1))
    assert len(ob) == 5  # taken records are still counted
    ob.done(40)
    assert state(ob) == (5, 2, 100, 60)
    ob.done(0)
    assert state(ob) == (4, 2, 80, 60)
    ob.done(20)  # "1", and "2" (done already) after it
    assert state(ob) == (2, 2, 40, 60) and ob.peek() == 60
    ob.put(*rec(20, b"5"), qos=1)
    assert state(ob) == (3, 3, 60, 60)
    ob.pop()  # an untaken head
    assert state(ob) == (2, 2, 40, 80)
    assert ob.take() == 80 and ob.take() == 100 and ob.take() == -1
    assert state(ob) == (2, 0, 40, -1)
    ob.done(100)
    ob.done(80)
    assert state(ob) == (0, 0, 0, -1)


def test_drop_oldest_evicts_untaken_records_only():
    ob = Outbox(90, DROP_OLDEST)
    for t in (b"1", b"2", b"3"):
        ob.put(*rec(30, t), qos=1)
    assert ob.take() == 0  # "1" is in flight
    before = snapshot(ob)
    assert ob.put(*rec(30, b"4"), qos=1) is False  # "1" is taken: refused, not evicted
    assert ob.put(b"", b"", 0) is False  # the smallest record too
    assert ob.dropped == 2
    before["dropped"] = 2
    assert snapshot(ob) == before  # "2" and "3" (untaken) stay as well
    ob.done(0)  # "1" leaves: room at 0 below the head
    assert ob.put(*rec(30, b"4"), qos=1) is True and ob.dropped == 2
    assert walk(ob) == [(30, 30), (60, 30), (0, 30)] and state(ob) == (3, 3, 90, 30)
    # full, the oldest untaken: evicted as before
    assert ob.put(*rec(30, b"5"), qos=1) is True
    assert ob.dropped == 3 and walk(ob) == [(60, 30), (0, 30), (30, 30)]
    assert state(ob) == (3, 3, 90, 60)  # the cursor left the evicted record
    assert [m[0] for m in messages(ob)] == [b"3", b"4", b"5"]
    assert ob.take() == 60  # "3" in flight
    before = snapshot(ob)
    assert ob.put(*rec(30, b"6"), qos=1) is False  # "4" and "5" are not evicted
    assert ob.put(*rec(90, b"7"), qos=1) is False  # nor for a record as large as the ring
    assert ob.dropped == 5
    before["dropped"] = 5
    assert snapshot(ob) == before
    ob.done(60)  # "3" leaves: unwrapped, head 0
    assert walk(ob) == [(0, 30), (30, 30)] and state(ob) == (2, 2, 60, 0)
    assert ob.put(*rec(90, b"8"), qos=1) is True  # "4" and "5" (untaken) evicted
    assert ob.dropped == 7 and walk(ob) == [(0, 90)] and state(ob) == (1, 1, 90, 0)
    assert messages(ob)[0][0] == b"8" and not ob.taken(0)


def test_drop_oldest_refuses_with_every_record_taken():
    ob = Outbox(60, DROP_OLDEST)
    ob.put(*rec(30, b"a"), qos=1)
    ob.put(*rec(30, b"b"), qos=2)
    ob.take()
    ob.take()
    assert state(ob) == (2, 0, 60, -1)
    for _ in range(3):
        assert ob.put(*rec(12, b"c"), qos=1) is False
    assert ob.dropped == 3 and [m[0] for m in messages(ob)] == [b"a", b"b"]
    ob.done(0)
    assert ob.put(*rec(12, b"c"), qos=1) is True  # at 0, below "b"
    assert walk(ob) == [(30, 30), (0, 12)] and state(ob) == (2, 1, 42, 0)


@pytest.mark.parametrize("policy", [DROP_NEWEST, RAISE], ids=["DROP_NEWEST", "RAISE"])
def test_drop_newest_and_raise_with_taken_records(policy):
    ob = Outbox(90, policy)
    for t in (b"1", b"2", b"3"):
        ob.put(*rec(30, t), qos=1)
    assert (ob.take(), ob.take()) == (0, 30)
    ob.done(30)  # out of order: stays
    before = snapshot(ob)
    if policy == DROP_NEWEST:
        assert ob.put(*rec(30, b"4"), qos=1) is False
        assert ob.dropped == 1
        before["dropped"] = 1
    else:
        with pytest.raises(MQTTError) as e:
            ob.put(*rec(30, b"4"), qos=1)
        assert e.value.code == ERR_QUEUE_SIZE and ob.dropped == 0
    assert snapshot(ob) == before  # nothing evicted, the flags as they were
    assert [ob.taken(off) for off, _ in walk(ob)] == [True, True, False]
    assert state(ob) == (3, 1, 90, 60)
    ob.done(0)  # "1" and "2" leave
    assert state(ob) == (1, 1, 30, 60)
    assert ob.put(*rec(30, b"4"), qos=1) is True  # at 0
    assert [m[0] for m in messages(ob)] == [b"3", b"4"] and walk(ob) == [(60, 30), (0, 30)]


def test_has_room():
    ob = Outbox(100, DROP_OLDEST)
    assert ob.has_room(0, 89) and ob.has_room(5, 84)  # 100 bytes: an empty ring holds it
    ob.put(*rec(30, b"a"), qos=1)
    assert ob.has_room(1, 58) and ob.has_room(59, 0)  # 70 bytes, all that is left
    assert not ob.has_room(1, 59) and not ob.has_room(0, 60)  # 71
    ob.put(*rec(40, b"b"), qos=1)  # 30..70
    assert ob.take() == 0
    ob.done(0)  # "a" leaves: 30 free at the end, 30 below the head
    assert ob.has_room(1, 18) and not ob.has_room(1, 19)  # 30 fits one of them, 31 neither
    ob.put(*rec(30, b"c"), qos=1)  # 70..100
    assert ob.has_room(1, 18) and not ob.has_room(1, 19)  # at 0, below the head at 30
    ob.put(*rec(20, b"d"), qos=1)  # wraps: 0..20, 10 bytes left below the head
    before = snapshot(ob)
    assert not ob.has_room(0, 0)  # not even a header
    assert snapshot(ob) == before  # has_room changes nothing
    # it counts no eviction: under DROP_OLDEST the put still succeeds, evicting "b"
    assert ob.put(b"", b"", 1) is True and ob.dropped == 1
    assert walk(ob) == [(70, 30), (0, 20), (20, 11)]  # 31..70 free
    assert ob.has_room(28, 0) and not ob.has_room(29, 0)
    assert ob.take() == 70
    assert ob.put(*rec(39, b"f"), qos=1) is True  # 31..70: full
    # the head is taken: has_room and put agree that there is no room
    assert not ob.has_room(0, 0) and ob.put(b"", b"", 1) is False and ob.dropped == 2


def test_has_room_larger_than_the_ring():
    # (a bug found by this test: has_room() was True on an empty ring whatever the size)
    ob = Outbox(50, DROP_OLDEST)
    ob.put(b"", b"", 1)
    assert not ob.has_room(40, 0)  # 51 bytes: right while a record is queued
    ob.clear()
    with pytest.raises(ValueError):
        ob.put(b"t" * 40, b"", 1)
    assert not ob.has_room(40, 0)  # 51 bytes > 50: never fits


def test_copy_publish_of_taken_and_done_records():
    # The TAKEN bit (0x08) is where DUP sits in a PUBLISH's first byte: it must not leak.
    msgs = [
        (b"a/b", b"xyz", 1, False),
        (b"c/d", b"12345", 2, True),
        (b"q", b"0", 0, False),
        (b"r", b"", 1, True),
    ]
    ob = Outbox(200, RAISE)
    for m in msgs:
        ob.put(*m, seq=0xFFFFFFFF)  # every seq bit set as well
    offs = [off for off, _ in walk(ob)]
    assert [ob.take() for _ in range(3)] == offs[:3]
    ob.done(offs[1])  # out of order: stays, taken and done
    # done << 4 | taken << 3 | qos << 1 | retain
    assert [ob.buf[off + 4] for off in offs] == [0x0A, 0x1D, 0x08, 0x03]
    assert [(ob.qos(off), ob.retain(off)) for off in offs] == [(m[2], m[3]) for m in msgs]
    assert [ob.taken(off) for off in offs] == [True, True, True, False]
    firsts = [0x32, 0x35, 0x30, 0x33]  # PUBLISH | qos << 1 | retain
    for off, m, first in zip(offs, msgs, firsts):
        for dup in (False, True) if m[2] else (False,):
            pid = 4660 if m[2] else 0
            header, whole = expected_publish(*m, dup, pid)
            out = bytearray(64)
            n = ob.copy_publish(off, out, pid, dup)
            assert out[0] == first | (0x08 if dup else 0)
            assert bytes(out[:n]) == whole and decode(out, n) == m + (dup, pid)
            out = bytearray(64)
            assert ob.copy_header(off, out, pid, dup) == len(header)
            assert bytes(out[: len(header)]) == header
    ob.done(offs[0])  # "a/b" and "c/d" leave
    ob.done(offs[2])
    out = bytearray(64)
    n = ob.copy_publish(ob.peek(), out, 1, False)
    assert bytes(out[:n]) == expected_publish(*msgs[3], False, 1)[1]


def test_pop_of_an_untaken_head_moves_next_unsent():
    ob = Outbox(100, RAISE)
    for t in (b"a", b"b", b"c"):
        ob.put(*rec(30, t), qos=1)
    ob.pop()  # "a", untaken
    assert state(ob) == (2, 2, 60, 30)
    assert ob.take() == 30  # "b", not the popped one
    ob.pop()  # "b", taken: the untaken cursor stays on "c"
    assert state(ob) == (1, 1, 30, 60)
    ob.put(*rec(30, b"d"), qos=1)  # wraps to 0
    assert walk(ob) == [(60, 30), (0, 30)]
    ob.pop()  # "c" ends where the upper part ends: the cursor follows to 0
    assert state(ob) == (1, 1, 30, 0) and ob.peek() == 0
    ob.pop()  # the last one
    assert state(ob) == (0, 0, 0, -1) and ob.take() == -1
    ob.put(*rec(30, b"e"), qos=1)
    assert state(ob) == (1, 1, 30, 0) and ob.take() == 0


def test_clear_resets_take_state():
    ob = Outbox(90, DROP_OLDEST)
    for t in (b"a", b"b", b"c"):
        ob.put(*rec(30, t), qos=1)
    ob.take()
    ob.take()
    ob.done(30)
    ob.clear()
    assert state(ob) == (0, 0, 0, -1) and ob.peek() == -1 and ob.take() == -1
    assert ob.put(*rec(30, b"d"), qos=1, seq=9) is True
    assert state(ob) == (1, 1, 30, 0) and ob.seq(0) == 9
    assert ob.buf[4] == 0x02 and not ob.taken(0)  # the old record's TAKEN bit is gone
    # nothing is taken any more: DROP_OLDEST evicts again
    ob.put(*rec(30, b"e"), qos=1)
    ob.put(*rec(30, b"f"), qos=1)
    assert ob.put(*rec(30, b"g"), qos=1) is True and ob.dropped == 1
    assert [m[0] for m in messages(ob)] == [b"e", b"f", b"g"]
    assert ob.take() == 30
    ob.done(30)  # "e" leaves; "f" and "g" wait
    assert state(ob) == (2, 2, 60, 60) and walk(ob) == [(60, 30), (0, 30)]


# ---- FIFO over many wraps, and the policies against a reference --------------------------


def test_fifo_over_many_wraps():
    rnd = random.Random(1234)
    ob = Outbox(257, RAISE)
    model = deque()
    out = bytearray(300)
    wraps = 0
    last_head = 0
    n = 0
    for _ in range(20000):
        if rnd.random() < 0.55:
            topic = b"s/%d" % n
            payload = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 120)))
            qos = rnd.randrange(3)
            retain = rnd.random() < 0.3
            n += 1
            try:
                ob.put(topic, payload, qos, retain)
            except MQTTError as e:
                assert e.code == ERR_QUEUE_SIZE
                continue
            model.append((topic, payload, qos, retain))
        elif model:
            off = ob.peek()
            pid = rnd.randrange(1, 65536)
            dup = rnd.random() < 0.5 and ob.qos(off) > 0
            k = ob.copy_publish(off, out, pid, dup)
            topic, payload, qos, retain = model.popleft()
            assert decode(out, k) == (topic, payload, qos, retain, dup, pid if qos else 0)
            ob.pop()
            head = ob.peek()
            if 0 <= head < last_head:
                wraps += 1
            last_head = max(head, 0)
        assert ob.count == len(model)
    assert wraps > 500
    check_invariants(ob)
    assert messages(ob) == list(model)


PUT = st.tuples(
    st.just("put"),
    st.integers(0, 24),  # topic length
    st.integers(0, 90),  # payload length
    st.integers(0, 2),
    st.booleans(),
)
TAKE = st.just(("take",))
DONE = st.tuples(st.just("done"), st.integers(0, 15))  # which pending taken record
# 4 puts in 12 against 2 pops and 3 dones (those only while a taken record waits), so
# the ring fills and the policies act, sometimes with taken records at the head
OPS = st.lists(
    st.one_of(
        *([PUT] * 4 + [st.just(("pop",))] * 2 + [TAKE] * 2 + [DONE] * 3 + [st.just(("clear",))])
    ),
    min_size=30,
    max_size=150,
)


class Rec:
    """A record of the reference model: its message, seq, and take / done state."""

    def __init__(self, msg, seq):
        self.msg = msg
        self.seq = seq
        self.off = -1  # the offset take() returned, -1 while untaken
        self.done = False


def check_model(ob, model, recs):
    """The outbox's records, seqs, taken flags and unsent bookkeeping are the model's."""
    assert messages(ob) == [r.msg for r in model]
    assert [ob.seq(off) for off, _ in recs] == [r.seq for r in model]
    assert [ob.taken(off) for off, _ in recs] == [r.off >= 0 for r in model]
    for (off, _), r in zip(recs, model):
        assert r.off in (-1, off)  # a taken record stays where take() found it
    untaken = [off for (off, _), r in zip(recs, model) if r.off < 0]
    assert ob.unsent == len(untaken)
    assert ob.next_unsent() == (untaken[0] if untaken else -1)
    # taken records first (sent, awaiting acks), then the untaken ones
    flags = [r.off >= 0 for r in model]
    assert flags == sorted(flags, reverse=True)


def ref_put(ob, model, msg, seq):
    """put(*msg, seq=seq) against the reference: the room worked out from the record
    offsets (fits), the policy applied with the rule that DROP_OLDEST evicts untaken
    records only. Updates model; returns (records dropped, what happened)."""
    tl, pl = len(msg[0]), len(msg[1])
    size = RECORD_HEADER + tl + pl
    cap = ob.capacity
    recs = walk(ob)
    before = snapshot(ob)
    if size > cap:
        with pytest.raises(ValueError):
            ob.put(*msg, seq=seq)
        assert snapshot(ob) == before and not ob.has_room(tl, pl)
        return 0, "too large"
    assert ob.has_room(tl, pl) == fits(recs, cap, size)
    if fits(recs, cap, size):
        assert ob.put(*msg, seq=seq) is True
        model.append(Rec(msg, seq))
        return 0, "stored"
    if ob.policy == RAISE:
        with pytest.raises(MQTTError) as e:
            ob.put(*msg, seq=seq)
        assert e.value.code == ERR_QUEUE_SIZE
        assert snapshot(ob) == before
        return 0, "RAISE raised"
    if ob.policy == DROP_NEWEST:
        assert ob.put(*msg, seq=seq) is False
        before["dropped"] += 1
        assert snapshot(ob) == before
        return 1, "DROP_NEWEST refused"
    # DROP_OLDEST: evict the oldest records, untaken ones only, until it fits; a taken
    # record at the head refuses the new one
    k = 0
    while k < len(recs) and model[k].off < 0 and not fits(recs[k:], cap, size):
        k += 1
    if fits(recs[k:], cap, size):
        assert k >= 1
        assert ob.put(*msg, seq=seq) is True
        for _ in range(k):
            model.popleft()
        model.append(Rec(msg, seq))
        return k, "DROP_OLDEST evicted %s" % ("1" if k == 1 else "2+")
    assert ob.put(*msg, seq=seq) is False
    if k == 0:
        before["dropped"] += 1
        assert snapshot(ob) == before
    for _ in range(k):
        model.popleft()
    return k + 1, "DROP_OLDEST refused, %s evicted first" % ("none" if k == 0 else "some")


def ref_take(ob, model):
    """take(): the oldest untaken record, or -1. Returns its Rec or None."""
    untaken = [(off, r) for (off, _), r in zip(walk(ob), model) if r.off < 0]
    off = ob.take()
    if not untaken:
        assert off == -1
        return None
    assert off == untaken[0][0]
    untaken[0][1].off = off
    return untaken[0][1]


def ref_done(ob, model, j):
    """done() of the j-th (modulo) taken record not yet done, if any; acknowledged
    records at the head leave. Returns "in order", "out of order" or None."""
    pending = [r for r in model if r.off >= 0 and not r.done]
    if not pending:
        return None
    r = pending[j % len(pending)]
    order = "in order" if r is model[0] else "out of order"
    ob.done(r.off)
    r.done = True
    while model and model[0].done:
        model.popleft()
    return order


@PROPS
@given(
    policy=st.sampled_from(POLICIES),
    capacity=st.integers(11, 200),
    ops=OPS,
    rare=st.integers(1, 8),
)
def test_policies_against_a_reference(policy, capacity, ops, rare):
    ob = Outbox(capacity, policy)
    model = deque()  # of Rec, oldest first
    dropped = 0
    for i, op in enumerate(ops):
        if op[0] == "clear" and i % rare == 0:  # clear only now and then
            ob.clear()
            model.clear()
        elif op[0] in ("pop", "clear"):
            if model:
                if model[0].off < 0:
                    event("pop of an untaken head")
                ob.pop()
                model.popleft()
            else:
                with pytest.raises(IndexError):
                    ob.pop()
        elif op[0] == "take":
            ref_take(ob, model)
        elif op[0] == "done":
            if ref_done(ob, model, op[1]) == "out of order":
                event("done out of order")
        else:
            _, tl, pl, qos, retain = op
            msg = (bytes([65 + i % 26]) * tl, bytes([i & 0xFF]) * pl, qos, retain)
            seq = i * 2654435761 & 0xFFFFFFFF  # all four bytes in use
            n, what = ref_put(ob, model, msg, seq)
            if what not in ("stored", "too large"):
                event(what)
            dropped += n
        assert ob.dropped == dropped
        recs = check_invariants(ob)
        if any(off < recs[0][0] for off, _ in recs):
            event("wrapped")
        if any(r.off >= 0 for r in model):
            event("taken records in the ring")
        check_model(ob, model, recs)


@pytest.mark.parametrize("policy", POLICIES, ids=POLICY_IDS)
def test_take_done_over_many_wraps(policy):
    # The client's way: put, take in order (the PUBLISH sent from the ring with
    # copy_publish), done as acks come, often out of order; the reference checked at
    # every step.
    rnd = random.Random(2024 + policy)
    ob = Outbox(257, policy)
    model = deque()
    out = bytearray(300)
    dropped = 0
    seen = {}
    last_head = 0
    for step in range(5000):
        r = rnd.random()
        if r < 0.45:
            msg = (
                b"s/%d" % step,
                bytes([step & 0xFF]) * rnd.randrange(0, 100),
                rnd.randrange(3),
                rnd.random() < 0.3,
            )
            n, what = ref_put(ob, model, msg, rnd.getrandbits(32))
            dropped += n
        elif r < 0.7:
            rec_ = ref_take(ob, model)
            what = "take" if rec_ else "take none"
            if rec_:
                pid = rnd.randrange(1, 65536)
                k = ob.copy_publish(rec_.off, out, pid, False)
                topic, payload, qos, retain = rec_.msg
                assert decode(out, k) == (topic, payload, qos, retain, False, pid if qos else 0)
        elif r < 0.97:
            what = ref_done(ob, model, rnd.randrange(8))
        else:
            what = "pop"
            if model:
                ob.pop()
                model.popleft()
        seen[what] = seen.get(what, 0) + 1
        head = ob.peek()
        if 0 <= head < last_head:
            seen["wrap"] = seen.get("wrap", 0) + 1
        last_head = max(head, 0)
        assert ob.dropped == dropped
        check_model(ob, model, check_invariants(ob))
    # the seeds are fixed: these figures only guard against a walk that stops
    # exercising what it is for
    assert seen["wrap"] > 100 and seen["out of order"] > 150, seen
    if policy == DROP_OLDEST:
        assert seen["DROP_OLDEST refused, none evicted first"] > 300, seen
        assert seen["DROP_OLDEST evicted 1"] > 50, seen
        assert seen["DROP_OLDEST evicted 2+"] > 30, seen
    elif policy == DROP_NEWEST:
        assert seen["DROP_NEWEST refused"] > 500, seen
    else:
        assert seen["RAISE raised"] > 500, seen


@PROPS
@given(
    capacity=st.integers(20, 300),
    sizes=st.lists(st.integers(14, 60), min_size=1, max_size=200),  # 14: tag "199"
)
def test_drop_oldest_keeps_the_newest_suffix(capacity, sizes):
    # Whatever happens, DROP_OLDEST holds the last records put, in order, and the
    # newest one always.
    ob = Outbox(capacity, DROP_OLDEST)
    stored = []
    for i, n in enumerate(sizes):
        if n > capacity:
            with pytest.raises(ValueError):
                ob.put(*rec(n, b"%d" % i), qos=1)
            continue
        assert ob.put(*rec(n, b"%d" % i), qos=1) is True
        stored.append(i)
        names = [int(m[0]) for m in messages(ob)]
        assert names and names == stored[len(stored) - len(names) :]
        assert ob.dropped == len(stored) - len(names)


# ---- copy_publish / copy_header ----------------------------------------------------------

TOPICS = [
    b"a/b",
    "température/salle/日本/😀".encode(),
    b"t" * 300,  # a topic length above 255
]
PAYLOADS = [0, 1, 100, 200, 20000]  # 20000: a 3-byte remaining length


@pytest.mark.parametrize("topic", TOPICS, ids=["ascii", "utf8", "long"])
@pytest.mark.parametrize("plen", PAYLOADS)
@pytest.mark.parametrize(
    "qos,retain,dup,pid",
    [
        (0, False, False, 0),
        (0, True, False, 0),
        (1, False, False, 1),
        (1, True, True, 258),
        (2, False, True, 65535),
        (2, True, False, 4660),
    ],
)
def test_copy_publish_is_encode_publish_and_payload(topic, plen, qos, retain, dup, pid):
    payload = bytes(i * 7 & 0xFF for i in range(plen))
    header, whole = expected_publish(topic, payload, qos, retain, dup, pid)
    ob = Outbox(25000, RAISE)
    ob.put(b"before", b"x" * 77, 1)  # so the record is not at offset 0
    ob.put(topic, payload, qos, retain)
    ob.pop()
    off = ob.peek()
    assert off == 11 + 6 + 77
    out = bytearray(len(whole) + 10)
    assert ob.copy_publish(off, out, pid, dup) == len(whole)
    assert bytes(out[: len(whole)]) == whole
    out = bytearray(len(header) + 3)
    assert ob.copy_header(off, out, pid, dup) == len(header)
    assert bytes(out[: len(header)]) == header
    p = ob.payload_off(off)
    assert bytes(ob.view[p : p + ob.payload_len(off)]) == payload
    if plen == 20000:
        assert whole[1] & 0x80 and whole[2] & 0x80 and not whole[3] & 0x80  # 3 bytes


def test_copy_publish_four_byte_remaining_length():
    payload = bytes(range(256)) * 8200  # remaining length above 2097151
    topic = b"big/\xc3\xa9"
    header, whole = expected_publish(topic, payload, 1, True, True, 99)
    assert all(b & 0x80 for b in whole[1:4]) and not whole[4] & 0x80
    ob = Outbox(len(payload) + 100)
    ob.put(topic, payload, 1, True)
    out = bytearray(len(whole))
    assert ob.copy_publish(0, out, 99, True) == len(whole)
    assert out == whole


def test_copy_publish_at_qos0_ignores_pid():
    ob = Outbox(100)
    ob.put(b"a/b", b"xyz", 0)
    out = bytearray(20)
    n = ob.copy_publish(0, out, 1234)
    assert bytes(out[:n]) == expected_publish(b"a/b", b"xyz", 0, False, False, 0)[1]


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_copy_publish_buffer_too_small_writes_nothing(qos):
    topic, payload = b"s/\xe2\x82\xac", b"p" * 130  # a 2-byte remaining length
    header, whole = expected_publish(topic, payload, qos, True, False, 7 if qos else 0)
    ob = Outbox(200)
    ob.put(topic, payload, qos, True)
    exact = bytearray(len(whole))
    assert ob.copy_publish(0, exact, 7) == len(whole) and exact == whole
    short = bytearray(b"\xaa" * (len(whole) - 1))
    assert ob.copy_publish(0, short, 7) == -1
    assert short == b"\xaa" * (len(whole) - 1)
    exact = bytearray(len(header))
    assert ob.copy_header(0, exact, 7) == len(header) and exact == header
    short = bytearray(b"\xaa" * (len(header) - 1))
    assert ob.copy_header(0, short, 7) == -1 and short == b"\xaa" * (len(header) - 1)
    assert ob.copy_header(0, bytearray(0), 7) == -1
    view = memoryview(bytearray(len(whole) + 5))  # a memoryview send buffer works too
    assert ob.copy_publish(0, view, 7) == len(whole) and bytes(view[: len(whole)]) == whole


def test_copy_publish_argument_errors():
    ob = Outbox(100)
    ob.put(b"a", b"b", 1)
    ob.put(b"c", b"d", 0)
    out = bytearray(50)
    for pid in (0, 65536, -1):
        with pytest.raises(ValueError, match="packet id"):
            ob.copy_publish(0, out, pid)
        with pytest.raises(ValueError, match="packet id"):
            ob.copy_header(0, out, pid)
    second = ob.after(0)
    with pytest.raises(ValueError, match="DUP"):
        ob.copy_publish(second, out, 0, True)
    with pytest.raises(ValueError, match="no record"):
        ob.copy_publish(-1, out, 1)
    with pytest.raises(ValueError, match="no record"):
        ob.copy_header(-1, out, 1)
    assert out == bytearray(50)  # nothing written by any of them


@PROPS
@given(
    topic=st.text(min_size=1, max_size=30).map(lambda s: s.encode()),
    payload=st.binary(max_size=300),
    qos=st.integers(0, 2),
    retain=st.booleans(),
    dup=st.booleans(),
    pid=st.integers(1, 65535),
    skip=st.integers(0, 400),
)
def test_copy_publish_property(topic, payload, qos, retain, dup, pid, skip):
    dup = dup and qos > 0
    ob = Outbox(800, DROP_OLDEST)
    ob.put(b"", b"s" * skip, 1)  # moves the record around the ring
    ob.put(b"", b"s" * (skip // 2), 1)
    ob.put(topic, payload, qos, retain)
    while ob.count > 1:
        ob.pop()
    header, whole = expected_publish(topic, payload, qos, retain, dup, pid)
    out = bytearray(len(whole))
    assert ob.copy_publish(ob.peek(), out, pid, dup) == len(whole) and out == whole
