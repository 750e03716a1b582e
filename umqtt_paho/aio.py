# umqtt_paho.aio: an asyncio driver over the same protocol core as the synchronous
# Client (the session in session.py, the codec in packet.py), for firmware written with
# asyncio, on MicroPython's asyncio and CPython's from the same file. Imported only by
# applications that use it: `from umqtt_paho.aio import Client`.
#
# Theory of operation (first slice of issue 13: no reconnection policy yet)
# - connect() opens the stream (asyncio.open_connection, TLS with ssl=ssl_ctx), sends
#   CONNECT and waits for CONNACK, all within command_timeout; then one reader task
#   reads every packet: messages go to their subscription's function (a coroutine
#   function runs in its own task) or to messages(); acks go to the session, whose
#   slot wakes its waiter through that slot's Event (made once, reused).
# - Every wait is an event-loop wait bounded by command_timeout (a free slot, an ack)
#   or by the keepalive (the reader sends PINGREQ after half a keepalive of silence
#   and gives the link up when no PINGRESP came within a keepalive).
# - A failure of the link closes it and wakes every waiter, which raises
#   MQTTError(ERR_CONN_LOST); the session keeps unacknowledged QoS 1/2 messages.

import asyncio
import time

from .packet import (
    MQTTError,
    ArgError,
    encode_ack,
    encode_connect,
    encode_publish,
    encode_subscribe,
    decode_ack,
    decode_connack,
    decode_publish,
    decode_suback,
    packet_type,
    filter_problem,
    matches,
)
from .session import Session

try:
    from micropython import const
except ImportError:  # CPython
    const = int

_CONNACK = const(2)
_PUBLISH = const(3)
_PUBACK = const(4)
_PUBREC = const(5)
_PUBREL = const(6)
_PUBCOMP = const(7)
_SUBSCRIBE = const(8)
_SUBACK = const(9)
_UNSUBSCRIBE = const(10)
_UNSUBACK = const(11)
_PINGRESP = const(13)

_ERR_PROTOCOL = const(2)
_ERR_NO_CONN = const(4)
_ERR_CONN_REFUSED = const(5)
_ERR_CONN_LOST = const(7)
_ERR_QUEUE_SIZE = const(15)
_ERR_KEEPALIVE = const(16)
_ERR_TIMEOUT = const(17)
_ERR_SUBSCRIBE_REFUSED = const(18)

_T_QOS = const(7)
_T_KEEPALIVE = const(8)
_T_CONN_REFUSED = const(9)
_T_NO_CONNACK = const(12)
_T_NOT_CONNACK = const(13)
_T_NOT_CONNECTED = const(15)
_T_CLOSED = const(17)
_T_MUST_NOT_SEND = const(20)
_T_NO_PINGRESP = const(21)
_T_SLOTS_FULL = const(22)
_T_LOST_WAITING = const(24)
_T_ACK_TIMEOUT = const(25)
_T_SUB_REFUSED = const(28)
_T_FILTER = const(29)

_MESSAGES_MAX = const(32)  # messages() keeps at most this many unread; then the oldest go


def _to_bytes(s):
    return s.encode() if isinstance(s, str) else s


class Message:
    """A message of a subscription made with function=None, from messages()."""

    def __init__(self, topic, payload, qos, retain):
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain


class _Messages:
    # `async for msg in client.messages()`: MicroPython has no async generators.
    def __init__(self, c):
        self.c = c

    def __aiter__(self):
        return self

    async def __anext__(self):
        c = self.c
        while not c._inbox:
            if c._writer is None:
                raise StopAsyncIteration  # the link is closed: the loop ends
            c._arrived.clear()
            await c._arrived.wait()
        return c._inbox.pop(0)


class Client:
    """The asyncio client: the names and parameters of umqtt_paho.Client, awaitable."""

    def __init__(self, client_id, clean_session=True, cycle_timeout=500,
                 command_timeout=60000, max_packet_size=1024, max_inflight=20):
        self.client_id = _to_bytes(client_id)
        self.clean_session = clean_session
        self._cycle_timeout = cycle_timeout
        self._command_timeout = command_timeout
        self._max_packet = max_packet_size
        self.session = Session(max_inflight, 256)
        self._done = [asyncio.Event() for _ in range(max_inflight)]  # one per slot
        self._freed = asyncio.Event()  # a slot was freed
        self._arrived = asyncio.Event()  # messages() has something
        self._wlock = asyncio.Lock()
        self._sbuf = bytearray(256)
        self._abuf = bytearray(4)
        self._handlers = []  # [filter bytes, function or None, qos]
        self._inbox = []  # Message objects for messages()
        self._reader = self._writer = None
        self._task = None
        self._keepalive_ms = 0
        self._last_sent = 0
        self._ping_due = False
        self.last_error = None

    # ---- connection --------------------------------------------------------------------

    async def connect(self, host, keepalive, port=1883, ssl_ctx=None):
        """Returns once CONNACK accepted the connection; raises MQTTError or OSError."""
        if not 0 <= keepalive <= 65535:
            raise ArgError(_T_KEEPALIVE)
        t = self._command_timeout / 1000
        if ssl_ctx is None:
            opening = asyncio.open_connection(host, port)
        else:
            opening = asyncio.open_connection(host, port, ssl=ssl_ctx)
        try:
            self._reader, self._writer = await asyncio.wait_for(opening, t)
        except asyncio.TimeoutError:
            raise OSError(110, "connect to %s:%d timed out" % (host, port))  # ETIMEDOUT
        # One PUBLISH is one segment: Nagle would hold a second write for a delayed ACK.
        try:
            w = self._writer
            sock = w.s if hasattr(w, "s") else w.get_extra_info("socket")  # MicroPython, CPython
            sock.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY
        except Exception:  # a TLS stream, or a stack without the option: harmless
            pass
        self._keepalive_ms = keepalive * 1000
        try:
            n = encode_connect(self._sbuf, self.client_id, self.clean_session, keepalive)
            await self._write(self._sbuf, n)
            try:
                first, body = await asyncio.wait_for(self._read_packet(), t)
            except asyncio.TimeoutError:
                raise MQTTError(_ERR_TIMEOUT, _T_NO_CONNACK, self._command_timeout)
            if first >> 4 != _CONNACK:
                raise MQTTError(_ERR_PROTOCOL, _T_NOT_CONNACK, first >> 4)
            rc = decode_connack(first, body, 0, len(body))
        except BaseException as e:
            await self._close(e)
            raise
        if rc:
            await self._close(None)
            raise MQTTError(_ERR_CONN_REFUSED, _T_CONN_REFUSED, rc)
        self.session.connack(body[0] & 1 == 1)
        self._task = asyncio.create_task(self._run())
        for h in self._handlers:  # subscriptions made before connect()
            await self._command(_SUBSCRIBE, ((h[0], h[2]),))
        return 0

    def connected(self):
        return self._writer is not None and self._task is not None

    def pending(self):
        """Accepted QoS 1/2 messages not yet acknowledged (kept by the session)."""
        return self.session.pending()

    async def disconnect(self):
        """Send DISCONNECT (if connected) and close."""
        if self._writer is not None:
            try:
                await self._write(b"\xe0\x00", 2)
            except Exception:
                pass
        await self._close(None)

    async def __aenter__(self):
        return self

    async def __aexit__(self, a, b, c):
        await self.disconnect()
        return False

    async def _close(self, e):
        # Any end of the link: close it and wake every waiter.
        if e is not None:
            self.last_error = e
        w = self._writer
        self._writer = None
        self._reader = None
        task = self._task
        self._task = None
        if w is not None:
            try:
                w.close()
                await w.wait_closed()
            except Exception:
                pass
        for ev in self._done:
            ev.set()
        self._freed.set()
        self._arrived.set()
        if task is not None and task is not _current_task():
            task.cancel()

    # ---- commands ----------------------------------------------------------------------

    async def publish(self, topic, payload=b"", qos=0, retain=False):
        """QoS 0: returns once written; QoS 1/2: once PUBACK / PUBCOMP came. Returns the
        packet id (0 at QoS 0). Raises MQTTError (ERR_NO_CONN, ERR_QUEUE_SIZE,
        ERR_TIMEOUT, ERR_CONN_LOST: the session then still holds the message)."""
        topic = _to_bytes(topic)
        payload = b"" if payload is None else _to_bytes(payload)
        if qos != 0 and qos != 1 and qos != 2:
            raise ArgError(_T_QOS, qos)
        if self._writer is None:
            raise MQTTError(_ERR_NO_CONN, _T_NOT_CONNECTED)
        if not qos:
            async with self._wlock:
                n = encode_publish(self._sbuf, topic, len(payload), 0, retain)
                await self._send_publish(n, payload)
            return 0
        if not isinstance(payload, bytes):
            payload = bytes(payload)  # the session keeps it until acked
        s = self.session
        i = await self._slot(_PUBLISH)
        pid = s.pids[i]
        async with self._wlock:
            try:
                n = encode_publish(self._sbuf, topic, len(payload), qos, retain, False, pid)
            except Exception:
                s.free(i)
                raise
            s.accept(i, topic, payload, qos, retain, True)
            self._done[i].clear()
            try:
                await self._send_publish(n, payload)
            except Exception as e:
                await self._close(e)
        await self._wait_ack(i, _PUBLISH)
        return pid

    async def subscribe(self, topic, function=None, qos=0):
        """Subscribe; function(client, payload, topic) gets each message (a coroutine
        function runs in its own task), or with function=None, messages() does. Returns
        the granted QoS (None before connect(): the SUBSCRIBE goes out then)."""
        f = _to_bytes(topic)
        why = filter_problem(f)
        if why:
            raise ArgError(_T_FILTER, why)
        if qos not in (0, 1, 2):
            raise ArgError(_T_QOS, qos)
        for h in self._handlers:
            if h[0] == f:
                self._handlers.remove(h)
        self._handlers.append([f, function, qos])
        if self._writer is None:
            return None
        return await self._command(_SUBSCRIBE, ((f, qos),))

    async def unsubscribe(self, topic):
        f = _to_bytes(topic)
        why = filter_problem(f)
        if why:
            raise ArgError(_T_FILTER, why)
        self._handlers = [h for h in self._handlers if h[0] != f]
        if self._writer is not None:
            await self._command(_UNSUBSCRIBE, (f,))

    def messages(self):
        """`async for msg in client.messages()`: messages of subscriptions made with
        function=None (msg.topic str, .payload bytes, .qos, .retain); ends when the link
        closes. At most 32 wait unread; beyond that the oldest are dropped."""
        return _Messages(self)

    async def _command(self, t, arg):
        s = self.session
        i = await self._slot(t)
        pid = s.pids[i]
        need = 8
        for a in arg:
            need += len(a[0] if t == _SUBSCRIBE else a) + 3
        buf = self._sbuf if need <= len(self._sbuf) else bytearray(need)
        async with self._wlock:
            self._done[i].clear()
            try:
                n = encode_subscribe(buf, pid, arg, t == _UNSUBSCRIBE)
                await self._write(buf, n)
            except Exception:
                s.free(i)
                raise
        granted = await self._wait_ack(i, t)
        if granted == 0x80:
            raise MQTTError(_ERR_SUBSCRIBE_REFUSED, _T_SUB_REFUSED, arg[0][0])
        return granted

    async def _slot(self, t):
        # A free session slot (its packet id), waiting up to command_timeout.
        s = self.session
        while True:
            i = s.take(t)
            if i >= 0:
                return i
            if self._writer is None:
                raise MQTTError(_ERR_NO_CONN, _T_NOT_CONNECTED)
            self._freed.clear()
            try:
                await asyncio.wait_for(self._freed.wait(), self._command_timeout / 1000)
            except asyncio.TimeoutError:
                raise MQTTError(_ERR_QUEUE_SIZE, _T_SLOTS_FULL, len(s.states))

    async def _wait_ack(self, i, t):
        # Slot i's ack, within command_timeout; returns its code (SUBACK: the QoS).
        s = self.session
        try:
            await asyncio.wait_for(self._done[i].wait(), self._command_timeout / 1000)
        except asyncio.TimeoutError:
            pass
        if s.done(i):
            code = s.order[i]
            s.free(i)
            self._freed.set()
            return code
        s.unwait(i)  # the ack or a resend finishes it
        lost = self._writer is None
        raise MQTTError(_ERR_CONN_LOST if lost else _ERR_TIMEOUT,
                        _T_LOST_WAITING if lost else _T_ACK_TIMEOUT, t + 1,
                        self._command_timeout)  # fmt: skip

    # ---- reading and writing -----------------------------------------------------------

    async def _write(self, buf, n):
        w = self._writer
        if w is None:
            raise MQTTError(_ERR_NO_CONN, _T_NOT_CONNECTED)
        w.write(buf[:n] if n != len(buf) else buf)
        await w.drain()
        self._last_sent = _ticks()

    async def _send_publish(self, n, payload):
        # Caller holds _wlock; the header (n bytes) is in the send buffer.
        w = self._writer
        if w is None:
            raise MQTTError(_ERR_NO_CONN, _T_NOT_CONNECTED)
        sbuf = self._sbuf
        end = n + len(payload)
        if end <= len(sbuf):
            sbuf[n:end] = payload  # header and payload in one write
            w.write(sbuf[:end])
        else:
            w.write(sbuf[:n])
            w.write(payload)
        await w.drain()
        self._last_sent = _ticks()

    async def _send_ack(self, t, pid):
        async with self._wlock:
            await self._write(self._abuf, encode_ack(self._abuf, t, pid))

    async def _read_packet(self):
        # One packet: (first byte, body). A body larger than max_packet_size is read
        # through and dropped (acked per its QoS): first is then 0.
        r = self._reader
        if r is None:
            raise MQTTError(_ERR_CONN_LOST, _T_CLOSED)
        first = (await r.readexactly(1))[0]
        packet_type(first)  # reserved types and flags [MQTT-2.2.2-2]
        rl = shift = 0
        while True:
            d = (await r.readexactly(1))[0]
            rl |= (d & 0x7F) << shift
            if d < 0x80:
                break
            shift += 7
            if shift == 28:
                raise MQTTError(_ERR_PROTOCOL, _T_MUST_NOT_SEND, first >> 4)
        if rl <= self._max_packet:
            return first, memoryview(await r.readexactly(rl) if rl else b"")
        head = await r.readexactly(self._max_packet)
        left = rl - len(head)
        while left:
            left -= len(await r.readexactly(min(left, self._max_packet)))
        qos = first >> 1 & 3
        if first >> 4 == _PUBLISH and qos:
            tl = head[0] << 8 | head[1]
            if tl + 4 <= len(head):
                await self._send_ack(_PUBACK if qos == 1 else _PUBREC,
                                     head[2 + tl] << 8 | head[3 + tl])  # fmt: skip
        return 0, None

    async def _run(self):
        # The reader task: every packet until the link fails or closes.
        ka = self._keepalive_ms
        try:
            while True:
                wait = ka // 2 if ka else self._cycle_timeout * 20
                try:
                    first, body = await asyncio.wait_for(self._read_packet(), wait / 1000)
                except asyncio.TimeoutError:
                    if not ka:
                        continue
                    if self._ping_due:
                        raise MQTTError(_ERR_KEEPALIVE, _T_NO_PINGRESP, ka // 1000)
                    await self._ping()
                    continue
                self._ping_due = False  # any packet shows the link is alive
                if first:
                    await self._handle(first, body)
                if ka and _ticks_diff(_ticks(), self._last_sent) >= ka // 2:
                    # Receiving only: the broker still needs a packet from us within
                    # the keepalive [MQTT-3.1.2-23].
                    await self._ping()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            await self._close(e)

    async def _ping(self):
        async with self._wlock:
            await self._write(b"\xc0\x00", 2)  # PINGREQ
        self._ping_due = True

    async def _handle(self, first, mv):
        t = first >> 4
        rl = len(mv)
        s = self.session
        if t == _PUBLISH:
            p = decode_publish(first, mv, 0, rl)
            qos = first >> 1 & 3
            pid = mv[p - 2] << 8 | mv[p - 1] if qos else 0
            if qos < 2 or s.remember_in(pid):
                self._deliver(mv, p, qos, first & 1)
            if qos:
                await self._send_ack(_PUBACK if qos == 1 else _PUBREC, pid)
        elif t == _PUBREL:
            pid = decode_ack(first, mv, 0, rl)
            if s.inbound is not None:
                s.inbound.forget(pid)
            await self._send_ack(_PUBCOMP, pid)  # [MQTT-4.3.3-2]
        elif t == _PINGRESP:
            pass
        elif t in (_PUBACK, _PUBREC, _PUBCOMP, _SUBACK, _UNSUBACK):
            if t == _SUBACK:
                pid = decode_suback(first, mv, 0, rl)
            else:
                pid = decode_ack(first, mv, 0, rl)
            i = s.ack(t, pid, mv[2] if t == _SUBACK else 0)
            if t == _PUBREC:
                await self._send_ack(_PUBREL, pid)
            elif i >= 0:
                self._done[i].set()
                self._freed.set()
        else:
            raise MQTTError(_ERR_PROTOCOL, _T_MUST_NOT_SEND, t)

    def _deliver(self, mv, p, qos, retain):
        tl = mv[0] << 8 | mv[1]
        topic = str(mv[2 : 2 + tl], "utf-8")
        payload = bytes(mv[p:])
        queued = False
        for h in self._handlers:
            if not matches(h[0], mv, 2, 2 + tl):
                continue
            fn = h[1]
            if fn is None:
                if not queued:
                    queued = True
                    inbox = self._inbox
                    if len(inbox) >= _MESSAGES_MAX:
                        inbox.pop(0)  # bounded: the oldest unread goes
                    inbox.append(Message(topic, payload, qos, retain))
                    self._arrived.set()
                continue
            try:
                r = fn(self, payload, topic)
                if r is not None and hasattr(r, "send"):
                    asyncio.create_task(r)  # a coroutine function: its own task
            except Exception as e:
                self.last_error = e


def _current_task():
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


_ticks = getattr(time, "ticks_ms", None)  # MicroPython
_ticks_diff = getattr(time, "ticks_diff", None)
if _ticks is None:  # CPython

    def _ticks():
        return time.monotonic_ns() // 1000000

    def _ticks_diff(a, b):
        return a - b
