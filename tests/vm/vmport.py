# An in-memory port for the MicroPython VM tests: a fake clock, no threads, and a
# Network whose other end is a small MQTT broker written in Python that speaks the real
# protocol (framing with umqtt_paho.packet, decoding with umqtt_paho/servercodec.py).
#
# The port contract is that of ports/cpython.py (Network().open/read_into/write/close,
# ticks_ms/ticks_diff/ticks_add/sleep_ms, thread_id, start_thread = None). It runs on
# MicroPython and on CPython alike: no threads, no sockets, no f-strings.
#
# The broker:
# - answers CONNECT with CONNACK (connack_rc, session_present), SUBSCRIBE with SUBACK
#   (grant: None = what was asked, an int = that code for every filter, "silent" = no
#   SUBACK), UNSUBSCRIBE with UNSUBACK, PINGREQ with PINGRESP (unless pingresp is False);
# - takes the client's PUBLISH at QoS 1 (PUBACK) and QoS 2 (PUBREC, then PUBCOMP for
#   the PUBREL), and forwards it to the client if one of its subscriptions matches, at
#   the lower of the two QoS, as a broker does;
# - settings a test may change: connack_rc, session_present, grant, puback, pubrec,
#   pubcomp, pubrel, pingresp;
# - publish(topic, payload, qos) sends the client a message and runs the QoS 1/2 flow
#   from the broker's side (waits for PUBACK / PUBREC, sends PUBREL, waits PUBCOMP);
# - inject(data) puts raw bytes (garbage, partial packets) on the wire;
# - records every packet it received as (type, decoded value) in `received`, every
#   packet it sent as (type, bytes) in `sent`, and anything the client got wrong in
#   `errors` (a test asserts errors == []).
#
# Allocation: with record = False the broker neither decodes nor records a PUBLISH or a
# PUBREL (it counts them in counts[type] and acks them from a preallocated buffer; no
# forwarding, no duplicate check), and bytes move between the two ends through
# preallocated buffers one byte at a time, so the transport allocates nothing per packet.
# That lets tests/vm/test_vm_alloc.py charge every byte allocated to the library.

try:
    import errno

    _ECONNRESET = errno.ECONNRESET
    _EBADF = errno.EBADF
except ImportError:  # pragma: no cover
    _ECONNRESET = 104
    _EBADF = 9

from umqtt_paho import servercodec as pk
from umqtt_paho.topic import matches
from umqtt_paho import servercodec


class Link:
    """One connection, seen from the client: the Network object of the port contract."""

    def __init__(self, port, size):
        self.port = port
        self.broker = port.broker
        self.tx = bytearray(size)  # broker -> client bytes not yet read
        self.tx_start = 0
        self.tx_end = 0
        self.open_args = None
        self.closed = False
        self.eof = False  # once tx is drained, reads raise: the broker closed
        self.chunk = 0  # > 0: at most this many bytes per read_into (partial reads)
        self.writes = 0  # write() calls
        self.written = []  # bytes of each write() call, while the broker records

    # -- the port contract --

    def open(self, host, port, ssl_ctx, timeout_ms):
        self.open_args = (host, port, ssl_ctx, timeout_ms)
        if self.port.open_error is not None:
            raise self.port.open_error
        self.broker.attach(self)

    def read_into(self, mv, n, timeout_ms):
        if self.closed:
            raise OSError(_EBADF, "read on a closed link")
        avail = self.tx_end - self.tx_start
        if avail:
            k = n if n < avail else avail
            if self.chunk and k > self.chunk:
                k = self.chunk
            tx = self.tx
            s = self.tx_start
            for i in range(k):
                mv[i] = tx[s + i]
            s += k
            if s == self.tx_end:
                self.tx_start = self.tx_end = 0
            else:
                self.tx_start = s
            return k
        if self.eof:
            raise OSError(_ECONNRESET, "connection closed by the broker")
        # Nothing to read: the wait passes on the fake clock.
        self.port.advance(timeout_ms)
        return 0

    def write(self, buf, n, timeout_ms):
        if self.closed:
            raise OSError(_EBADF, "write on a closed link")
        self.writes += 1
        if self.broker.record:
            self.written.append(bytes(buf[:n]))
        self.broker.feed(buf, n)

    def close(self):
        self.closed = True

    # -- the broker's end --

    def push(self, data, n):
        # Queue n bytes of data for the client to read.
        if self.tx_start and self.tx_end + n > len(self.tx):
            # compact (rare: only when the client lags behind)
            tx = self.tx
            s = self.tx_start
            m = self.tx_end - s
            for i in range(m):
                tx[i] = tx[s + i]
            self.tx_start = 0
            self.tx_end = m
        if self.tx_end + n > len(self.tx):
            raise OSError(_ECONNRESET, "vmport: the client does not read (tx buffer full)")
        tx = self.tx
        e = self.tx_end
        for i in range(n):
            tx[e + i] = data[i]
        self.tx_end = e + n


class Broker:
    def __init__(self, size=4096):
        self.connack_rc = 0
        self.session_present = 0
        self.grant = None  # SUBACK code: None = the requested QoS; or 0x80, or "silent"
        self.puback = True  # answer QoS 1 PUBLISH with PUBACK
        self.pubrec = True  # answer QoS 2 PUBLISH with PUBREC
        self.pubcomp = True  # answer PUBREL with PUBCOMP
        self.pubrel = True  # answer the client's PUBREC with PUBREL
        self.pingresp = True
        self.record = True
        self.received = []  # (type, servercodec.decode_packet value)
        self.sent = []  # (type, bytes)
        self.errors = []  # protocol errors of the client, as text
        self.counts = [0] * 16  # packets received, per type
        self.subscriptions = []  # [filter bytes, qos]
        self.out_pid = 0
        self.out_state = {}  # pid -> "PUBACK" | "PUBREC" | "PUBCOMP": what we wait for
        self.in_qos2 = []  # client's QoS 2 packet ids awaiting PUBREL
        self.link = None
        self.connected = False
        self._size = size
        self._rx = bytearray(size)
        self._rx_len = 0
        self._pkt = bytearray(size)  # a packet the broker sends

    def attach(self, link):
        # A new TCP connection: no CONNECT seen yet.
        self.link = link
        self.connected = False
        self._rx_len = 0

    # ---- receiving ----

    def feed(self, buf, n):
        rx = self._rx
        have = self._rx_len
        if have + n > len(rx):
            self.errors.append("packet larger than the broker's %d-byte buffer" % len(rx))
            raise OSError(_ECONNRESET, "vmport broker: buffer overflow")
        for i in range(n):
            rx[have + i] = buf[i]
        have += n
        start = 0
        while start < have:
            hs = pk.header_size(rx, start, have)
            if hs < 0:
                break
            rl = pk.remaining_length(rx, start + 1, have)
            if start + hs + rl > have:
                break
            self._packet(rx[start], start + hs, rl)
            start += hs + rl
        if start:
            for i in range(have - start):
                rx[i] = rx[start + i]
            have -= start
        self._rx_len = have

    def _packet(self, first, pos, rl):
        t = first >> 4
        self.counts[t] += 1
        if not self.record and self._quiet(first, t, pos):
            return
        try:
            t, value = servercodec.decode_packet(first, self._rx, pos, rl)
        except Exception as e:
            self.errors.append("malformed packet from the client: %r" % (e,))
            raise
        self.received.append((t, value))
        if not self.connected and t != pk.CONNECT:
            self.errors.append("first packet is not CONNECT [MQTT-3.1.0-1]")
        if t == pk.CONNECT:
            if self.connected:
                self.errors.append("second CONNECT [MQTT-3.1.0-2]")
            if value.get("clean_session", True):
                self.subscriptions = []
                self.in_qos2 = []
            self.connected = self.connack_rc == 0
            self._send_connack()
        elif t == pk.PUBLISH:
            self._on_publish(value)
        elif t == pk.PUBREL:
            if value in self.in_qos2:
                self.in_qos2.remove(value)
            if self.pubcomp:
                self._send_ack(pk.PUBCOMP, value)
        elif t == pk.PUBACK:
            self._outbound_ack(value, "PUBACK", None)
        elif t == pk.PUBREC:
            self._outbound_ack(value, "PUBREC", "PUBCOMP")
            if self.pubrel:
                self._send_ack(pk.PUBREL, value)
        elif t == pk.PUBCOMP:
            self._outbound_ack(value, "PUBCOMP", None)
        elif t == pk.SUBSCRIBE:
            self._on_subscribe(value)
        elif t == pk.UNSUBSCRIBE:
            self._on_unsubscribe(value)
        elif t == pk.PINGREQ:
            if self.pingresp:
                self._send(bytes((pk.PINGRESP << 4, 0)))
        elif t == pk.DISCONNECT:
            self.connected = False
        else:
            self.errors.append("a client must not send %s" % pk.type_name(t))

    def _quiet(self, first, t, pos):
        # While measuring (record False): answer PUBLISH and PUBREL without decoding or
        # recording anything, so the broker allocates nothing. True if handled.
        rx = self._rx
        if t == pk.PUBLISH:
            qos = (first >> 1) & 3
            if qos:
                tl = rx[pos] << 8 | rx[pos + 1]
                pid = rx[pos + 2 + tl] << 8 | rx[pos + 3 + tl]
                if qos == 1 and self.puback:
                    self._send_ack(pk.PUBACK, pid)
                elif qos == 2 and self.pubrec:
                    self._send_ack(pk.PUBREC, pid)
            return True
        if t == pk.PUBREL:
            if self.pubcomp:
                self._send_ack(pk.PUBCOMP, rx[pos] << 8 | rx[pos + 1])
            return True
        if t == pk.PUBACK:
            return True  # the client acked a message we sent: nothing to answer
        return False

    def _on_publish(self, msg):
        qos = msg["qos"]
        pid = msg["pid"]
        if qos == 1:
            if self.puback:
                self._send_ack(pk.PUBACK, pid)
        elif qos == 2:
            first_time = pid not in self.in_qos2
            if first_time:
                self.in_qos2.append(pid)
            if self.pubrec:
                self._send_ack(pk.PUBREC, pid)
            if not first_time:
                return  # a DUP of a message we have: not forwarded again
        # Forward to the client's matching subscriptions (the highest QoS granted).
        best = -1
        topic = msg["topic"]
        for f, q in self.subscriptions:
            if matches(f, topic, 0, len(topic)) and q > best:
                best = q
        if best >= 0:
            self.publish(topic, msg["payload"], min(qos, best), msg["retain"])

    def _on_subscribe(self, value):
        pid, filters = value
        codes = []
        for f, q in filters:
            code = q if self.grant is None else self.grant
            if code != 0x80 and code != "silent":
                self.subscriptions = [s for s in self.subscriptions if s[0] != f]
                self.subscriptions.append([f, code])
            codes.append(code)
        if self.grant == "silent":
            return
        n = servercodec.encode_suback(self._pkt, pid, codes)
        self._send(bytes(self._pkt[:n]))

    def _on_unsubscribe(self, value):
        # (Not inline in _packet: a comprehension there would make its variables cells,
        # allocated on every call of _packet, and the QoS 0 path must allocate nothing.)
        pid, filters = value
        self.subscriptions = [s for s in self.subscriptions if s[0] not in filters]
        self._send_ack(pk.UNSUBACK, pid)

    def _outbound_ack(self, pid, got, then):
        want = self.out_state.get(pid)
        if want != got:
            self.errors.append("%s for packet id %d, which waits for %s" % (got, pid, want))
            return
        if then is None:
            del self.out_state[pid]
        else:
            self.out_state[pid] = then

    # ---- sending ----

    def _send(self, data):
        if self.record:
            self.sent.append((data[0] >> 4, data))
        self.link.push(data, len(data))

    def _send_connack(self):
        n = servercodec.encode_connack(
            self._pkt, self.session_present and not self.connack_rc, self.connack_rc
        )
        self._send(bytes(self._pkt[:n]))

    def _send_ack(self, t, pid):
        n = pk.encode_ack(self._pkt, t, pid)
        if self.record:
            self._send(bytes(self._pkt[:n]))
        else:
            self.link.push(self._pkt, n)

    def publish(self, topic, payload, qos=0, retain=False, dup=False, pid=None):
        """Send the client a PUBLISH; returns its packet id (0 at QoS 0)."""
        if isinstance(topic, str):
            topic = topic.encode()
        if isinstance(payload, str):
            payload = payload.encode()
        if qos and pid is None:
            self.out_pid = self.out_pid % 65535 + 1
            pid = self.out_pid
        elif not qos:
            pid = 0
        n = servercodec.encode_publish_message(self._pkt, topic, payload, qos, retain, dup, pid)
        if qos:
            self.out_state[pid] = "PUBACK" if qos == 1 else "PUBREC"
        self._send(bytes(self._pkt[:n]))
        return pid

    def release(self, pid):
        """PUBREL for a message the client has acknowledged with PUBREC."""
        self._send_ack(pk.PUBREL, pid)

    def inject(self, data):
        """Raw bytes to the client, as they are (garbage, partial packets)."""
        self._send(bytes(data))

    def types_received(self):
        return [t for t, _ in self.received]

    def types_sent(self):
        return [t for t, _ in self.sent]


class VMPort:
    """A port object (the names of ports/cpython.py) with a fake clock and no threads."""

    start_thread = None

    def __init__(self, broker=None, size=4096):
        self.now = 0
        self.broker = broker if broker is not None else Broker(size)
        self.size = size
        self.links = []
        self.open_error = None

    # clock: a plain int of milliseconds, moved only by waits
    def advance(self, ms):
        if ms > 0:
            self.now += ms

    def ticks_ms(self):
        return self.now

    def ticks_diff(self, a, b):
        return a - b

    def ticks_add(self, t, ms):
        return t + ms

    def sleep_ms(self, ms):
        self.advance(ms)

    # threads: none
    def thread_id(self):
        return 0

    def allocate_lock(self):
        raise AssertionError("no locks on a port without threads")

    # network
    def Network(self):
        link = Link(self, self.size)
        self.links.append(link)
        return link

    @property
    def link(self):
        return self.links[-1]


def connected_client(keepalive=0, client_id="vm1", port=None, **kw):
    """A Client on a VMPort, connected without a loop thread, and its port."""
    from umqtt_paho import Client

    if port is None:
        port = VMPort()
    c = Client(client_id, port=port, **kw)
    c.connect("broker.vm", keepalive, start_loop=False)
    return c, port
