# A packet larger than the client's receive buffer (max_packet_size): read through the
# buffer and dropped, never allocated. Loaded by the reader (reader.py) the first time
# one arrives: a board whose messages fit never loads this code.
#
# A PUBLISH is still acked per its QoS, so that the broker does not send it forever (a
# QoS 2 id is remembered like any other [MQTT-4.3.3-2]); anything else that large is a
# protocol error.

try:
    from micropython import const
except ImportError:  # CPython: the host port runs the same file
    const = int  # a function here would cost RAM on the board too

from .packet import MQTTError

_LOG_WARNING = const(4)
_PUBLISH = const(3)
_PUBACK = const(4)
_PUBREC = const(5)
_ERR_PROTOCOL = const(2)
_T_OVERSIZE = const(19)
_T_DROPPED = const(37)


def drop(c, first, rl, deadline):
    """Client c has read the fixed header (first byte, remaining length rl) of a packet
    larger than its receive buffer: read the rest within deadline and drop it. Returns
    0 (nothing to handle), or raises."""
    mv = c._rmv
    size = len(mv)
    pid = 0
    left = rl
    while left > 0:
        n = size if left > size else left
        c._read_exact(mv, n, deadline)
        if left == rl:  # the first piece holds the topic and packet id
            tl = mv[0] << 8 | mv[1]
            if tl + 4 <= size:
                pid = mv[2 + tl] << 8 | mv[3 + tl]
        left -= n
    c._last_recv = c._port.ticks_ms()
    if first >> 4 != _PUBLISH:
        raise MQTTError(_ERR_PROTOCOL, _T_OVERSIZE, first >> 4, rl)
    c.oversize_dropped += 1
    c._log(_LOG_WARNING, _T_DROPPED, rl, size)
    qos = first >> 1 & 3
    if pid and qos:
        if qos == 2:
            c.session.remember_in(pid)
        c._send_ack(_PUBACK if qos == 1 else _PUBREC, pid)
    return 0
