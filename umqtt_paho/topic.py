# Topic names, topic filters and wildcard matching [MQTT-4.7].
#
# Everything here works on bytes-like objects with explicit start/end offsets, so the
# client can check and match a topic that sits inside its receive buffer without copying
# it. The checks return None or a small reason number (errors.py words it), and the caller
# raises the error that fits whose fault it is: ValueError for our caller, MQTTError for
# the broker.

try:
    from micropython import const
except ImportError:  # CPython: the host port runs the same file
    const = int  # a function here would cost RAM on the board too

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
