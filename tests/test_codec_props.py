"""Property tests of the codec (CPython and pytest only: uses hypothesis).

- Any bytes fed to a stream decoder (packet_type, header_size, remaining_length, then
  the decoder for the type) raise MQTTError or decode: never another exception, never
  a read past the frame, never a loop without progress.
- Encoder -> decoder round trips for random valid topics, payloads, QoS, packet ids,
  flags, CONNECT fields and filter lists.
- topic.matches agrees with a simple reference implementation (split on '/'), and the
  filter / topic / UTF-8 checks agree with reference definitions.
"""

import os
import sys

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from test_packet import all_vectors

from umqtt_paho import servercodec

from umqtt_paho.errors import ERR_PROTOCOL, MQTTError
from umqtt_paho.servercodec import (
    CONNACK,
    CONNECT,
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
    MQTTv31,
    MQTTv311,
    decode_ack,
    decode_connack,
    decode_pingresp,
    decode_publish,
    decode_suback,
    encode_ack,
    encode_connect,
    encode_publish,
    encode_subscribe,
    encode_unsubscribe,
    header_size,
    packet_type,
    remaining_length,
)
from umqtt_paho.packet import (
    filter_problem,
    matches,
    topic_matches_sub,
    topic_problem,
    utf8_problem,
)

# database=None: no .hypothesis directory left in the working tree
FAST = settings(
    max_examples=500, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
QUICK = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# ---- decoding arbitrary bytes ---------------------------------------------------------

DECODERS = {
    CONNECT: servercodec.decode_connect,
    CONNACK: decode_connack,
    PUBLISH: decode_publish,
    PUBACK: decode_ack,
    PUBREC: decode_ack,
    PUBREL: decode_ack,
    PUBCOMP: decode_ack,
    SUBSCRIBE: servercodec.decode_subscribe,
    SUBACK: decode_suback,
    UNSUBSCRIBE: servercodec.decode_unsubscribe,
    UNSUBACK: decode_ack,
    PINGREQ: servercodec.decode_pingreq,
    PINGRESP: decode_pingresp,
    DISCONNECT: servercodec.decode_disconnect,
}


def decode_stream(data):
    """Decode every complete packet in data, as a receiver would; returns how many.

    Each packet is decoded twice: inside the whole stream, and on a copy that ends
    exactly at the frame, so reading past pos + rl would raise IndexError.
    """
    mv = memoryview(data)
    end = len(data)
    pos = 0
    count = 0
    while pos < end:
        first = mv[pos]
        t = packet_type(first)
        assert 1 <= t <= 14
        hs = header_size(mv, pos, end)
        if hs < 0:
            break
        assert 2 <= hs <= 5
        rl = remaining_length(mv, pos + 1, end)
        assert rl >= 0
        if pos + hs + rl > end:
            break
        a = DECODERS[t](first, mv, pos + hs, rl)
        exact = memoryview(bytes(mv[pos : pos + hs + rl]))
        b = DECODERS[t](first, exact, hs, rl)
        if t in (PUBLISH,):
            assert a - pos == b  # an offset: shifted by where the frame starts
        else:
            assert a == b
        servercodec.decode_packet(first, exact, hs, rl)
        new = pos + hs + rl
        assert new > pos  # progress: no endless loop
        pos = new
        count += 1
    return count


def only_mqtt_errors(data):
    try:
        decode_stream(data)
    except MQTTError as e:
        assert e.code == ERR_PROTOCOL, e.code
        assert "[" in str(e) or "remaining length must be 2" in str(e), str(e)


FIRST_BYTES = [t << 4 | (2 if t in (PUBREL, SUBSCRIBE, UNSUBSCRIBE) else 0) for t in range(1, 15)]
FIRST_BYTES += [0x30 | f for f in range(16) if f & 6 != 6]  # every valid PUBLISH flag set


@st.composite
def framed(draw):
    """A packet with a valid first byte and a correct length over a random body."""
    first = draw(st.sampled_from(FIRST_BYTES))
    body = draw(st.binary(max_size=300))
    return bytes([first]) + _length(len(body)) + body


def _length(n):
    out = bytearray()
    while True:
        d = n & 0x7F
        n >>= 7
        out.append(d | (0x80 if n else 0))
        if not n:
            return bytes(out)


@FAST
@given(st.binary(max_size=600))
@example(b"\x30\xff\xff\xff\xff\x01")
@example(b"\x30\x02\xff\xff")
@example(b"\x10\x00")
@example(b"\x82\x02\x00\x01")
def test_random_bytes_only_raise_mqtt_error(data):
    only_mqtt_errors(data)


@FAST
@given(st.lists(framed(), max_size=6), st.binary(max_size=8))
def test_random_bodies_only_raise_mqtt_error(packets, tail):
    only_mqtt_errors(b"".join(packets) + tail)


# the spec vectors of test_packet.py, every packet type
VALID_PACKETS = all_vectors()


@FAST
@given(
    st.sampled_from(VALID_PACKETS),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_mutated_packets_only_raise_mqtt_error(packet, edits):
    data = bytearray(packet)
    for i, v in edits:
        data[i % len(data)] = v
    only_mqtt_errors(bytes(data))


def test_valid_packets_decode():
    assert decode_stream(b"".join(VALID_PACKETS)) == len(VALID_PACKETS)


# ---- round trips ----------------------------------------------------------------------

# valid topic text: no wildcards, no U+0000, no surrogates (not encodable as UTF-8)
TOPIC_CHARS = st.characters(blacklist_characters="+#\x00", blacklist_categories=("Cs",))
topics = st.text(TOPIC_CHARS, min_size=1, max_size=100)
pids = st.integers(1, 65535)
qoss = st.integers(0, 2)


@FAST
@given(topics, st.binary(max_size=3000), qoss, pids, st.booleans(), st.booleans())
def test_publish_round_trip(topic, payload, qos, pid, retain, dup):
    if qos == 0:
        dup = False
    t = topic.encode("utf-8")
    assert topic_problem(t, 0, len(t)) is None
    buf = bytearray(len(t) + len(payload) + 16)
    n = encode_publish(buf, t, len(payload), qos, retain, dup, pid)
    buf[n : n + len(payload)] = payload
    data = bytes(buf[: n + len(payload)]) + b"\xd0\x00"
    packets, rest = servercodec.split_packets(data)
    assert rest == b""
    assert packets[1] == (0xD0, b"")
    first, body = packets[0]
    mv = memoryview(body)
    p = decode_publish(first, mv, 0, len(body))
    assert bytes(mv[p:]) == payload
    t2, d = servercodec.decode_packet(first, body)
    assert t2 == PUBLISH
    assert d == {
        "topic": t,
        "payload": payload,
        "qos": qos,
        "retain": retain,
        "dup": dup,
        "pid": pid if qos else 0,
    }
    assert d["topic"].decode("utf-8") == topic


utf8_text = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40
)


@FAST
@given(
    st.text(
        st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=23,
    ),
    st.booleans(),
    st.integers(0, 65535),
    st.one_of(st.none(), st.tuples(topics, st.binary(max_size=200), qoss, st.booleans())),
    st.one_of(st.none(), st.tuples(utf8_text, st.one_of(st.none(), st.binary(max_size=50)))),
    st.sampled_from([MQTTv31, MQTTv311]),
)
def test_connect_round_trip(client_id, clean, keepalive, will, auth, protocol):
    kw = {"clean_session": clean, "keepalive": keepalive, "protocol": protocol}
    if will:
        kw.update(
            will_topic=will[0].encode(),
            will_payload=will[1],
            will_qos=will[2],
            will_retain=will[3],
        )
    if auth:
        kw["username"] = auth[0].encode()
        kw["password"] = auth[1]
    cid = client_id.encode()
    data = servercodec.to_bytes(encode_connect, cid, **kw)
    packets, rest = servercodec.split_packets(data)
    assert rest == b"" and len(packets) == 1
    t, d = servercodec.decode_packet(*packets[0])
    assert t == CONNECT
    assert d["protocol_name"] == (b"MQTT" if protocol == MQTTv311 else b"MQIsdp")
    assert d["level"] == protocol
    assert d["clean_session"] == clean
    assert d["keepalive"] == keepalive
    assert d["client_id"] == cid
    if will:
        assert (d["will_topic"], d["will_payload"], d["will_qos"], d["will_retain"]) == (
            kw["will_topic"],
            will[1],
            will[2],
            will[3],
        )
    else:
        assert (d["will_topic"], d["will_payload"], d["will_qos"], d["will_retain"]) == (
            None,
            None,
            0,
            False,
        )
    assert d["username"] == (kw["username"] if auth else None)
    assert d["password"] == (auth[1] if auth else None)


LEVELS = ["a", "b", "ab", "", "$SYS", "$a", "\u00e9", "x y"]


@st.composite
def filters(draw):
    levels = draw(st.lists(st.sampled_from(LEVELS + ["+"]), min_size=1, max_size=5))
    if draw(st.booleans()):
        levels = levels + ["#"] if draw(st.booleans()) else ["#"]
    return "/".join(levels) or "/"


@st.composite
def topic_strings(draw):
    levels = draw(st.lists(st.sampled_from(LEVELS), min_size=1, max_size=6))
    t = "/".join(levels)
    return t if t else "/"


@FAST
@given(pids, st.lists(st.tuples(filters(), qoss), min_size=1, max_size=10))
def test_subscribe_unsubscribe_round_trip(pid, subs):
    subs = [(f.encode(), q) for f, q in subs]
    data = servercodec.to_bytes(encode_subscribe, pid, subs)
    assert servercodec.decode_packet(*servercodec.split_packets(data)[0][0]) == (
        SUBSCRIBE,
        (pid, subs),
    )
    names = [f for f, q in subs]
    data = servercodec.to_bytes(encode_unsubscribe, pid, names)
    assert servercodec.decode_packet(*servercodec.split_packets(data)[0][0]) == (
        UNSUBSCRIBE,
        (pid, names),
    )


@QUICK
@given(
    pids,
    st.lists(st.sampled_from([0, 1, 2, 0x80]), min_size=1, max_size=50),
    st.sampled_from([PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK]),
)
def test_broker_packets_round_trip(pid, codes, ack):
    data = servercodec.to_bytes(servercodec.encode_suback, pid, codes)
    assert servercodec.decode_packet(*servercodec.split_packets(data)[0][0]) == (
        SUBACK,
        (pid, codes),
    )
    data = servercodec.to_bytes(encode_ack, ack, pid)
    assert servercodec.decode_packet(*servercodec.split_packets(data)[0][0]) == (ack, pid)


@QUICK
@given(st.integers(0, 268435455))
@example(0)
@example(127)
@example(128)
@example(16383)
@example(16384)
@example(2097151)
@example(2097152)
@example(268435455)
def test_remaining_length_round_trip(n):
    enc = _length(n)
    if n >= 3:
        # the real encoder: a PUBLISH to "a" has remaining length 3 + payload
        buf = bytearray(8)
        hs = encode_publish(buf, b"a", n - 3) - 3
    else:
        buf = bytearray(8)
        hs = servercodec.encode_fixed_header(buf, 0x30, n)
    assert bytes(buf[:hs]) == b"\x30" + enc
    data = b"\x30" + enc
    mv = memoryview(data)
    assert header_size(mv, 0, len(data)) == hs
    assert remaining_length(mv, 1, len(data)) == n
    for cut in range(1, len(data)):
        assert header_size(mv, 0, cut) == -1
        assert remaining_length(mv, 1, cut) == -1


# ---- topic matching against a reference -----------------------------------------------


def ref_matches(f, t):
    """Reference [4.7]: compare the '/'-separated levels; '#' matches the rest and the
    parent level, '+' one level; wildcards first in a filter skip '$' topics."""
    if t.startswith("$") and f[:1] in ("+", "#"):
        return False
    fl = f.split("/")
    tl = t.split("/")
    for i, level in enumerate(fl):
        if level == "#":
            return True
        if i >= len(tl):
            return False
        if level != "+" and level != tl[i]:
            return False
    return len(fl) == len(tl)


def ref_filter_ok(f):
    if not f or "\x00" in f:
        return False
    levels = f.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


@st.composite
def topic_for(draw, f):
    """A topic built to match (or nearly match) the filter f."""
    out = []
    for level in f.split("/"):
        if level == "+":
            out.append(draw(st.sampled_from(LEVELS)))
        elif level == "#":
            out += draw(st.lists(st.sampled_from(LEVELS), max_size=3))
        else:
            out.append(level)
    if draw(st.booleans()) and out:
        i = draw(st.integers(0, len(out) - 1))
        out[i] = draw(st.sampled_from(LEVELS))  # perturb a level
    t = "/".join(out)
    return t if t else "a"


@FAST
@given(filters(), topic_strings())
def test_matches_agrees_with_reference(f, t):
    assert filter_problem(f.encode()) is None
    want = ref_matches(f, t)
    assert topic_matches_sub(f, t) is want, (f, t)
    tb = t.encode()
    buf = b"#/+" + tb + b"/x"
    assert matches(f.encode(), memoryview(buf), 3, 3 + len(tb)) is want


@FAST
@given(st.data())
def test_matches_agrees_with_reference_near_misses(data):
    f = data.draw(filters())
    t = data.draw(topic_for(f))
    assert topic_matches_sub(f.encode(), t.encode()) is ref_matches(f, t), (f, t)


@FAST
@given(
    st.text(st.sampled_from("ab/+#$\u00e9"), max_size=12),
    st.text(st.sampled_from("ab/$\u00e9"), min_size=1, max_size=12),
)
def test_matches_agrees_with_reference_any_text(f, t):
    assert (filter_problem(f.encode()) is None) == ref_filter_ok(f), f
    if ref_filter_ok(f):
        assert topic_matches_sub(f, t) is ref_matches(f, t), (f, t)


@QUICK
@given(st.text(max_size=30).filter(lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)))
def test_topic_problem_agrees_with_reference(t):
    b = t.encode("utf-8")
    ok = bool(t) and "+" not in t and "#" not in t and "\x00" not in t
    assert (topic_problem(b, 0, len(b)) is None) == ok, t
    assert (filter_problem(b) is None) == ref_filter_ok(t), t


@FAST
@given(st.binary(max_size=12))
@example(b"\xed\xa0\x80")
@example(b"\xf4\x90\x80\x80")
@example(b"\xe0\x9f\xbf")
def test_utf8_problem_agrees_with_the_codec(b):
    try:
        ok = "\x00" not in b.decode("utf-8")
    except UnicodeDecodeError:
        ok = False
    assert (utf8_problem(b, 0, len(b)) is None) == ok, b
