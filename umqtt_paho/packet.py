# The MQTT 3.1 / 3.1.1 codec: client-side encoders and decoders over caller buffers,
# the rules of topic names and filters with wildcard matching, and the library's error
# classes.
#
# No I/O here, no clock, no allocation on the paths a client runs per message:
# - encode_*(buf, ...) write one packet at buf[0:] and return its length. They work out
#   the size first and raise MQTTError(ERR_PAYLOAD_SIZE) before writing a byte if it does
#   not fit; a bad argument raises ArgError (a ValueError) saying which rule it breaks.
# - decode_*(first, mv, pos, rl) read the packet whose fixed header began with the byte
#   `first` and whose variable header starts at mv[pos], rl bytes long. They return
#   offsets or numbers into mv, never copies, and raise MQTTError(ERR_PROTOCOL) naming
#   the spec rule for anything malformed. Bytes after pos + rl are never looked at.
# - Errors carry numbers, not words: MQTTError(code, text, args...) and
#   ArgError(text, args...). errors.py, loaded only when one is printed, words them
#   (text numbers _T_*: tests/test_texts.py checks them against errors.py).
#
# Section numbers and [MQTT-x.y.z-n] rules are those of MQTT 3.1.1 (OASIS, 2014).

try:
    from micropython import const
except ImportError:  # CPython: the host port runs the same file
    const = int  # a function here would cost RAM on the board too

# Control packet types [MQTT-2.2.1]
_CONNECT = const(1)
_PUBLISH = const(3)
_PUBACK = const(4)
_PUBREL = const(6)
_PUBCOMP = const(7)
_SUBSCRIBE = const(8)
_UNSUBSCRIBE = const(10)
_UNSUBACK = const(11)

_SLASH = const(0x2F)
_PLUS = const(0x2B)
_HASH = const(0x23)
_DOLLAR = const(0x24)

# Reasons (errors.py REASONS has their words)
_R_EMPTY = const(1)  # [MQTT-4.7.3-1]
_R_LONG = const(2)  # [MQTT-4.7.3-3]
_R_WILDCARD = const(3)  # [MQTT-3.3.2-2]
_R_HASH = const(4)  # [MQTT-4.7.1-2]
_R_PLUS = const(5)  # [MQTT-4.7.1-3]
_R_NUL = const(6)  # [MQTT-1.5.3-2]
_R_UTF8 = const(7)  # [MQTT-1.5.3-1]
_R_UTF8_END = const(8)  # [MQTT-1.5.3-1]

_MQTTv31 = const(3)
_MQTTv311 = const(4)
_MAX_REMAINING_LENGTH = const(268435455)  # 4 bytes of variable length integer [2.2.3]

_ERR_PROTOCOL = const(2)
_ERR_PAYLOAD_SIZE = const(9)

_T_PROTOCOL_LEVEL = const(1)
_T_EMPTY_ID = const(2)
_T_EMPTY_ID_31 = const(3)
_T_WILL_TOPIC = const(6)
_T_QOS = const(7)
_T_KEEPALIVE = const(8)
_T_FILTER = const(29)
_T_TOPIC = const(30)
_T_BUFFER = const(50)
_T_PID = const(51)
_T_FIELD_LONG = const(52)
_T_FIELD_UTF8 = const(53)
_T_PASSWORD = const(54)
_T_DUP_QOS0 = const(55)
_T_PAYLOAD_LEN = const(56)
_T_PAYLOAD_LARGE = const(57)
_T_ACK_TYPE = const(58)
_T_NO_FILTERS = const(59)
_T_QOS3 = const(60)
_T_RESERVED_TYPE = const(61)
_T_FLAGS = const(62)
_T_CONNACK_LENGTH = const(64)
_T_CONNACK_FLAGS = const(65)
_T_CONNACK_RC = const(66)
_T_CONNACK_PRESENT = const(67)
_T_ACK_LENGTH = const(68)
_T_PID_ZERO = const(69)
_T_SUBACK_EMPTY = const(70)
_T_SUBACK_RC = const(71)
_T_PUBLISH_DUP = const(73)
_T_PUBLISH_SHORT = const(74)
_T_PUBLISH_PAST = const(75)
_T_PUBLISH_TOPIC = const(76)

# Which QoS, for _T_QOS
_Q_PUBLISH = const(1)
_Q_WILL = const(2)
_Q_SUBSCRIPTION = const(3)

# Which field, for _T_FIELD_*
_F_CLIENT_ID = const(0)
_F_USER = const(1)
_F_PASSWORD = const(2)
_F_WILL_PAYLOAD = const(3)


class MQTTError(Exception):
    """The library's one exception: MQTTError(code, text, args...).

    `code` is one of the ERR_* numbers of errors.py; `str(e)` says what went wrong and,
    for protocol errors, which spec rule was broken.
    """

    @property
    def code(self):
        return self.args[0]

    def __str__(self, with_name=False):
        # The words are built now (errors.py), or its numbers if errors.py is absent.
        try:
            from .errors import explain

            return explain(self, with_name)
        except (ImportError, MemoryError):  # not installed, or no RAM left for it
            return repr(self.args)

    def __repr__(self):
        return self.__str__(True)


class ArgError(ValueError):
    """A bad argument (a ValueError): ArgError(text, args...), worded as MQTTError."""

    __str__ = MQTTError.__str__
    __repr__ = MQTTError.__repr__


# ---- topic names and filters [MQTT-4.7] -----------------------------------------------
#
# Everything here works on bytes-like objects with explicit start/end offsets, so the
# client can check and match a topic that sits inside its receive buffer without copying
# it. The checks return None or a small reason number (errors.py words it), and the caller
# raises the error that fits whose fault it is: ValueError for our caller, MQTTError for
# the broker.


def utf8_problem(b, i, end):
    """None if b[i:end] is well-formed UTF-8 as MQTT requires, else the reason.

    [MQTT-1.5.3-1]: no ill-formed sequences, no surrogates (U+D800..U+DFFF), no
    overlong forms. [MQTT-1.5.3-2]: no U+0000.
    """
    while i < end:
        c = b[i]
        if c < 0x80:
            if c == 0:
                return _R_NUL
            i += 1
            continue
        lo = 0x80
        hi = 0xBF
        if 0xC2 <= c <= 0xDF:
            n = 1
        elif 0xE0 <= c <= 0xEF:
            n = 2
            if c == 0xE0:
                lo = 0xA0  # overlong
            elif c == 0xED:
                hi = 0x9F  # surrogates
        elif 0xF0 <= c <= 0xF4:
            n = 3
            if c == 0xF0:
                lo = 0x90  # overlong
            elif c == 0xF4:
                hi = 0x8F  # above U+10FFFF
        else:
            return _R_UTF8
        if i + n >= end:
            return _R_UTF8_END
        c = b[i + 1]
        if c < lo or c > hi:
            return _R_UTF8
        j = i + 2
        i += n + 1
        while j < i:
            c = b[j]
            if c < 0x80 or c > 0xBF:
                return _R_UTF8
            j += 1
    return None


def topic_problem(t, start, end):
    """None if t[start:end] is a valid topic name to publish to, else the reason."""
    n = end - start
    if n <= 0:
        return _R_EMPTY
    if n > 65535:
        return _R_LONG
    i = start
    while i < end:
        c = t[i]
        if c == _PLUS or c == _HASH:
            return _R_WILDCARD
        i += 1
    return utf8_problem(t, start, end)


def filter_problem(f):
    """None if the bytes f are a valid topic filter to subscribe to, else the reason."""
    n = len(f)
    if n == 0:
        return _R_EMPTY
    if n > 65535:
        return _R_LONG
    i = 0
    while i < n:
        c = f[i]
        if c == _HASH:
            # '#' only as the whole last level [MQTT-4.7.1-2]
            if i != n - 1 or (i > 0 and f[i - 1] != _SLASH):
                return _R_HASH
        elif c == _PLUS:
            # '+' only as a whole level [MQTT-4.7.1-3]
            if (i > 0 and f[i - 1] != _SLASH) or (i < n - 1 and f[i + 1] != _SLASH):
                return _R_PLUS
        i += 1
    return utf8_problem(f, 0, n)


def matches(f, t, start, end):
    """True if the filter f (bytes) matches the topic t[start:end]. No allocation."""
    fl = len(f)
    # [MQTT-4.7.2-1]: a filter starting with a wildcard does not match a '$' topic.
    if end > start and t[start] == _DOLLAR and fl and (f[0] == _HASH or f[0] == _PLUS):
        return False
    fi = 0
    ti = start
    while fi < fl:
        c = f[fi]
        if c == _HASH:
            return True  # the rest, any depth (and the parent level, below)
        if c == _PLUS:
            while ti < end and t[ti] != _SLASH:
                ti += 1  # one whole level, possibly empty
            fi += 1
            continue
        if ti >= end:
            # "a/#" also matches "a" [MQTT-4.7.1-2]
            return fi + 2 == fl and c == _SLASH and f[fi + 1] == _HASH
        if c != t[ti]:
            return False
        fi += 1
        ti += 1
    return ti == end


def topic_matches_sub(sub, topic):
    """True if the topic matches the subscription filter sub (str or bytes), as paho's."""
    if isinstance(sub, str):
        sub = sub.encode()
    if isinstance(topic, str):
        topic = topic.encode()
    return matches(sub, topic, 0, len(topic))


# ---- encoding -------------------------------------------------------------------------


def remaining_length_size(n):
    """Bytes the remaining length n takes in a fixed header [2.2.3]."""
    return 1 + (n > 127) + (n > 16383) + (n > 2097151)


def fixed_header(buf, first, rl, body):
    """Write a fixed header (first byte, remaining length rl as a variable length
    integer [2.2.3]) at buf[0:] after checking that it and `body` more bytes fit;
    returns where the body starts. Shared by the encoders here and outbox.py."""
    need = 1 + remaining_length_size(rl) + body
    if need > len(buf):
        raise MQTTError(_ERR_PAYLOAD_SIZE, _T_BUFFER, first >> 4, need, len(buf))
    buf[0] = first
    pos = 1
    while rl > 127:
        buf[pos] = rl & 0x7F | 0x80
        rl >>= 7
        pos += 1
    buf[pos] = rl
    return pos + 1


def _put(buf, pos, s):
    # A length-prefixed string or binary field [1.5.3]; an int s is a 2-byte integer.
    if isinstance(s, int):
        buf[pos] = s >> 8
        buf[pos + 1] = s & 0xFF
        return pos + 2
    n = len(s)
    buf[pos] = n >> 8
    buf[pos + 1] = n & 0xFF
    buf[pos + 2 : pos + 2 + n] = s
    return pos + 2 + n


def _check_qos(qos, rule):
    if qos != 0 and qos != 1 and qos != 2:
        raise ArgError(_T_QOS, qos, rule)


def _check_pid(pid):
    if not 0 < pid <= 65535:
        raise ArgError(_T_PID, pid)


def _check_field(s, what, utf8):
    if len(s) > 65535:
        raise ArgError(_T_FIELD_LONG, what)
    if utf8:
        why = utf8_problem(s, 0, len(s))
        if why:
            raise ArgError(_T_FIELD_UTF8, what, why)
    return 2 + len(s)


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
    protocol=_MQTTv311,
):
    """CONNECT [3.1]. Strings are bytes; protocol is MQTTv31 (3) or MQTTv311 (4)."""
    if protocol == _MQTTv311:
        name = b"MQTT"
        if not client_id and not clean_session:
            raise ArgError(_T_EMPTY_ID)
    elif protocol == _MQTTv31:
        name = b"MQIsdp"
        if not client_id:
            # MQTT 3.1 allows 1 to 23 characters; longer ids are left to the broker,
            # which answers CONNACK 2 (many brokers accept them).
            raise ArgError(_T_EMPTY_ID_31)
    else:
        raise ArgError(_T_PROTOCOL_LEVEL, protocol)
    if not 0 <= keepalive <= 65535:
        raise ArgError(_T_KEEPALIVE)
    rl = 6 + len(name) + _check_field(client_id, _F_CLIENT_ID, True)
    flags = 0x02 if clean_session else 0
    if will_topic is not None:
        why = topic_problem(will_topic, 0, len(will_topic))
        if why:
            raise ArgError(_T_WILL_TOPIC, why)
        _check_qos(will_qos, _Q_WILL)
        rl += 2 + len(will_topic) + _check_field(will_payload, _F_WILL_PAYLOAD, False)
        flags |= 0x04 | will_qos << 3 | (0x20 if will_retain else 0)
    if username is not None:
        rl += _check_field(username, _F_USER, True)
        flags |= 0x80
    if password is not None:
        if username is None:
            raise ArgError(_T_PASSWORD)
        rl += _check_field(password, _F_PASSWORD, False)
        flags |= 0x40
    pos = _put(buf, fixed_header(buf, _CONNECT << 4, rl, rl), name)
    buf[pos] = protocol
    buf[pos + 1] = flags
    pos = _put(buf, _put(buf, pos + 2, keepalive), client_id)
    for s in (will_topic, will_payload if will_topic is not None else None, username, password):
        if s is not None:
            pos = _put(buf, pos, s)
    return pos


def encode_publish(buf, topic, payload_len, qos=0, retain=False, dup=False, pid=0, checked=False):
    """PUBLISH [3.3]: fixed header, topic and packet id; returns their length.

    The payload (payload_len bytes) is not written: the caller copies it after the
    header when it fits the buffer, or writes it straight from its own object.
    checked=True skips the topic checks, for a caller that validated this topic before.
    """
    _check_qos(qos, _Q_PUBLISH)
    if qos:
        _check_pid(pid)
    elif dup:
        raise ArgError(_T_DUP_QOS0)
    if not checked:
        why = topic_problem(topic, 0, len(topic))
        if why:
            raise ArgError(_T_TOPIC, why)
    if payload_len < 0:
        raise ArgError(_T_PAYLOAD_LEN)
    head = 2 + len(topic) + (2 if qos else 0)
    rl = head + payload_len
    if rl > _MAX_REMAINING_LENGTH:
        raise ArgError(_T_PAYLOAD_LARGE)
    # The payload need not fit the buffer (it may go out from the caller's object)
    first = _PUBLISH << 4 | qos << 1 | (8 if dup else 0) | (1 if retain else 0)
    pos = _put(buf, fixed_header(buf, first, rl, head), topic)
    return _put(buf, pos, pid) if qos else pos


def encode_ack(buf, ptype, pid):
    """PUBACK, PUBREC, PUBREL, PUBCOMP [3.4-3.7] (or a broker's UNSUBACK): 4 bytes."""
    if (ptype < _PUBACK or ptype > _PUBCOMP) and ptype != _UNSUBACK:
        raise ArgError(_T_ACK_TYPE)
    _check_pid(pid)
    # PUBREL's reserved flags are 0010 [MQTT-3.6.1-1]
    return _put(buf, fixed_header(buf, ptype << 4 | (2 if ptype == _PUBREL else 0), 2, 2), pid)


def encode_subscribe(buf, pid, filters, unsubscribe=False):
    """SUBSCRIBE [3.8] of one or more (filter bytes, qos) pairs in one packet, or with
    unsubscribe=True UNSUBSCRIBE [3.10] of one or more filters (bytes)."""
    t = _UNSUBSCRIBE if unsubscribe else _SUBSCRIBE
    _check_pid(pid)
    if not filters:
        # [MQTT-3.8.3-3], [MQTT-3.10.3-2]
        raise ArgError(_T_NO_FILTERS, t)
    rl = 2
    for f in filters:
        if t == _SUBSCRIBE:
            _check_qos(f[1], _Q_SUBSCRIPTION)
            f = f[0]
            rl += 1
        why = filter_problem(f)
        if why:
            raise ArgError(_T_FILTER, why)
        rl += 2 + len(f)
    # SUBSCRIBE's and UNSUBSCRIBE's reserved flags are 0010 [MQTT-3.8.1-1, 3.10.1-1]
    pos = _put(buf, fixed_header(buf, t << 4 | 2, rl, rl), pid)
    for f in filters:
        if t == _SUBSCRIBE:
            pos = _put(buf, pos, f[0])
            buf[pos] = f[1]
            pos += 1
        else:
            pos = _put(buf, pos, f)
    return pos


# ---- decoding -------------------------------------------------------------------------


def packet_type(first):
    """The type of a packet sent to a client, from its first byte, flags checked [2.2]."""
    t = first >> 4
    flags = first & 0x0F
    if t == _PUBLISH:
        if flags & 0x06 == 0x06:
            raise MQTTError(_ERR_PROTOCOL, _T_QOS3)
    elif t == 0 or t == 15:
        raise MQTTError(_ERR_PROTOCOL, _T_RESERVED_TYPE, t)
    elif flags != (2 if t == _PUBREL or t == _SUBSCRIBE or t == _UNSUBSCRIBE else 0):
        raise MQTTError(_ERR_PROTOCOL, _T_FLAGS, t, flags)  # [MQTT-2.2.2-1]
    return t


def decode_connack(first, mv, pos, rl):
    """CONNACK [3.2]: the return code. Session present is mv[pos] & 1 [3.2.2.2]."""
    if rl != 2:
        raise MQTTError(_ERR_PROTOCOL, _T_CONNACK_LENGTH, rl)
    flags = mv[pos]
    rc = mv[pos + 1]
    if flags & 0xFE:
        raise MQTTError(_ERR_PROTOCOL, _T_CONNACK_FLAGS, flags)
    if rc > 5:
        raise MQTTError(_ERR_PROTOCOL, _T_CONNACK_RC, rc)
    if rc and flags:
        raise MQTTError(_ERR_PROTOCOL, _T_CONNACK_PRESENT)
    return rc


def decode_ack(first, mv, pos, rl):
    """PUBACK, PUBREC, PUBREL, PUBCOMP or UNSUBACK [3.4-3.7, 3.11]: the packet id."""
    if rl != 2:
        raise MQTTError(_ERR_PROTOCOL, _T_ACK_LENGTH, first >> 4, rl)
    pid = mv[pos] << 8 | mv[pos + 1]
    if pid == 0:
        raise MQTTError(_ERR_PROTOCOL, _T_PID_ZERO, first >> 4)
    return pid


def decode_suback(first, mv, pos, rl):
    """SUBACK [3.9]: the packet id; return codes are mv[pos+2:pos+rl]."""
    if rl < 3:
        raise MQTTError(_ERR_PROTOCOL, _T_SUBACK_EMPTY)
    pid = mv[pos] << 8 | mv[pos + 1]
    if pid == 0:
        raise MQTTError(_ERR_PROTOCOL, _T_PID_ZERO, first >> 4)
    for i in range(pos + 2, pos + rl):
        c = mv[i]
        if c > 2 and c != 0x80:
            raise MQTTError(_ERR_PROTOCOL, _T_SUBACK_RC, c)
    return pid


def decode_publish(first, mv, pos, rl):
    """PUBLISH [3.3]: where its payload starts in mv.

    The topic is mv[pos+2 : pos+2+n] with n = mv[pos] << 8 | mv[pos+1]; at QoS 1 and 2
    the packet id is the two bytes just before the payload.
    """
    qos = first >> 1 & 3
    if qos == 3:
        raise MQTTError(_ERR_PROTOCOL, _T_QOS3)
    if qos == 0 and first & 0x08:
        raise MQTTError(_ERR_PROTOCOL, _T_PUBLISH_DUP)
    if rl < 2:
        raise MQTTError(_ERR_PROTOCOL, _T_PUBLISH_SHORT)
    n = mv[pos] << 8 | mv[pos + 1]
    start = pos + 2
    payload = start + n + (2 if qos else 0)
    if payload > pos + rl:
        raise MQTTError(_ERR_PROTOCOL, _T_PUBLISH_PAST)
    why = topic_problem(mv, start, start + n)
    if why:
        raise MQTTError(_ERR_PROTOCOL, _T_PUBLISH_TOPIC, why)
    if qos and mv[payload - 2] == 0 and mv[payload - 1] == 0:
        raise MQTTError(_ERR_PROTOCOL, _T_PID_ZERO, _PUBLISH)
    return payload
