"""umqtt_paho.outbox: the ring of queued outgoing messages (CPython, pytest, hypothesis).

What is checked:
- FIFO order across many wraps, every record read back in place (accessors, view) and
  through copy_publish decoded by packet.decode_publish;
- each drop policy against a reference built only from what the outbox shows (record
  offsets and sizes): DROP_OLDEST evicts exactly as many oldest records as needed,
  DROP_NEWEST refuses the new one, RAISE raises before anything changes (state and ring
  bytes compared), and the dropped counter;
- capacity edges: exact fill, off by one, a record as large as the ring, one byte more;
- copy_publish / copy_header produce exactly packet.encode_publish's bytes (+ payload).

The MicroPython VM runs the essentials in tests/vm/test_vm_outbox.py, with the
allocation figures.
"""

import random
from collections import deque

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from umqtt_paho import packet as pk
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
    for cap in (0, 6, -1, 0x40000000):
        with pytest.raises(ValueError, match="capacity"):
            Outbox(cap)
    with pytest.raises(ValueError, match="policy"):
        Outbox(100, 3)
    ob = Outbox(7)
    assert ob.capacity == 7 and ob.policy == DROP_OLDEST and len(ob.buf) == 7
    assert ob.count == ob.used == ob.dropped == 0 and ob.peek() == -1


def test_accessors_read_the_record_in_place():
    ob = Outbox(200, RAISE)
    assert ob.put(b"a/b", b"hello", 1, True) is True
    assert ob.put(bytearray(b"t\xc3\xa9"), memoryview(b"xyz123"), 2, False) is True
    assert ob.put(b"q0", b"", 0) is True
    first = ob.peek()
    assert first == 0
    assert ob.size(0) == 7 + 3 + 5
    assert (ob.qos(0), ob.retain(0), ob.topic_len(0), ob.payload_len(0)) == (1, True, 3, 5)
    assert ob.topic_off(0) == 7 and ob.payload_off(0) == 10
    assert bytes(ob.buf[0:15]) == b"\x00\x00\x00\x0f\x03\x00\x03a/bhello"  # the diagram
    second = ob.after(first)
    assert second == 15
    assert (ob.qos(second), ob.retain(second), ob.topic_len(second)) == (2, False, 3)
    assert ob.payload_len(second) == 6
    assert bytes(ob.buf[second : second + 7]) == b"\x00\x00\x00\x10\x04\x00\x03"
    third = ob.after(second)
    assert (ob.qos(third), ob.retain(third), ob.payload_len(third)) == (0, False, 0)
    assert ob.after(third) == -1
    assert messages(ob) == [
        (b"a/b", b"hello", 1, True),
        (b"t\xc3\xa9", b"xyz123", 2, False),
        (b"q0", b"", 0, False),
    ]
    assert len(ob) == ob.count == 3 and ob.used == 15 + 16 + 9
    assert repr(ob) == "<Outbox 3 records, 40/200 bytes, dropped 0>"


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
    assert snapshot(ob) == before


def test_pop_and_clear():
    ob = Outbox(64, DROP_NEWEST)
    with pytest.raises(IndexError):
        ob.pop()
    ob.put(b"a", b"1", 1)
    ob.put(b"b", b"2", 2)
    ob.pop()
    assert messages(ob) == [(b"b", b"2", 2, False)] and ob.used == 9
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
    """(topic, payload) of a record of exactly n bytes in the ring (n >= 8)."""
    return tag, bytes([n & 0xFF]) * (n - RECORD_HEADER - len(tag))


@pytest.mark.parametrize("policy", POLICIES, ids=POLICY_IDS)
def test_fills_exactly(policy):
    ob = Outbox(90, policy)
    for i in range(3):
        assert ob.put(*rec(30, b"%d" % i), qos=1) is True
    assert ob.used == ob.capacity == 90 and ob.count == 3
    assert walk(ob) == [(0, 30), (30, 30), (60, 30)]
    before = snapshot(ob)
    smallest = (b"", b"")  # a 7-byte record: no room left at all
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
        assert ob.dropped == 1 and walk(ob) == [(30, 30), (60, 30), (0, 7)]
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
    ob.put(*rec(10, b"a"), qos=1)
    ob.put(*rec(10, b"b"), qos=1)
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
        ob.put(*rec(10, b"%d" % i), qos=1)
    before = snapshot(ob)
    with pytest.raises(ValueError, match="needs 51 bytes .* holds 50"):
        ob.put(*rec(51), qos=1)
    assert snapshot(ob) == before and ob.dropped == 0


def test_minimum_record_in_minimum_ring():
    ob = Outbox(7, DROP_OLDEST)
    for qos in (0, 1, 2, 1):
        assert ob.put(b"", b"", qos, qos == 2) is True
        assert walk(ob) == [(0, 7)] and ob.qos(0) == qos and ob.retain(0) == (qos == 2)
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
    ob.put(*rec(20, b"e"), qos=1)  # does not fit the 5: starts at 0 below head 30
    assert walk(ob) == [(30, 25), (0, 20)]
    assert ob.put(*rec(11, b"f"), qos=1) is False  # 10 bytes between 20 and 30
    assert ob.put(*rec(10, b"g"), qos=1) is True
    assert walk(ob) == [(30, 25), (0, 20), (20, 10)] and ob.used == 55
    assert [m[0] for m in messages(ob)] == [b"d", b"e", b"g"]
    ob.pop()
    assert walk(ob) == [(0, 20), (20, 10)]
    ob.put(*rec(30, b"h"), qos=1)  # 30..60 after unwrapping
    assert walk(ob) == [(0, 20), (20, 10), (30, 30)] and ob.used == 60


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
    ob = Outbox(64, DROP_NEWEST)
    while ob.put(b"a/b", b"x" * 10, 1):
        pass
    assert ob.count == 3 and ob.dropped == 1
    before = snapshot(ob)
    for i in range(5):
        assert ob.put(b"a/b", b"%d" % i, 2) is False
    assert ob.dropped == 6
    before["dropped"] = 6
    assert snapshot(ob) == before
    ob.pop()
    assert ob.put(b"a/b", b"y" * 10, 1) is True  # room again
    assert [m[1] for m in messages(ob)] == [b"x" * 10, b"x" * 10, b"y" * 10]


def test_raise_stores_nothing():
    ob = Outbox(64, RAISE)
    ob.put(b"a/b", b"x" * 10, 1)
    ob.put(b"a/b", b"x" * 10, 1)
    ob.pop()
    ob.put(b"a/b", b"z" * 10, 2)
    ob.put(b"a/b", b"w" * 5, 1, True)  # wrapped now
    before = snapshot(ob)
    for payload in (b"q" * 40, b"q" * 11):
        with pytest.raises(MQTTError) as e:
            ob.put(b"a/b", payload, 1)
        assert e.value.code == ERR_QUEUE_SIZE and "outbox full" in str(e.value)
        assert snapshot(ob) == before
    assert ob.dropped == 0


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
# puts outnumber pops 3 to 2, so the ring fills and the policies act
OPS = st.lists(
    st.one_of(PUT, PUT, PUT, st.just(("pop",)), st.just(("pop",)), st.just(("clear",))),
    min_size=30,
    max_size=150,
)


@PROPS
@given(
    policy=st.sampled_from(POLICIES),
    capacity=st.integers(7, 200),
    ops=OPS,
    rare=st.integers(1, 8),
)
def test_policies_against_a_reference(policy, capacity, ops, rare):
    ob = Outbox(capacity, policy)
    model = deque()
    dropped = 0
    for i, op in enumerate(ops):
        if op[0] == "clear" and i % rare == 0:  # clear only now and then
            ob.clear()
            model.clear()
        elif op[0] in ("pop", "clear"):
            if model:
                ob.pop()
                model.popleft()
            else:
                with pytest.raises(IndexError):
                    ob.pop()
        else:
            _, tl, pl, qos, retain = op
            msg = (bytes([65 + i % 26]) * tl, bytes([i & 0xFF]) * pl, qos, retain)
            size = RECORD_HEADER + tl + pl
            recs = walk(ob)
            before = snapshot(ob)
            if size > capacity:
                with pytest.raises(ValueError):
                    ob.put(*msg)
                assert snapshot(ob) == before
            elif fits(recs, capacity, size):
                assert ob.put(*msg) is True
                model.append(msg)
            elif policy == RAISE:
                event("RAISE raised")
                with pytest.raises(MQTTError) as e:
                    ob.put(*msg)
                assert e.value.code == ERR_QUEUE_SIZE
                assert snapshot(ob) == before
            elif policy == DROP_NEWEST:
                event("DROP_NEWEST refused")
                assert ob.put(*msg) is False
                dropped += 1
            else:
                # the fewest oldest records whose removal makes room
                k = 0
                while not fits(recs[k:], capacity, size):
                    k += 1
                assert k >= 1
                event("DROP_OLDEST evicted %s" % ("1" if k == 1 else "2+"))
                assert ob.put(*msg) is True
                for _ in range(k):
                    model.popleft()
                model.append(msg)
                dropped += k
        assert ob.dropped == dropped
        recs = check_invariants(ob)
        if any(off < recs[0][0] for off, _ in recs):
            event("wrapped")
        assert messages(ob) == list(model)


@PROPS
@given(
    capacity=st.integers(20, 300),
    sizes=st.lists(st.integers(8, 60), min_size=1, max_size=200),
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
    assert off == 7 + 6 + 77
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
