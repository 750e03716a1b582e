"""A scripted fake network and fake clock behind the port contract (ports/cpython.py).

Used for client unit tests and fault injection: the test decides every byte the
"broker" sends, sees every byte (and every write call) the client makes, and controls
time, so waits and timeouts are checked exactly and instantly. Real-broker proof lives
in test_live.py; this is the layer that can say "PINGREQ at exactly 5,000 ms".
"""

import errno

from umqtt_paho import servercodec as pk


class FakeClock:
    def __init__(self):
        self.now = 0

    def advance(self, ms):
        if ms > 0:
            self.now += ms


class ScriptedBroker:
    """Answers the client's packets as a well-behaved broker would, unless told not to.

    Settings a test may change: connack_rc, session_present, auto_connack, auto_puback,
    auto_pubrec, auto_pubcomp, auto_suback (None: silent, else the granted code or
    0x80), auto_unsuback, auto_pingresp. `received` lists (first byte, body bytes) of
    every complete packet the client sent.
    """

    def __init__(self):
        self.connack_rc = 0
        self.session_present = 0
        self.auto_connack = True
        self.auto_puback = True
        self.auto_pubrec = True
        self.auto_pubcomp = True
        self.auto_suback = "qos"  # grant what was asked
        self.auto_unsuback = True
        self.auto_pingresp = True
        self.received = []
        self._pending = b""
        self.net = None

    def send(self, data):
        self.net.inbound += data

    def feed(self, data):
        self._pending += bytes(data)
        while True:
            mv = memoryview(self._pending)
            hs = pk.header_size(mv, 0, len(mv)) if len(mv) else -1
            if hs < 0:
                return
            rl = pk.remaining_length(mv, 1, len(mv))
            if hs + rl > len(mv):
                return
            first = mv[0]
            body = bytes(mv[hs : hs + rl])
            self._pending = bytes(mv[hs + rl :])
            self.received.append((first, body))
            self.on_packet(first, body)

    def on_packet(self, first, body):
        t = first >> 4
        if t == pk.CONNECT and self.auto_connack:
            self.send(bytes([0x20, 2, self.session_present, self.connack_rc]))
        elif t == pk.PUBLISH:
            qos = (first >> 1) & 3
            tl = body[0] << 8 | body[1]
            pid = body[2 + tl : 4 + tl]
            if qos == 1 and self.auto_puback:
                self.send(b"\x40\x02" + pid)
            elif qos == 2 and self.auto_pubrec:
                self.send(b"\x50\x02" + pid)
        elif t == pk.PUBREL and self.auto_pubcomp:
            self.send(b"\x70\x02" + body[:2])
        elif t == pk.SUBSCRIBE and self.auto_suback is not None:
            qos = body[-1]
            code = qos if self.auto_suback == "qos" else self.auto_suback
            self.send(b"\x90\x03" + body[:2] + bytes([code]))
        elif t == pk.UNSUBSCRIBE and self.auto_unsuback:
            self.send(b"\xb0\x02" + body[:2])
        elif t == pk.PINGREQ and self.auto_pingresp:
            self.send(b"\xd0\x00")

    def types_received(self):
        return [first >> 4 for first, _ in self.received]


class FakeNetwork:
    """One scripted connection. read_into waits by advancing the fake clock."""

    def __init__(self, port):
        self.port = port
        self.clock = port.clock
        self.broker = port.broker
        self.broker.net = self
        self.inbound = bytearray()
        self.writes = []  # each write() call's bytes
        self.open_args = None
        self.closed = False
        self.eof = False  # after inbound is drained, reads raise (peer closed)
        self.chunk = None  # max bytes per read_into (to test partial reads)
        self.stall_reads = False  # reads see nothing even if inbound has data

    def open(self, host, port, ssl_ctx, timeout_ms):
        self.open_args = (host, port, ssl_ctx, timeout_ms)
        if self.port.open_error is not None:
            self.clock.advance(self.port.open_delay)
            raise self.port.open_error

    def read_into(self, buf, n, timeout_ms):
        if self.closed:
            raise OSError(errno.EBADF, "closed")
        if self.inbound and not self.stall_reads:
            k = min(n, len(self.inbound))
            if self.chunk:
                k = min(k, self.chunk)
            buf[:k] = self.inbound[:k]
            del self.inbound[:k]
            return k
        if self.eof:
            raise OSError(errno.ECONNRESET, "connection closed by the broker")
        self.clock.advance(max(timeout_ms, 0))
        return 0

    def write(self, buf, n, timeout_ms):
        if self.closed:
            raise OSError(errno.EBADF, "closed")
        if self.port.write_error is not None:
            raise self.port.write_error
        data = bytes(memoryview(buf)[:n])
        self.writes.append(data)
        self.broker.feed(data)

    def close(self):
        self.closed = True

    def written(self):
        return b"".join(self.writes)


class FakePort:
    """A port object (same names as ports/cpython.py) with no threads."""

    start_thread = None

    def __init__(self):
        self.clock = FakeClock()
        self.broker = ScriptedBroker()
        self.networks = []
        self.open_error = None
        self.open_delay = 0
        self.write_error = None

    # clock
    def ticks_ms(self):
        return self.clock.now

    def ticks_diff(self, a, b):
        return a - b

    def ticks_add(self, t, ms):
        return t + ms

    def sleep_ms(self, ms):
        self.clock.advance(ms)

    # threads (none)
    def allocate_lock(self):
        raise AssertionError("no locks on a port without threads")

    def thread_id(self):
        return 0

    # network
    def Network(self):
        net = FakeNetwork(self)
        self.networks.append(net)
        return net

    @property
    def net(self):
        return self.networks[-1]


def connected_client(port=None, keepalive=0, **kw):
    """A Client on a FakePort, connected (start_loop=False), with its port."""
    from umqtt_paho import Client

    port = port or FakePort()
    client_id = kw.pop("client_id", "c1")
    c = Client(client_id, port=port, **kw)
    c.connect("broker.test", keepalive, start_loop=False)
    return c, port
