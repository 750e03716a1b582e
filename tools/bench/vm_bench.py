# The MicroPython side of tools/bench/vm.mjs: memory figures of one MQTT client inside
# the 32-bit MicroPython VM (npm @micropython/micropython-webassembly-pyscript 1.29).
#
# Every client talks to the same in-memory fake broker (FakeBroker below) through the
# transport it expects:
#   umqtt_paho    a port object (the contract of ports/cpython.py) whose Network() is a
#                 FakeLink: read_into(mv, n, ms) / write(buf, n, ms)
#   umqtt.simple  a fake `usocket` module in sys.modules: socket() is a FakeSocket with
#                 read(n) / write(buf, n) / setblocking / connect
#   MiniMQTT      a fake socket pool (socket_pool=): socket() is the same FakeSocket,
#                 used through recv_into(buf, n) / send(buf)
# The broker answers CONNECT, PUBLISH QoS 1/2, PUBREL, SUBSCRIBE, UNSUBSCRIBE and PINGREQ,
# and can inject a PUBLISH for the client to receive.
#
# Rule: the transport allocates nothing per packet (bytes move one at a time through
# preallocated bytearrays), so every byte measured belongs to the client. One exception,
# on purpose: FakeSocket.read(n) returns a new bytes object, as a real MicroPython socket
# does (stream read: 16-byte str object + n+1 bytes of data); it is built from a
# preallocated memoryview of the right length, so it costs exactly what the real one
# costs. measure_transport checks the transport (write a QoS 1 PUBLISH, read the PUBACK
# with read_into/recv_into): it must be 0 B.
#
# Why not the tests' fake broker (umqtt_paho.testing, which allocates nothing either with
# record = False): it is part of umqtt_paho. Loaded into this VM it would bring
# umqtt_paho, servercodec and errors.mpy with it, before `import umqtt_paho` is measured
# and into the sys.modules from which tools/bench.py reports what that import loads
# (errors.mpy is otherwise loaded only to word an error); and the peers' runs would carry
# it too. It also speaks only umqtt_paho's port contract, not the peers' sockets. The
# bench's broker stays a few lines of self-contained byte handling.
#
# How a figure is measured (DESIGN.md, "Facts about the MicroPython VM"): gc.collect()
# only runs when the outermost runPython() returns, so vm.mjs calls step(10), step(11),
# ... one runPython each (code strings of equal length, so their compiled code cancels
# out); a step reads gc.mem_alloc() first, right after the collection that ended the
# previous step. Retained RAM = the difference of two such readings; peak = allocated
# with the GC disabled while the work ran. Results go into the preallocated list _M
# (small ints: nothing allocated), and report() turns them into JSON at the end.

import gc
import sys

try:
    import errno

    _ETIMEDOUT = errno.ETIMEDOUT
except ImportError:  # pragma: no cover
    _ETIMEDOUT = 110

N = 1000  # iterations of each per-publish / per-message measurement
TOPIC = b"bench/vm/temperature"  # the bytes topic of every publish
STOPIC = "bench/vm/temperature"  # MiniMQTT takes only a str topic
PAYLOAD = b"x" * 64
IN_TOPIC = b"bench/in/temperature"  # what the broker publishes to the client
IN_FILTER = "bench/in/#"
_VIEWS = 300  # read(n) for n below this allocates only the bytes object

_M = [0] * 64  # measurement slots
_ERR = [None]  # the first exception of a step, as text


# ---- the fake broker and its transports -------------------------------------------------


class FakeBroker:
    def __init__(self, size=2048):
        self.pkt = bytearray(size)  # the packet being received from the client
        self.plen = 0  # bytes of it so far
        self.hs = 0  # its header size, once known
        self.need = -1  # its total size, once known
        self.q = bytearray(size)  # bytes waiting for the client to read
        self.qlen = 0
        mv = memoryview(self.q)
        self.views = [mv[0:n] for n in range(_VIEWS)]
        self.qmv = mv
        self.counts = [0] * 16  # packets received, per type
        self.inject_buf = bytearray(256)
        self.inject_len = [0, 0, 0]  # encoded length of the inbound PUBLISH per QoS
        self.inject_pkts = [bytearray(256), bytearray(256), bytearray(256)]
        self.in_pid = 0
        self.now = 0  # fake clock for the port (moves only when a read waits)

    # -- bytes from the client --
    def feed(self, buf, n):
        pkt = self.pkt
        cap = len(pkt)
        i = 0
        while i < n:
            b = buf[i]
            i += 1
            p = self.plen
            if p < cap:
                pkt[p] = b
            p += 1
            self.plen = p
            if self.need < 0 and p >= 2 and not b & 0x80:
                rl = 0
                mul = 1
                for k in range(1, p):
                    rl += (pkt[k] & 0x7F) * mul
                    mul *= 128
                self.hs = p
                self.need = p + rl
            if p == self.need:
                self._packet(p)
                self.plen = 0
                self.need = -1

    def _packet(self, p):
        pkt = self.pkt
        first = pkt[0]
        t = first >> 4
        hs = self.hs
        self.counts[t] += 1
        if t == 1:  # CONNECT -> CONNACK accepted
            self._put4(0x20, 0x02, 0, 0)
        elif t == 3:  # PUBLISH
            qos = (first >> 1) & 3
            if qos:
                tl = pkt[hs] << 8 | pkt[hs + 1]
                at = hs + 2 + tl
                self._put4(0x40 if qos == 1 else 0x50, 0x02, pkt[at], pkt[at + 1])
        elif t == 6:  # PUBREL -> PUBCOMP
            self._put4(0x70, 0x02, pkt[hs], pkt[hs + 1])
        elif t == 8:  # SUBSCRIBE -> SUBACK granting what was asked
            k = 0
            pos = hs + 2
            while pos < p:
                pos += 2 + (pkt[pos] << 8 | pkt[pos + 1]) + 1
                k += 1
            self._put(0x90)
            self._put(2 + k)
            self._put(pkt[hs])
            self._put(pkt[hs + 1])
            pos = hs + 2
            while pos < p:
                pos += 2 + (pkt[pos] << 8 | pkt[pos + 1])
                self._put(pkt[pos])
                pos += 1
        elif t == 10:  # UNSUBSCRIBE -> UNSUBACK
            self._put4(0xB0, 0x02, pkt[hs], pkt[hs + 1])
        elif t == 12:  # PINGREQ -> PINGRESP
            self._put(0xD0)
            self._put(0)
        # PUBACK, PUBREC, PUBCOMP, DISCONNECT from the client: nothing to answer

    def _put(self, b):
        self.q[self.qlen] = b
        self.qlen += 1

    def _put4(self, a, b, c, d):
        q = self.q
        n = self.qlen
        q[n] = a
        q[n + 1] = b
        q[n + 2] = c
        q[n + 3] = d
        self.qlen = n + 4

    def _consume(self, k):
        # Drop k bytes from the front of the queue (it always starts at 0).
        q = self.q
        rest = self.qlen - k
        for j in range(rest):
            q[j] = q[j + k]
        self.qlen = rest

    # -- a PUBLISH for the client to receive --
    def prepare_inbound(self, topic, payload, qos):
        # Encoded once, before any measurement; inject() copies it into the queue.
        buf = self.inject_pkts[qos]
        rl = 2 + len(topic) + (2 if qos else 0) + len(payload)
        buf[0] = 0x30 | qos << 1
        buf[1] = rl  # < 128 here
        buf[2] = len(topic) >> 8
        buf[3] = len(topic) & 0xFF
        n = 4
        for b in topic:
            buf[n] = b
            n += 1
        if qos:
            buf[n] = 0
            buf[n + 1] = 1
            n += 2
        for b in payload:
            buf[n] = b
            n += 1
        self.inject_len[qos] = n

    def inject(self, qos):
        src = self.inject_pkts[qos]
        n = self.inject_len[qos]
        q = self.q
        e = self.qlen
        for j in range(n):
            q[e + j] = src[j]
        if qos:  # a new packet id each time (1..30000)
            pid = self.in_pid % 30000 + 1
            self.in_pid = pid
            tl = src[2] << 8 | src[3]
            q[e + 4 + tl] = pid >> 8
            q[e + 5 + tl] = pid & 0xFF
        self.qlen = e + n


class FakeLink:
    """umqtt_paho's Network (port contract): read_into / write / open / close."""

    def __init__(self, broker):
        self.broker = broker

    def open(self, host, port, ssl_ctx, timeout_ms):
        self.broker.plen = 0
        self.broker.need = -1

    def read_into(self, mv, n, timeout_ms):
        br = self.broker
        avail = br.qlen
        if not avail:
            br.now += timeout_ms  # nothing: the wait passes on the fake clock
            return 0
        k = n if n < avail else avail
        q = br.q
        for j in range(k):
            mv[j] = q[j]
        br._consume(k)
        return k

    def write(self, buf, n, timeout_ms):
        self.broker.feed(buf, n)

    def close(self):
        pass


class FakePort:
    """A port object for umqtt_paho: fake clock, no threads, Network() = the FakeLink."""

    start_thread = None

    def __init__(self, broker, link):
        self.broker = broker
        self.link = link

    def ticks_ms(self):
        return self.broker.now

    def ticks_diff(self, a, b):
        return a - b

    def ticks_add(self, t, ms):
        return t + ms

    def sleep_ms(self, ms):
        self.broker.now += ms

    def thread_id(self):
        return 0

    class allocate_lock:  # noqa: N801  (no threads: `with` works, locks nothing)
        def __enter__(self):
            return self

        def __exit__(self, a, b, c):
            return False

    def Network(self):
        return self.link


class FakeSocket:
    """A socket for umqtt.simple (read/write) and MiniMQTT (recv_into/send)."""

    def __init__(self, broker):
        self.broker = broker

    def connect(self, addr, *mode):
        self.broker.plen = 0
        self.broker.need = -1

    def settimeout(self, t):
        pass

    def setblocking(self, flag):
        pass

    def close(self):
        pass

    # MicroPython stream API (umqtt.simple)
    def write(self, buf, n=-1):
        if n < 0:
            n = len(buf)
        self.broker.feed(buf, n)
        return n

    def read(self, n):
        # A new bytes object, as a real socket's read(n) returns (see the header).
        br = self.broker
        avail = br.qlen
        if not avail:
            return None  # non-blocking "nothing yet"
        k = n if n < avail else avail
        out = bytes(br.views[k]) if k < _VIEWS else bytes(br.qmv[0:k])
        br._consume(k)
        return out

    # CircuitPython socketpool API (MiniMQTT)
    def send(self, buf):
        n = len(buf)
        self.broker.feed(buf, n)
        return n

    def recv_into(self, buf, n=0):
        br = self.broker
        avail = br.qlen
        if not avail:
            raise OSError(_ETIMEDOUT)  # socketpool's "timed out, nothing read"
        if not n:
            n = len(buf)
        k = n if n < avail else avail
        q = br.q
        for j in range(k):
            buf[j] = q[j]
        br._consume(k)
        return k


class FakeSocketModule:
    """Stands in for `usocket` / `socket` (umqtt.simple) and for a socketpool (MiniMQTT)."""

    SOCK_STREAM = 1
    AF_INET = 2

    def __init__(self, sock):
        self.sock = sock
        self.ai = [(2, 1, 0, "", ("127.0.0.1", 1883))]

    def socket(self, *a):
        return self.sock

    def getaddrinfo(self, host, port, *a):
        return self.ai


class _Stub:
    # typing / circuitpython_typing.socket for adafruit_connection_manager, whose
    # `from typing import ...` runs on every interpreter but CircuitPython.
    List = Optional = Tuple = Type = Union = Dict = Any = Callable = None
    CircuitPythonSocketType = InterfaceType = SocketpoolModuleType = None
    SocketType = SSLContextType = None


# ---- the clients --------------------------------------------------------------------------

BROKER = FakeBroker()
LINK = FakeLink(BROKER)
PORT = FakePort(BROKER, LINK)
SOCK = FakeSocket(BROKER)
SOCKMOD = FakeSocketModule(SOCK)
_C = [None, None, None]  # [client class, client, extra]
_W = [None, None, None, None, None]  # work functions: pub0, pub1, recv0, recv1, recv views
_got = [0]


def _cb3(client, a, b):
    _got[0] += 1


def _cb2(a, b):
    _got[0] += 1


class Paho:
    name = "umqtt_paho"

    def prepare(self):
        pass

    def import_(self):
        import umqtt_paho

        _C[0] = umqtt_paho.Client

    def instance(self):
        c = _C[0]("bench", port=PORT)
        c.subscribe(IN_FILTER, _cb3, 1)  # registered now, SUBSCRIBE right after CONNACK
        c.connect("broker.vm", 60, start_loop=False)
        _C[1] = c

    def work(self):
        c = _C[1]
        publish = c.publish
        cycle = c.cycle
        topic = TOPIC
        payload = PAYLOAD
        inject = BROKER.inject

        def pub0():
            publish(topic, payload, 0)

        def pub1():
            publish(topic, payload, 1)

        def recv0():
            inject(0)
            cycle(0)

        def recv1():
            inject(1)
            cycle(0)

        return pub0, pub1, recv0, recv1

    def views(self, on):
        _C[1].deliver_views = on


class Simple:
    name = "umqtt.simple"

    def prepare(self):
        sys.modules["usocket"] = SOCKMOD
        sys.modules["socket"] = SOCKMOD

    def import_(self):
        from umqtt.simple import MQTTClient

        _C[0] = MQTTClient

    def instance(self):
        c = _C[0](b"bench", "broker.vm", 1883, keepalive=60)
        c.connect()
        c.set_callback(_cb2)
        c.subscribe(IN_FILTER.encode(), 1)
        _C[1] = c

    def work(self):
        c = _C[1]
        publish = c.publish
        wait_msg = c.wait_msg
        topic = TOPIC
        payload = PAYLOAD
        inject = BROKER.inject

        def pub0():
            publish(topic, payload, False, 0)

        def pub1():
            publish(topic, payload, False, 1)

        def recv0():
            inject(0)
            wait_msg()

        def recv1():
            inject(1)
            wait_msg()

        return pub0, pub1, recv0, recv1


class MiniMQTT:
    name = "MiniMQTT"

    def prepare(self):
        sys.modules["typing"] = _Stub()
        sys.modules["circuitpython_typing"] = _Stub()
        sys.modules["circuitpython_typing.socket"] = _Stub()

    def import_(self):
        from adafruit_minimqtt.adafruit_minimqtt import MQTT

        _C[0] = MQTT

    def instance(self):
        c = _C[0](
            broker="broker.vm",
            port=1883,
            client_id="bench",
            socket_pool=SOCKMOD,
            use_binary_mode=True,
            connect_retries=1,
        )
        c.on_message = _cb3
        c.connect()
        c.subscribe(IN_FILTER, 1)
        _C[1] = c

    def work(self):
        c = _C[1]
        publish = c.publish
        wait = c._wait_for_msg  # what loop() runs once per packet (loop() polls on a clock)
        topic = STOPIC
        payload = PAYLOAD
        inject = BROKER.inject

        def pub0():
            publish(topic, payload, False, 0)

        def pub1():
            publish(topic, payload, False, 1)

        def recv0():
            inject(0)
            wait()

        def recv1():
            inject(1)
            wait()

        return pub0, pub1, recv0, recv1


CLIENTS = {"umqtt_paho": Paho, "umqtt.simple": Simple, "MiniMQTT": MiniMQTT}
_ADAPTER = [None]


# ---- the steps (one runPython each) -----------------------------------------------------

# slots of _M
_H0 = 0  # harness: mem_alloc after a collection
_H1 = 1  # ... and after the next one, nothing done in between
_IMP_A = 2  # before the import
_IMP_PEAK = 3  # right after it (GC off)
_IMP_C = 4  # after the import and a collection
_INST_PEAK = 5
_INST_E = 6  # after construct + connect and a collection
_TRANSPORT = 7  # bytes per iteration * N of the transport self-check
# per-iteration figures: (harness, work) pairs from _P0
_P0 = 8  # pub0 harness, pub0 work, pub1..., recv0..., recv1..., recv0 views, recv1 views
_NAMES = ("publish_qos0", "publish_qos1", "receive_qos0", "receive_qos1",
          "receive_qos0_views", "receive_qos1_views")  # fmt: skip
_STEPS = 19  # step(10) .. step(10 + _STEPS - 1)


def init(name):
    """Before any step: choose the client, create the fakes' stand-ins in sys.modules."""
    a = CLIENTS[name]()
    _ADAPTER[0] = a
    a.prepare()
    BROKER.prepare_inbound(IN_TOPIC, PAYLOAD, 0)
    BROKER.prepare_inbound(IN_TOPIC, PAYLOAD, 1)
    gc.collect()
    return _STEPS


def _nothing():
    pass


def _loop(fn, n):
    for _ in range(n):
        fn()


def _measure(slot, fn):
    gc.disable()
    a = gc.mem_alloc()
    _loop(_nothing, N)
    b = gc.mem_alloc()
    _loop(fn, N)
    c = gc.mem_alloc()
    gc.enable()
    _M[slot] = b - a
    _M[slot + 1] = c - b


def _transport_work():
    # A whole QoS 1 PUBLISH into the broker, its PUBACK back through read_into and
    # recv_into: what the fakes themselves cost per publish (must be 0).
    pkt = _TP[0]
    LINK.write(pkt, _TP[1], 1000)
    LINK.read_into(_TP[2], 4, 0)
    SOCK.send(pkt)
    SOCK.recv_into(_TP[2], 4)


_TP = [bytearray(b"\x32\x18\x00\x04abcd\x00\x07" + b"y" * 16), 26, bytearray(8)]


def step(i):
    try:
        _step(i)
    except BaseException as e:  # noqa: B036
        gc.enable()
        if _ERR[0] is None:
            import io

            s = io.StringIO()
            sys.print_exception(e, s)
            _ERR[0] = "step %d: %s" % (i, s.getvalue())


def _step(i):
    a = _ADAPTER[0]
    if _ERR[0] is not None:
        return
    if i == 10:
        gc.collect()
    elif i == 11:
        _M[_H0] = gc.mem_alloc()
        gc.collect()
    elif i == 12:
        _M[_H1] = gc.mem_alloc()
        gc.collect()
    elif i == 13:  # import
        _M[_IMP_A] = gc.mem_alloc()
        gc.disable()
        a.import_()
        _M[_IMP_PEAK] = gc.mem_alloc()
        gc.enable()
        gc.collect()
    elif i == 14:  # construct + connect
        _M[_IMP_C] = gc.mem_alloc()
        gc.disable()
        a.instance()
        _M[_INST_PEAK] = gc.mem_alloc()
        gc.enable()
        gc.collect()
    elif i == 15:
        _M[_INST_E] = gc.mem_alloc()
        w = a.work()
        for k in range(4):
            _W[k] = w[k]
        for _ in range(10):
            _transport_work()
        gc.collect()
    elif i == 16:
        gc.disable()
        x = gc.mem_alloc()
        _loop(_transport_work, N)
        _M[_TRANSPORT] = gc.mem_alloc() - x
        gc.enable()
        gc.collect()
    elif 17 <= i <= 28:
        # pairs of steps: warm up one work function (the client's caches settle on
        # this very packet shape), then measure it
        k = (i - 17) // 2  # 0 pub0, 1 pub1, 2 recv0, 3 recv1, 4 recv0 views, 5 recv1 views
        if k >= 4:
            if not hasattr(a, "views"):
                return
            a.views(True)  # umqtt_paho: topic and payload as memoryviews, no copies
        fn = _W[k - 2 if k >= 4 else k]
        if (i - 17) % 2 == 0:
            for _ in range(10):
                fn()
        else:
            _measure(_P0 + 2 * k, fn)
        gc.collect()


def report():
    """JSON of every figure (called once, after the last step)."""
    import json

    a = _ADAPTER[0]
    per = {}
    for k, name in enumerate(_NAMES):
        if k >= 4 and not hasattr(a, "views"):
            continue
        h = _M[_P0 + 2 * k]
        w = _M[_P0 + 2 * k + 1]
        per[name] = w / N
        per[name + "_harness"] = h
    return json.dumps(
        {
            "client": a.name,
            "ok": _ERR[0] is None,
            "error": _ERR[0],
            "implementation": "%s %s %s"
            % (
                sys.implementation.name,
                ".".join([str(x) for x in sys.implementation.version[:3]]),
                sys.platform,
            ),
            "harness_retained": _M[_H1] - _M[_H0],
            "import_retained": _M[_IMP_C] - _M[_IMP_A],
            "import_peak": _M[_IMP_PEAK] - _M[_IMP_A],
            "instance_retained": _M[_INST_E] - _M[_IMP_C],
            "instance_peak": _M[_INST_PEAK] - _M[_IMP_C],
            "transport_per_iteration": _M[_TRANSPORT] / N,
            "iterations": N,
            "per_iteration": per,
            "got": _got[0],
            "broker_counts": BROKER.counts,
            "modules": sorted(
                [
                    "%s=%s" % (k, getattr(m, "__file__", "?"))
                    for k, m in sys.modules.items()
                    if hasattr(m, "__file__")
                ]
            ),
        }
    )
