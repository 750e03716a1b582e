# The MQTT 3.1 / 3.1.1 codec: client-side encoders and decoders over caller buffers.
#
# No I/O here, no clock, no allocation on the paths a client runs per message:
# - encode_*(buf, ...) write one packet at buf[0:] and return its length. They work out
#   the size first and raise MQTTError(ERR_PAYLOAD_SIZE) before writing a byte if it does
#   not fit; a bad argument raises ValueError saying which rule it breaks.
# - decode_*(first, mv, pos, rl) read the packet whose fixed header began with the byte
#   `first` and whose variable header starts at mv[pos], rl bytes long. They return
#   offsets or numbers into mv, never copies, and raise MQTTError(ERR_PROTOCOL) naming
#   the spec rule for anything malformed. Bytes after pos + rl are never looked at.
#
# Section numbers and [MQTT-x.y.z-n] rules are those of MQTT 3.1.1 (OASIS, 2014).

try:
    from micropython import const
except ImportError:  # CPython: the host port runs the same file
    def const(x):
        return x

from .errors import MQTTError, ERR_PROTOCOL, ERR_PAYLOAD_SIZE
from .topic import utf8_problem, topic_problem, filter_problem

# Control packet types [MQTT-2.2.1]
CONNECT = const(1)
CONNACK = const(2)
PUBLISH = const(3)
PUBACK = const(4)
PUBREC = const(5)
PUBREL = const(6)
PUBCOMP = const(7)
SUBSCRIBE = const(8)
SUBACK = const(9)
UNSUBSCRIBE = const(10)
UNSUBACK = const(11)
PINGREQ = const(12)
PINGRESP = const(13)
DISCONNECT = const(14)

MQTTv31 = const(3)  # protocol level of MQTT 3.1 ("MQIsdp")
MQTTv311 = const(4)  # protocol level of MQTT 3.1.1 ("MQTT")

MAX_REMAINING_LENGTH = const(268435455)  # 4 bytes of variable length integer [2.2.3]

_NAMES = "? CONNECT CONNACK PUBLISH PUBACK PUBREC PUBREL PUBCOMP SUBSCRIBE SUBACK UNSUBSCRIBE UNSUBACK PINGREQ PINGRESP DISCONNECT ?"  # noqa: E501


def type_name(t):
    """The name of a packet type, for messages (allocates: error path only)."""
    if 0 < t < 15:
        return _NAMES.split()[t]
    return "reserved type %d" % t


# ---- encoding -------------------------------------------------------------------------


def remaining_length_size(n):
    """Bytes the remaining length n takes in a fixed header [2.2.3]."""
    if n < 128:
        return 1
    if n < 16384:
        return 2
    if n < 2097152:
        return 3
    return 4


def _put_remaining_length(buf, pos, n):
    while True:
        d = n & 0x7F
        n >>= 7
        if n:
            buf[pos] = d | 0x80
            pos += 1
        else:
            buf[pos] = d
            return pos + 1


def _start(buf, first, rl, what):
    # Check the size, then write the fixed header; returns where the body starts.
    need = 1 + remaining_length_size(rl) + rl
    if need > len(buf):
        raise MQTTError(
            ERR_PAYLOAD_SIZE,
            "%s needs %d bytes but the buffer has %d" % (what, need, len(buf)),
        )
    buf[0] = first
    return _put_remaining_length(buf, 1, rl)


def _put_u16(buf, pos, v):
    buf[pos] = v >> 8
    buf[pos + 1] = v & 0xFF
    return pos + 2


def _put_string(buf, pos, s):
    # A length-prefixed string or binary field [1.5.3]
    n = len(s)
    buf[pos] = n >> 8
    buf[pos + 1] = n & 0xFF
    pos += 2
    buf[pos : pos + n] = s
    return pos + n


def _check_qos(qos, what, rule):
    if qos != 0 and qos != 1 and qos != 2:
        raise ValueError("%s QoS must be 0, 1 or 2, not %r [%s]" % (what, qos, rule))


def _check_pid(pid):
    if not 0 < pid <= 65535:
        raise ValueError("packet id must be 1..65535, not %r [MQTT-2.3.1-1]" % (pid,))


def _check_field(s, what):
    if len(s) > 65535:
        raise ValueError("%s is longer than 65535 bytes [1.5.3]" % what)


def _check_utf8(s, what):
    _check_field(s, what)
    why = utf8_problem(s, 0, len(s))
    if why:
        raise ValueError("%s %s" % (what, why))


def encode_connect(
    buf,
    client_id,
    clean_session=True,
    keepalive=60,
    will_topic=None,
    will_payload=b"",
    will_qos=0,
    will_retain=False,
    username=None,
    password=None,
    protocol=MQTTv311,
):
    """CONNECT [3.1]. Strings are bytes; protocol is MQTTv31 or MQTTv311."""
    if protocol == MQTTv311:
        name = b"MQTT"
        if not client_id and not clean_session:
            raise ValueError("an empty client id needs clean_session=True [MQTT-3.1.3-7]")
    elif protocol == MQTTv31:
        name = b"MQIsdp"
        if not client_id:
            # MQTT 3.1 allows 1 to 23 characters; longer ids are left to the broker,
            # which answers CONNACK 2 (many brokers accept them).
            raise ValueError("MQTT 3.1 needs a non-empty client id (1 to 23 characters)")
    else:
        raise ValueError("protocol must be MQTTv31 (3) or MQTTv311 (4), not %r" % (protocol,))
    if not 0 <= keepalive <= 65535:
        raise ValueError("keepalive must be 0..65535 seconds [3.1.2.10]")
    _check_utf8(client_id, "client id")
    rl = 2 + len(name) + 4 + 2 + len(client_id)
    flags = 0x02 if clean_session else 0
    if will_topic is not None:
        why = topic_problem(will_topic, 0, len(will_topic))
        if why:
            raise ValueError("will topic " + why)
        _check_qos(will_qos, "will", "MQTT-3.1.2-14")
        _check_field(will_payload, "will payload")
        rl += 4 + len(will_topic) + len(will_payload)
        flags |= 0x04 | will_qos << 3 | (0x20 if will_retain else 0)
    if username is not None:
        _check_utf8(username, "user name")
        rl += 2 + len(username)
        flags |= 0x80
    if password is not None:
        if username is None:
            raise ValueError("a password needs a user name [MQTT-3.1.2-22]")
        _check_field(password, "password")
        rl += 2 + len(password)
        flags |= 0x40
    pos = _start(buf, CONNECT << 4, rl, "CONNECT")
    pos = _put_string(buf, pos, name)
    buf[pos] = protocol
    buf[pos + 1] = flags
    pos = _put_u16(buf, pos + 2, keepalive)
    pos = _put_string(buf, pos, client_id)
    if will_topic is not None:
        pos = _put_string(buf, pos, will_topic)
        pos = _put_string(buf, pos, will_payload)
    if username is not None:
        pos = _put_string(buf, pos, username)
    if password is not None:
        pos = _put_string(buf, pos, password)
    return pos


def encode_publish(buf, topic, payload_len, qos=0, retain=False, dup=False, pid=0, checked=False):
    """PUBLISH [3.3]: fixed header, topic and packet id; returns their length.

    The payload (payload_len bytes) is not written: the caller copies it after the
    header when it fits the buffer, or writes it straight from its own object.
    checked=True skips the topic checks, for a caller that validated this topic before.
    """
    _check_qos(qos, "PUBLISH", "MQTT-3.3.1-4")
    if qos:
        _check_pid(pid)
    elif dup:
        raise ValueError("DUP must be 0 for QoS 0 [MQTT-3.3.1-2]")
    if not checked:
        why = topic_problem(topic, 0, len(topic))
        if why:
            raise ValueError("topic " + why)
    if payload_len < 0:
        raise ValueError("payload length must be >= 0")
    head = 2 + len(topic) + (2 if qos else 0)
    rl = head + payload_len
    if rl > MAX_REMAINING_LENGTH:
        raise ValueError("payload too large: PUBLISH may hold at most 268435455 bytes [2.2.3]")
    first = PUBLISH << 4 | qos << 1
    if dup:
        first |= 0x08
    if retain:
        first |= 0x01
    need = 1 + remaining_length_size(rl) + head
    if need > len(buf):
        raise MQTTError(
            ERR_PAYLOAD_SIZE,
            "PUBLISH header needs %d bytes but the buffer has %d" % (need, len(buf)),
        )
    buf[0] = first
    pos = _put_remaining_length(buf, 1, rl)
    pos = _put_string(buf, pos, topic)
    if qos:
        pos = _put_u16(buf, pos, pid)
    return pos


def encode_ack(buf, ptype, pid):
    """PUBACK, PUBREC, PUBREL, PUBCOMP [3.4-3.7] (or a broker's UNSUBACK): 4 bytes."""
    if (ptype < PUBACK or ptype > PUBCOMP) and ptype != UNSUBACK:
        raise ValueError("encode_ack is for PUBACK, PUBREC, PUBREL, PUBCOMP and UNSUBACK")
    _check_pid(pid)
    if len(buf) < 4:
        raise MQTTError(ERR_PAYLOAD_SIZE, "an ack needs 4 bytes")
    # PUBREL's reserved flags are 0010 [MQTT-3.6.1-1]
    buf[0] = ptype << 4 | (0x02 if ptype == PUBREL else 0)
    buf[1] = 2
    buf[2] = pid >> 8
    buf[3] = pid & 0xFF
    return 4


def encode_subscribe(buf, pid, filters):
    """SUBSCRIBE [3.8] of one or more (filter bytes, qos) pairs, in one packet."""
    _check_pid(pid)
    if not filters:
        raise ValueError("SUBSCRIBE needs at least one topic filter [MQTT-3.8.3-3]")
    rl = 2
    for f, qos in filters:
        why = filter_problem(f)
        if why:
            raise ValueError("topic filter " + why)
        _check_qos(qos, "subscription", "MQTT-3.8.3-4")
        rl += 3 + len(f)
    # SUBSCRIBE's reserved flags are 0010 [MQTT-3.8.1-1]
    pos = _start(buf, SUBSCRIBE << 4 | 0x02, rl, "SUBSCRIBE")
    pos = _put_u16(buf, pos, pid)
    for f, qos in filters:
        pos = _put_string(buf, pos, f)
        buf[pos] = qos
        pos += 1
    return pos


def encode_unsubscribe(buf, pid, filters):
    """UNSUBSCRIBE [3.10] of one or more filters (bytes), in one packet."""
    _check_pid(pid)
    if not filters:
        raise ValueError("UNSUBSCRIBE needs at least one topic filter [MQTT-3.10.3-2]")
    rl = 2
    for f in filters:
        why = filter_problem(f)
        if why:
            raise ValueError("topic filter " + why)
        rl += 2 + len(f)
    # UNSUBSCRIBE's reserved flags are 0010 [MQTT-3.10.1-1]
    pos = _start(buf, UNSUBSCRIBE << 4 | 0x02, rl, "UNSUBSCRIBE")
    pos = _put_u16(buf, pos, pid)
    for f in filters:
        pos = _put_string(buf, pos, f)
    return pos


def encode_pingreq(buf):
    """PINGREQ [3.12]: 2 bytes."""
    return _start(buf, PINGREQ << 4, 0, "PINGREQ")


def encode_disconnect(buf):
    """DISCONNECT [3.14]: 2 bytes."""
    return _start(buf, DISCONNECT << 4, 0, "DISCONNECT")


# ---- decoding -------------------------------------------------------------------------


def _bad(msg):
    return MQTTError(ERR_PROTOCOL, msg)


def packet_type(first):
    """The type of a packet sent to a client, from its first byte, flags checked [2.2]."""
    t = first >> 4
    flags = first & 0x0F
    if t == PUBLISH:
        if flags & 0x06 == 0x06:
            raise _bad("PUBLISH with QoS 3 [MQTT-3.3.1-4]")
        return t
    if t == 0 or t == 15:
        raise _bad("reserved packet type %d [2.2.1]" % t)
    if t == PUBREL or t == SUBSCRIBE or t == UNSUBSCRIBE:
        if flags != 0x02:
            raise _bad("%s flags must be 0010, not %d [MQTT-2.2.2-1]" % (type_name(t), flags))
    elif flags:
        raise _bad("%s flags must be 0000, not %d [MQTT-2.2.2-1]" % (type_name(t), flags))
    return t


def header_size(mv, pos, end):
    """Bytes in the fixed header starting at mv[pos], or -1 if mv[pos:end] holds less.

    Raises MQTTError if the remaining length runs past 4 bytes [2.2.3].
    """
    i = pos + 1
    while i < end:
        if not mv[i] & 0x80:
            return i - pos + 1
        i += 1
        if i - pos > 4:
            raise _bad("remaining length longer than 4 bytes [2.2.3]")
    return -1


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
            raise _bad("remaining length longer than 4 bytes [2.2.3]")
    return -1


def decode_connack(first, mv, pos, rl):
    """CONNACK [3.2]: the return code. Session present is mv[pos] & 1 [3.2.2.2]."""
    if rl != 2:
        raise _bad("CONNACK remaining length must be 2, not %d [3.2.1]" % rl)
    flags = mv[pos]
    rc = mv[pos + 1]
    if flags & 0xFE:
        raise _bad("CONNACK reserved flag bits set: %d [3.2.2.1]" % flags)
    if rc > 5:
        raise _bad("CONNACK return code %d is reserved [3.2.2.3]" % rc)
    if rc and flags:
        raise _bad("CONNACK refused with session present set [MQTT-3.2.2-4]")
    return rc


def decode_ack(first, mv, pos, rl):
    """PUBACK, PUBREC, PUBREL, PUBCOMP or UNSUBACK [3.4-3.7, 3.11]: the packet id."""
    if rl != 2:
        t = first >> 4
        section = "3.11.1" if t == UNSUBACK else "3.%d.1" % t  # PUBACK 3.4.1 .. PUBCOMP 3.7.1
        raise _bad("%s remaining length must be 2, not %d [%s]" % (type_name(t), rl, section))
    pid = mv[pos] << 8 | mv[pos + 1]
    if pid == 0:
        raise _bad("%s with packet id 0 [MQTT-2.3.1-1]" % type_name(first >> 4))
    return pid


def decode_suback(first, mv, pos, rl):
    """SUBACK [3.9]: the packet id; return codes are mv[pos+2:pos+rl]."""
    if rl < 3:
        raise _bad("SUBACK without a return code [3.9.3]")
    pid = mv[pos] << 8 | mv[pos + 1]
    if pid == 0:
        raise _bad("SUBACK with packet id 0 [MQTT-2.3.1-1]")
    for i in range(pos + 2, pos + rl):
        c = mv[i]
        if c > 2 and c != 0x80:
            raise _bad("SUBACK return code %d is reserved [MQTT-3.9.3-2]" % c)
    return pid


def decode_pingresp(first, mv, pos, rl):
    """PINGRESP [3.13]: no body."""
    if rl:
        raise _bad("PINGRESP remaining length must be 0, not %d [3.13]" % rl)
    return 0


def decode_publish(first, mv, pos, rl):
    """PUBLISH [3.3]: where its payload starts in mv.

    The topic is mv[pos+2 : pos+2+n] with n = mv[pos] << 8 | mv[pos+1]; at QoS 1 and 2
    the packet id is the two bytes just before the payload.
    """
    qos = (first >> 1) & 0x03
    if qos == 3:
        raise _bad("PUBLISH with QoS 3 [MQTT-3.3.1-4]")
    if qos == 0 and first & 0x08:
        raise _bad("PUBLISH with DUP set at QoS 0 [MQTT-3.3.1-2]")
    if rl < 2:
        raise _bad("PUBLISH too short for its topic length [3.3.2]")
    n = mv[pos] << 8 | mv[pos + 1]
    start = pos + 2
    payload = start + n + (2 if qos else 0)
    if payload > pos + rl:
        raise _bad("PUBLISH topic and packet id run past the remaining length [3.3.2]")
    why = topic_problem(mv, start, start + n)
    if why:
        raise _bad("PUBLISH topic " + why)
    if qos and mv[payload - 2] == 0 and mv[payload - 1] == 0:
        raise _bad("PUBLISH with packet id 0 [MQTT-2.3.1-1]")
    return payload
