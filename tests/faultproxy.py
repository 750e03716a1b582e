"""A loopback TCP proxy that injects network faults between a client and a broker.

    with FaultProxy(broker.port, seed=7, plan=FaultPlan(cut_bytes=(800, 4000))) as proxy:
        client.connect("127.0.0.1", 5, port=proxy.port)

It listens on a free 127.0.0.1 port; every accepted connection gets its own connection
to the target and two pump threads, one per direction ("up": client -> broker, "down":
broker -> client). Faults:

- random, from a schedule drawn from random.Random(seed) (FaultPlan), while armed:
    cut       the connection (both sides) once a random number of bytes (cut_bytes,
              counted over both directions) has passed: the last unit is forwarded only
              up to that byte, so the cut usually lands mid-packet;
    truncate  forward a random part of a unit, then cut;
    garbage   send random bytes to the client instead of the next unit, then cut;
    stall     stop forwarding one direction for a while (stall_ms);
    delay     hold one unit back a little (delay_ms).
- scripted, for tests that need a fault at an exact point: cut_when(direction, type)
  cuts when a packet of that MQTT type passes (before or after forwarding it); stall()
  and resume() pause and restart forwarding of the current connections; cut() cuts them.
- outage: start_outage() (optionally cutting the current connections) makes the proxy
  end every new connection at once, before it reaches the broker, until end_outage():
  the broker looks unreachable (a dead uplink, a WiFi gone). mode "rst" resets the
  connection (the client sees ECONNRESET), mode "close" closes it (EOF).

With mqtt=True (default) the proxy frames the byte stream into MQTT packets, and a
"unit" is one whole packet: garbage then always starts where a packet would (bytes in
the middle of a packet would be data corruption, which TCP and TLS rule out and MQTT
cannot detect), and rules can match packet types. With mqtt=False (TLS, or any other
protocol) a unit is whatever one recv() returned.

Every fault injected is counted by kind in .events (a Counter); .cuts counts the
connections the proxy ended. Everything is bounded: every socket has a timeout, every
wait is sliced, and close() (or leaving the with block) stops and joins every thread.
"""

import random
import select
import socket
import struct
import threading
import time
from collections import Counter

UP = "up"  # client -> broker
DOWN = "down"  # broker -> client
BOTH = "both"

# Fault kinds that end a connection
CUT_KINDS = ("cut", "truncate", "garbage", "rule_cut", "manual_cut")

_SLICE = 0.05  # s: how long any wait sleeps before looking at the stop flags again
_SEND_TIMEOUT = 5.0  # s: a peer that does not read for this long is cut


class FaultPlan:
    """The random fault schedule's parameters.

    cut_bytes: (lo, hi) bytes after which each connection is cut, drawn per connection;
        None: no byte-budget cuts.
    p_truncate, p_garbage, p_stall, p_delay: probability per forwarded unit.
    stall_ms, delay_ms, garbage_len: (lo, hi) ranges, drawn uniformly.
    directions: where truncate, stall and delay may strike (garbage goes only down).
    """

    def __init__(
        self,
        cut_bytes=None,
        p_truncate=0.0,
        p_garbage=0.0,
        p_stall=0.0,
        p_delay=0.0,
        stall_ms=(100, 500),
        delay_ms=(1, 20),
        garbage_len=(1, 48),
        directions=(UP, DOWN),
    ):
        self.cut_bytes = cut_bytes
        self.p_truncate = p_truncate
        self.p_garbage = p_garbage
        self.p_stall = p_stall
        self.p_delay = p_delay
        self.stall_ms = stall_ms
        self.delay_ms = delay_ms
        self.garbage_len = garbage_len
        self.directions = directions


class _Framer:
    """Splits a byte stream into MQTT packets (fixed header + remaining length).

    Falls back to raw chunks for good if the stream is not MQTT."""

    def __init__(self):
        self.buf = bytearray()
        self.raw = False

    def feed(self, data):
        if self.raw:
            return [bytes(data)]
        self.buf += data
        out = []
        while True:
            n = self._length()
            if n < 0:
                if n == -2:  # malformed remaining length: not MQTT, stop framing
                    self.raw = True
                    out.append(bytes(self.buf))
                    self.buf = bytearray()
                return out
            if n > len(self.buf):
                return out
            out.append(bytes(self.buf[:n]))
            del self.buf[:n]

    def _length(self):
        b = self.buf
        rl = 0
        shift = 0
        i = 1
        while True:
            if i >= len(b):
                return -1  # header incomplete
            d = b[i]
            rl |= (d & 0x7F) << shift
            i += 1
            if not d & 0x80:
                return i + rl
            shift += 7
            if i > 4:
                return -2


class _Rule:
    def __init__(self, direction, ptype, action, times):
        self.direction = direction
        self.ptype = ptype
        self.action = action  # "cut_before": not forwarded; "cut_after": forwarded
        self.times = times
        self.fired = 0


class _Conn:
    def __init__(self, proxy, client, server, index, seed, budget):
        self.proxy = proxy
        self.client = client
        self.server = server
        self.index = index
        self.lock = threading.Lock()
        self.closed = False
        self.ended_by = None  # fault kind that ended it, "eof" for a natural close
        self.count = 0  # bytes forwarded, both directions
        self.budget = budget  # cut when count reaches it (None: never)
        self.paused = {UP: threading.Event(), DOWN: threading.Event()}
        self.wake = threading.Event()
        base = random.Random(seed)
        self.rng = {
            UP: random.Random(base.getrandbits(64)),
            DOWN: random.Random(base.getrandbits(64)),
        }

    def end(self, kind):
        with self.lock:
            if self.closed:
                return False
            self.closed = True
            self.ended_by = kind
        for s in (self.client, self.server):
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in send or select
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        self.wake.set()
        return True


class FaultProxy:
    """See the module docstring. .port is the port to connect to (after start())."""

    def __init__(
        self,
        target_port,
        target_host="127.0.0.1",
        seed=0,
        plan=None,
        mqtt=True,
        armed=True,
        record=False,
        name="proxy",
    ):
        self.target = (target_host, target_port)
        self.seed = seed
        self.plan = plan
        self.mqtt = mqtt
        self.armed = armed
        self.record = record  # keep (direction, unit) of everything forwarded
        self.name = name
        self.port = None
        self.events = Counter()
        self.log = []  # (monotonic time, kind, direction, connection index)
        self.forwarded = []  # (direction, unit bytes, connection index) if record
        self.connections = 0
        self.leaked_threads = []
        self._rng = random.Random(seed)  # master: one seed per accepted connection
        self._lock = threading.Lock()
        self._conns = []
        self._rules = []
        self._threads = []
        self._stop = threading.Event()
        self._listener = None
        self._outage = None  # None, or how new connections end: "rst" / "close"

    # ---- lifecycle -------------------------------------------------------------------

    def start(self):
        if self._listener is not None:
            return self
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", 0))
        ls.listen(16)
        ls.settimeout(_SLICE)
        self._listener = ls
        self.port = ls.getsockname()[1]
        self._spawn(self._accept_loop, (), "accept")
        return self

    def close(self):
        self._stop.set()
        ls = self._listener
        if ls is not None:
            try:
                ls.close()
            except OSError:
                pass
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.end(None)
        deadline = time.monotonic() + 5
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))
        self.leaked_threads = [t.name for t in self._threads if t.is_alive()]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def _spawn(self, fn, args, what):
        t = threading.Thread(target=fn, args=args, name="%s-%s" % (self.name, what), daemon=True)
        with self._lock:
            self._threads.append(t)
        t.start()
        return t

    # ---- control ---------------------------------------------------------------------

    @property
    def cuts(self):
        """Connections the proxy ended (random, scripted and manual cuts)."""
        return sum(self.events[k] for k in CUT_KINDS)

    def arm(self, plan=None):
        """Start (or go on with) the random schedule."""
        if plan is not None:
            self.plan = plan
        self.armed = True

    def disarm(self):
        self.armed = False

    def live(self):
        with self._lock:
            return [c for c in self._conns if not c.closed]

    def cut(self):
        """Cut every current connection now (both sides). Returns how many."""
        n = 0
        for c in self.live():
            if c.end("manual_cut"):
                self._count("manual_cut", BOTH, c)
                n += 1
        return n

    def stall(self, direction=BOTH):
        """Stop forwarding on every current connection in `direction` until resume();
        nothing is read from that side either, so not even a close gets through (a
        half-open link). New connections are not affected. Returns the time it began
        (time.monotonic())."""
        t = time.monotonic()
        for c in self.live():
            for d in (UP, DOWN):
                if direction in (d, BOTH):
                    c.paused[d].set()
            self._count("manual_stall", direction, c)
        return t

    def resume(self):
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.paused[UP].clear()
            c.paused[DOWN].clear()
            c.wake.set()

    def start_outage(self, cut=True, mode="rst"):
        """Until end_outage(): every new connection is ended as soon as it is accepted,
        without a connection to the broker ("rst": reset, the client reads ECONNRESET;
        "close": an orderly close, EOF), counted as events["outage_refused"]. With cut,
        the current connections are cut too (as cut(), counted as manual_cut).
        Returns the time it began (time.monotonic())."""
        assert mode in ("rst", "close")
        t = time.monotonic()
        with self._lock:
            self._outage = mode
            self.log.append((t, "outage_start", BOTH, -1))
        if cut:
            self.cut()
        return t

    def end_outage(self):
        """New connections reach the broker again. Returns the time (time.monotonic())."""
        t = time.monotonic()
        with self._lock:
            self._outage = None
            self.log.append((t, "outage_end", BOTH, -1))
        return t

    @property
    def in_outage(self):
        return self._outage is not None

    def cut_when(self, direction, ptype, action="cut_before", times=1):
        """When a packet of MQTT type `ptype` passes in `direction`: "cut_before" cuts
        instead of forwarding it, "cut_after" forwards it, then cuts. `times` packets."""
        assert self.mqtt, "packet rules need mqtt=True"
        assert action in ("cut_before", "cut_after")
        rule = _Rule(direction, ptype, action, times)
        with self._lock:
            self._rules.append(rule)
        return rule

    def wait_connections(self, n, timeout=5.0):
        """Wait until n connections in all were accepted; True if so."""
        deadline = time.monotonic() + timeout
        while self.connections < n and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.connections >= n

    def summary(self):
        return "%s: %d connections, %d cuts, events %s" % (
            self.name,
            self.connections,
            self.cuts,
            dict(sorted(self.events.items())),
        )

    # ---- internals -------------------------------------------------------------------

    def _count(self, kind, direction, conn):
        with self._lock:
            self.events[kind] += 1
            self.log.append((time.monotonic(), kind, direction, conn.index))

    def _accept_loop(self):
        ls = self._listener
        while not self._stop.is_set():
            try:
                client, _ = ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return  # listener closed
            mode = self._outage
            if mode is not None:
                self._refuse(client, mode)
                continue
            try:
                server = socket.create_connection(self.target, timeout=_SEND_TIMEOUT)
            except OSError:
                client.close()
                continue
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.settimeout(_SEND_TIMEOUT)  # bounds sendall; reads go through select
            plan = self.plan
            seed = self._rng.getrandbits(64)
            budget = None
            if plan is not None and plan.cut_bytes is not None:
                budget = self._rng.randint(plan.cut_bytes[0], plan.cut_bytes[1])
            with self._lock:
                conn = _Conn(self, client, server, self.connections, seed, budget)
                self.connections += 1
                self._conns.append(conn)
                if self._stop.is_set():
                    conn.end(None)
                    return
            self._spawn(self._pump, (conn, UP), "c%d-up" % conn.index)
            self._spawn(self._pump, (conn, DOWN), "c%d-down" % conn.index)

    def _refuse(self, client, mode):
        # An outage: end the accepted connection at once, without reaching the broker.
        if mode == "rst":
            try:  # linger 0: close() sends RST instead of FIN
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        try:
            client.close()
        except OSError:
            pass
        with self._lock:
            self.events["outage_refused"] += 1
            self.log.append((time.monotonic(), "outage_refused", BOTH, -1))

    def _sleep(self, conn, seconds):
        # Interruptible: returns False if the connection or the proxy closed meanwhile.
        deadline = time.monotonic() + seconds
        while not conn.closed and not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            conn.wake.wait(min(left, _SLICE))
            conn.wake.clear()
        return False

    def _wait_unpaused(self, conn, direction):
        while conn.paused[direction].is_set():
            if conn.closed or self._stop.is_set():
                return False
            conn.wake.wait(_SLICE)
            conn.wake.clear()
        return not conn.closed

    def _pump(self, conn, direction):
        src, dst = (conn.client, conn.server) if direction == UP else (conn.server, conn.client)
        framer = _Framer() if self.mqtt else None
        try:
            while not conn.closed and not self._stop.is_set():
                if not self._wait_unpaused(conn, direction):
                    break
                try:
                    ready, _, _ = select.select([src], [], [], _SLICE)
                    if not ready:
                        continue
                    data = src.recv(65536)
                except (OSError, ValueError):
                    data = b""
                if not data:
                    conn.end("eof")  # the peer closed (or we did): close the other side
                    break
                units = framer.feed(data) if framer is not None else [data]
                for unit in units:
                    if not self._forward(conn, direction, unit, dst):
                        break
        finally:
            if self._stop.is_set():
                conn.end(None)

    def _send(self, dst, data, direction, conn):
        if not data:
            return True
        try:
            dst.sendall(data)
        except (OSError, ValueError):
            conn.end("eof")
            return False
        if self.record:
            with self._lock:
                self.forwarded.append((direction, bytes(data), conn.index))
        return True

    def _fault_cut(self, conn, kind, direction):
        if conn.end(kind):
            self._count(kind, direction, conn)
        return False

    def _forward(self, conn, direction, unit, dst):
        if not self._wait_unpaused(conn, direction):
            return False
        # Scripted rules first: they do exactly what the test asked.
        if self.mqtt and self._rules:
            ptype = unit[0] >> 4
            with self._lock:
                rule = None
                for r in self._rules:
                    if r.fired < r.times and r.direction in (direction, BOTH) and r.ptype == ptype:
                        r.fired += 1
                        rule = r
                        break
            if rule is not None:
                if rule.action == "cut_after":
                    self._send(dst, unit, direction, conn)
                return self._fault_cut(conn, "rule_cut", direction)
        plan = self.plan
        if self.armed and plan is not None:
            rng = conn.rng[direction]
            # Every draw is made for every unit, so the schedule is a function of the
            # unit index alone.
            r_delay, r_stall = rng.random(), rng.random()
            r_garbage, r_trunc = rng.random(), rng.random()
            delay = rng.uniform(*plan.delay_ms) / 1000
            stall = rng.uniform(*plan.stall_ms) / 1000
            glen = rng.randint(*plan.garbage_len)
            garbage = bytes(rng.getrandbits(8) for _ in range(glen))
            keep = rng.randrange(0, len(unit)) if len(unit) > 1 else 0
            here = direction in plan.directions
            if here and r_delay < plan.p_delay:
                self._count("delay", direction, conn)
                if not self._sleep(conn, delay):
                    return False
            if here and r_stall < plan.p_stall:
                self._count("stall", direction, conn)
                if not self._sleep(conn, stall):
                    return False
            if direction == DOWN and r_garbage < plan.p_garbage:
                self._send(dst, garbage, direction, conn)
                return self._fault_cut(conn, "garbage", direction)
            if here and r_trunc < plan.p_truncate:
                self._send(dst, unit[:keep], direction, conn)
                return self._fault_cut(conn, "truncate", direction)
            if conn.budget is not None:
                with conn.lock:
                    left = conn.budget - conn.count
                    conn.count += len(unit)
                if len(unit) >= left:
                    self._send(dst, unit[: max(left, 0)], direction, conn)
                    return self._fault_cut(conn, "cut", direction)
        return self._send(dst, unit, direction, conn)
