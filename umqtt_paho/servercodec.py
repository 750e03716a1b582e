# The broker half of the MQTT 3.1 / 3.1.1 codec, for tests and fake brokers (the
# tests' scripted broker, umqtt_paho.testing): host-side, never copied to a board.
#
# umqtt_paho/packet.py holds what a client needs: encoders for what a client sends and
# decoders for what it receives. This module adds the other half, so tests (and the
# scripted fake broker built on it) can speak to the client byte for byte:
#
# - encode_connack / encode_suback / encode_unsuback / encode_pingresp write what only a
#   broker sends. PUBLISH and PUBACK/PUBREC/PUBREL/PUBCOMP go both ways: use
#   packet.encode_publish / packet.encode_ack (re-exported here), or
#   encode_publish_message, which also writes the payload.
# - decode_connect / decode_subscribe / decode_unsubscribe / decode_pingreq /
#   decode_disconnect read what only a client sends; decode_publish and decode_ack
#   (re-exported from packet.py) read the rest.
# - split_packets frames a byte stream; decode_packet decodes any of the 14 packet types
#   into plain Python values, whichever side it came from.
# - encode_fixed_header writes any fixed header (for hand-made, even malformed, packets);
#   to_bytes(encoder, ...) runs an encoder on a large enough buffer and returns bytes.
#
# Conventions are packet.py's: encoders write one packet at buf[0:] and return its
# length, raise MQTTError(ERR_PAYLOAD_SIZE) before writing a byte if it does not fit and
# ValueError for a bad argument; decoders take (first, mv, pos, rl) - the first byte of
# the fixed header, a memoryview, where the variable header starts and the remaining
# length - never look past pos + rl, and raise MQTTError(ERR_PROTOCOL) naming the rule
# for anything malformed. Unlike packet.py, this module copies freely (bytes, lists,
# dicts): it is for tests, not for the client's hot path.
#
# The broker encoders take check=True. With check=False they skip the argument checks
# (values must still fit their bytes), so a fake broker can send a malformed CONNACK or
# SUBACK on purpose to see the client reject it.
#
# This file is loaded by MicroPython too: no f-strings, no typing, no dataclasses.

from .errors import ERR_PAYLOAD_SIZE, ERR_PROTOCOL, REASONS, MQTTError, type_name  # noqa: F401
from .packet import _check_pid, fixed_header  # packet.py's header writer and id check
from .packet import (  # noqa: F401  (re-exported: tests and fake brokers use one module)
    decode_ack,
    decode_connack,
    decode_publish,
    decode_suback,
    encode_ack,
    encode_connect,
    encode_publish,
    encode_subscribe,
    packet_type,
    remaining_length_size,
    filter_problem,
    topic_problem,
    utf8_problem,
)

_T_LENGTH_LONG = 63  # errors.py's text number


def remaining_length(mv, pos, end):
    """The remaining length whose first byte is mv[pos], or -1 if it is incomplete.

    Raises MQTTError if it runs past 4 bytes [2.2.3].
    """
    value = 0
    shift = 0
    i = pos
    while i < end:
        d = mv[i]
        value |= (d & 0x7F) << shift
        if not d & 0x80:
            return value
        shift += 7
        i += 1
        if i - pos == 4:
            raise MQTTError(ERR_PROTOCOL, _T_LENGTH_LONG)
    return -1


# Control packet types [MQTT-2.2.1] (the client codec keeps them private: no RAM)
CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14

MQTTv31 = 3  # protocol level of MQTT 3.1 ("MQIsdp")
MQTTv311 = 4  # protocol level of MQTT 3.1.1 ("MQTT")

MAX_REMAINING_LENGTH = 268435455  # 4 bytes of variable length integer [2.2.3]

SUBACK_FAILURE = 0x80  # SUBACK return code: subscription refused [3.9.3]


def _bad(msg):
    return MQTTError(ERR_PROTOCOL, msg)


# ---- encoding (what a broker sends) ---------------------------------------------------


def encode_fixed_header(buf, first, rl):
    """Write the fixed header of a packet whose remaining length is rl; returns its size.

    Checks first that the whole packet (header and rl bytes) fits buf, and raises
    MQTTError(ERR_PAYLOAD_SIZE) without writing anything if it does not (packet.py's
    own header writer: the same check, the same words).
    """
    if not 0 <= rl <= MAX_REMAINING_LENGTH:
        raise ValueError("remaining length must be 0..268435455, not %r [2.2.3]" % (rl,))
    return fixed_header(buf, first, rl, rl)


def encode_connack(buf, session_present, rc, check=True):
    """CONNACK [3.2]: 4 bytes.

    rc is the return code 0..5 [3.2.2.3]; session_present may only be set with rc 0
    [MQTT-3.2.2-4]. With check=False, session_present is written as the whole
    acknowledge flags byte and rc as any byte value.
    """
    if check:
        if not 0 <= rc <= 5:
            raise ValueError("CONNACK return code must be 0..5, not %r [3.2.2.3]" % (rc,))
        if session_present and rc:
            raise ValueError("CONNACK session present needs return code 0 [MQTT-3.2.2-4]")
        flags = 1 if session_present else 0
    else:
        flags = int(session_present)
    pos = encode_fixed_header(buf, CONNACK << 4, 2)
    buf[pos] = flags
    buf[pos + 1] = rc
    return pos + 2


def encode_suback(buf, pid, codes, check=True):
    """SUBACK [3.9]: the packet id and one return code per filter, in order.

    Codes are 0, 1, 2 (granted QoS) or 0x80 (failure) [MQTT-3.9.3-2].
    """
    if check:
        _check_pid(pid)
        if not codes:
            raise ValueError("SUBACK needs a return code per topic filter [MQTT-3.9.3-1]")
        for c in codes:
            if c not in (0, 1, 2, SUBACK_FAILURE):
                raise ValueError("SUBACK return code %r is reserved [MQTT-3.9.3-2]" % (c,))
    pos = encode_fixed_header(buf, SUBACK << 4, 2 + len(codes))
    buf[pos] = pid >> 8
    buf[pos + 1] = pid & 0xFF
    pos += 2
    for c in codes:
        buf[pos] = c
        pos += 1
    return pos


def encode_unsuback(buf, pid):
    """UNSUBACK [3.11]: 4 bytes."""
    return encode_ack(buf, UNSUBACK, pid)


def encode_unsubscribe(buf, pid, filters):
    """UNSUBSCRIBE [3.10] of one or more filters (bytes), in one packet (the client codec's
    encode_subscribe(..., unsubscribe=True))."""
    return encode_subscribe(buf, pid, filters, True)


def header_size(mv, pos, end):
    """Bytes in the fixed header starting at mv[pos], or -1 if mv[pos:end] holds less.

    Raises MQTTError if the remaining length runs past 4 bytes [2.2.3].
    """
    rl = remaining_length(mv, pos + 1, end)
    return -1 if rl < 0 else 1 + remaining_length_size(rl)


def encode_pingreq(buf):
    """PINGREQ [3.12]: 2 bytes."""
    return encode_fixed_header(buf, PINGREQ << 4, 0)


def encode_disconnect(buf):
    """DISCONNECT [3.14]: 2 bytes."""
    return encode_fixed_header(buf, DISCONNECT << 4, 0)


def decode_pingresp(first, mv, pos, rl):
    """PINGRESP [3.13]: no body."""
    if rl:
        raise _bad("PINGRESP remaining length must be 0, not %d [3.13]" % rl)
    return 0


def encode_pingresp(buf):
    """PINGRESP [3.13]: 2 bytes."""
    return encode_fixed_header(buf, PINGRESP << 4, 0)


def encode_publish_message(buf, topic, payload, qos=0, retain=False, dup=False, pid=0):
    """A whole PUBLISH [3.3], payload included: packet.encode_publish plus the payload.

    Arguments are checked by packet.encode_publish (ValueError); then, if header and
    payload do not fit buf, MQTTError(ERR_PAYLOAD_SIZE) is raised before writing.
    """
    n = len(payload)
    head = bytearray(5 + 2 + len(topic) + 2)  # the largest fixed + variable header
    hn = encode_publish(head, topic, n, qos, retain, dup, pid)
    if hn + n > len(buf):
        raise MQTTError(
            ERR_PAYLOAD_SIZE,
            "PUBLISH needs %d bytes but the buffer has %d" % (hn + n, len(buf)),
        )
    buf[0:hn] = head[0:hn]
    buf[hn : hn + n] = payload
    return hn + n


def to_bytes(encoder, *args, **kw):
    """Run encoder(buf, *args, **kw) on a large enough buffer and return the bytes.

    For example to_bytes(encode_suback, 7, [0, 0x80]). For encode_publish, which leaves
    the payload out, use encode_publish_message.
    """
    size = 64
    while True:
        buf = bytearray(size)
        try:
            n = encoder(buf, *args, **kw)
        except MQTTError as e:
            if e.args[0] != ERR_PAYLOAD_SIZE or size > 2 * MAX_REMAINING_LENGTH:
                raise
            size *= 4
            continue
        return bytes(buf[:n])


# ---- decoding (what a broker receives) ------------------------------------------------


def _field(mv, pos, end, what):
    # A length-prefixed string or binary field at mv[pos] [1.5.3]: (start, stop).
    if pos + 2 > end:
        raise _bad("%s: no room for its length [1.5.3]" % what)
    n = mv[pos] << 8 | mv[pos + 1]
    start = pos + 2
    if start + n > end:
        raise _bad("%s of %d bytes runs past the remaining length [1.5.3]" % (what, n))
    return start, start + n


def _utf8_field(mv, pos, end, what):
    start, stop = _field(mv, pos, end, what)
    why = utf8_problem(mv, start, stop)
    if why:
        raise _bad("%s %s" % (what, REASONS[why]))
    return start, stop


def decode_connect(first, mv, pos, rl):
    """CONNECT [3.1]: a dict of its fields.

    Keys: protocol_name, level, clean_session, keepalive, client_id, will_topic,
    will_payload, will_qos, will_retain, username, password. Byte fields are bytes, or
    None when absent (will_payload is None without a will).

    Raises MQTTError for a protocol name other than "MQTT" or "MQIsdp", a malformed flags
    byte or a field that is missing, runs past the packet, is not UTF-8 where it must be,
    or is followed by stray bytes. Two conditions are NOT errors here because the spec
    has the broker answer them with a CONNACK: a protocol level it does not support
    (return code 1 [MQTT-3.1.2-2]) and an empty client id with clean_session False
    (return code 2 [MQTT-3.1.3-8]); check `level` and `client_id` for those.
    """
    end = pos + rl
    s, e = _field(mv, pos, end, "CONNECT protocol name")
    name = bytes(mv[s:e])
    if name != b"MQTT" and name != b"MQIsdp":
        raise _bad("CONNECT protocol name %r is not MQTT or MQIsdp [MQTT-3.1.2-1]" % (name,))
    if e + 4 > end:
        raise _bad("CONNECT too short for its level, flags and keep alive [3.1.2]")
    level = mv[e]
    flags = mv[e + 1]
    keepalive = mv[e + 2] << 8 | mv[e + 3]
    if flags & 0x01:
        raise _bad("CONNECT reserved flag bit 0 is set [MQTT-3.1.2-3]")
    will = flags & 0x04
    will_qos = (flags >> 3) & 0x03
    will_retain = bool(flags & 0x20)
    if will:
        if will_qos == 3:
            raise _bad("CONNECT will QoS 3 [MQTT-3.1.2-14]")
    else:
        if will_qos:
            raise _bad("CONNECT will QoS %d without the will flag [MQTT-3.1.2-13]" % will_qos)
        if will_retain:
            raise _bad("CONNECT will retain without the will flag [MQTT-3.1.2-15]")
    if flags & 0x40 and not flags & 0x80:
        raise _bad("CONNECT password flag without the user name flag [MQTT-3.1.2-22]")
    pos = e + 4

    s, e = _utf8_field(mv, pos, end, "CONNECT client id")
    client_id = bytes(mv[s:e])
    pos = e
    will_topic = None
    will_payload = None
    if will:
        s, e = _field(mv, pos, end, "CONNECT will topic")
        why = topic_problem(mv, s, e)
        if why:
            raise _bad("CONNECT will topic " + REASONS[why])
        will_topic = bytes(mv[s:e])
        s, e = _field(mv, e, end, "CONNECT will message")
        will_payload = bytes(mv[s:e])
        pos = e
    username = None
    password = None
    if flags & 0x80:
        s, e = _utf8_field(mv, pos, end, "CONNECT user name")
        username = bytes(mv[s:e])
        pos = e
    if flags & 0x40:
        s, e = _field(mv, pos, end, "CONNECT password")
        password = bytes(mv[s:e])
        pos = e
    if pos != end:
        raise _bad("CONNECT has %d bytes after its last field [MQTT-3.1.3-1]" % (end - pos))
    return {
        "protocol_name": name,
        "level": level,
        "clean_session": bool(flags & 0x02),
        "keepalive": keepalive,
        "client_id": client_id,
        "will_topic": will_topic,
        "will_payload": will_payload,
        "will_qos": will_qos,
        "will_retain": will_retain,
        "username": username,
        "password": password,
    }


def _packet_id(mv, pos, end, what):
    if pos + 2 > end:
        raise _bad("%s too short for its packet id [2.3.1]" % what)
    pid = mv[pos] << 8 | mv[pos + 1]
    if pid == 0:
        raise _bad("%s with packet id 0 [MQTT-2.3.1-1]" % what)
    return pid


def _filter(mv, pos, end, what):
    s, e = _field(mv, pos, end, what)
    f = bytes(mv[s:e])
    why = filter_problem(f)
    if why:
        raise _bad(what + " " + REASONS[why])
    return f, e


def decode_subscribe(first, mv, pos, rl):
    """SUBSCRIBE [3.8]: (packet id, [(filter bytes, requested qos), ...])."""
    end = pos + rl
    pid = _packet_id(mv, pos, end, "SUBSCRIBE")
    pos += 2
    if pos == end:
        raise _bad("SUBSCRIBE without a topic filter [MQTT-3.8.3-3]")
    filters = []
    while pos < end:
        f, pos = _filter(mv, pos, end, "SUBSCRIBE topic filter")
        if pos >= end:
            raise _bad("SUBSCRIBE topic filter without its requested QoS [3.8.3]")
        qos = mv[pos]
        if qos > 2:
            raise _bad(
                "SUBSCRIBE requested QoS byte %d: QoS 3 or reserved bits set [MQTT-3.8.3-4]" % qos
            )
        filters.append((f, qos))
        pos += 1
    return pid, filters


def decode_unsubscribe(first, mv, pos, rl):
    """UNSUBSCRIBE [3.10]: (packet id, [filter bytes, ...])."""
    end = pos + rl
    pid = _packet_id(mv, pos, end, "UNSUBSCRIBE")
    pos += 2
    if pos == end:
        raise _bad("UNSUBSCRIBE without a topic filter [MQTT-3.10.3-2]")
    filters = []
    while pos < end:
        f, pos = _filter(mv, pos, end, "UNSUBSCRIBE topic filter")
        filters.append(f)
    return pid, filters


def decode_pingreq(first, mv, pos, rl):
    """PINGREQ [3.12]: no body."""
    if rl:
        raise _bad("PINGREQ remaining length must be 0, not %d [3.12]" % rl)
    return 0


def decode_disconnect(first, mv, pos, rl):
    """DISCONNECT [3.14]: no body."""
    if rl:
        raise _bad("DISCONNECT remaining length must be 0, not %d [3.14]" % rl)
    return 0


# ---- any packet, either direction -----------------------------------------------------


def decode_packet(first, mv, pos=0, rl=None):
    """Decode one packet of any type into plain values: (type, value).

    mv[pos:pos + rl] is the body after the fixed header whose first byte is `first`
    (rl defaults to the rest of mv), e.g. decode_packet(*split_packets(data)[0][0]).
    The type and flags of `first` are checked (packet.packet_type). value is:
      CONNECT      the dict of decode_connect
      CONNACK      (session_present bool, return code)
      PUBLISH      dict: topic, payload (bytes), qos, retain, dup, pid (0 at QoS 0)
      PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK   the packet id
      SUBSCRIBE    (pid, [(filter, qos), ...])
      SUBACK       (pid, [return code, ...])
      UNSUBSCRIBE  (pid, [filter, ...])
      PINGREQ, PINGRESP, DISCONNECT   None
    """
    mv = memoryview(mv)
    if rl is None:
        rl = len(mv) - pos
    t = packet_type(first)
    if t == CONNECT:
        return t, decode_connect(first, mv, pos, rl)
    if t == CONNACK:
        rc = decode_connack(first, mv, pos, rl)
        return t, (bool(mv[pos] & 1), rc)
    if t == PUBLISH:
        p = decode_publish(first, mv, pos, rl)
        qos = (first >> 1) & 3
        n = mv[pos] << 8 | mv[pos + 1]
        return t, {
            "topic": bytes(mv[pos + 2 : pos + 2 + n]),
            "payload": bytes(mv[p : pos + rl]),
            "qos": qos,
            "retain": bool(first & 1),
            "dup": bool(first & 8),
            "pid": (mv[p - 2] << 8 | mv[p - 1]) if qos else 0,
        }
    if t == SUBSCRIBE:
        return t, decode_subscribe(first, mv, pos, rl)
    if t == SUBACK:
        pid = decode_suback(first, mv, pos, rl)
        return t, (pid, list(mv[pos + 2 : pos + rl]))
    if t == UNSUBSCRIBE:
        return t, decode_unsubscribe(first, mv, pos, rl)
    if t == PINGREQ:
        decode_pingreq(first, mv, pos, rl)
        return t, None
    if t == PINGRESP:
        decode_pingresp(first, mv, pos, rl)
        return t, None
    if t == DISCONNECT:
        decode_disconnect(first, mv, pos, rl)
        return t, None
    # PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK
    return t, decode_ack(first, mv, pos, rl)


def split_packets(data):
    """Frame a byte stream into packets: ([(first_byte, body bytes), ...], rest bytes).

    `rest` is the incomplete tail (b"" when data ends on a packet boundary): prepend it
    to the next bytes received. Each packet's first byte is checked as soon as it is
    seen (reserved types and flags [2.2], packet.packet_type) and a remaining length of
    more than 4 bytes raises MQTTError [2.2.3]; the bodies are not decoded (see
    decode_packet).
    """
    mv = memoryview(data)
    end = len(mv)
    pos = 0
    packets = []
    while pos < end:
        first = mv[pos]
        packet_type(first)
        hs = header_size(mv, pos, end)
        if hs < 0:
            break
        rl = remaining_length(mv, pos + 1, end)
        if pos + hs + rl > end:
            break
        packets.append((first, bytes(mv[pos + hs : pos + hs + rl])))
        pos += hs + rl
    return packets, bytes(mv[pos:end])
