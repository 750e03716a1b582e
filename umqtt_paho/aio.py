# umqtt_paho.aio: an asyncio driver over the same protocol core as the synchronous
# Client (the session in session.py, the codec in packet.py), for firmware written with
# asyncio, on MicroPython's asyncio and CPython's from the same file. Imported only by
# applications that use it: `from umqtt_paho.aio import Client`.
#
# Theory of operation
# - Tasks: connect() starts two. _run reads every packet of the link (one coroutine per
#   connection with the packet loop inline: nothing allocated per packet) and, when the
#   link fails, reconnects with backoff and jitter. _tick sends PINGREQ when either
#   direction was silent for half the keepalive, and closes a link that answered no
#   PINGREQ within the keepalive, or that stalled (an opening, a CONNACK or the rest of
#   a packet not there within command_timeout).
# - After each CONNACK the session's unacknowledged QoS 1/2 messages go out again in
#   their first-sent order, with DUP and their packet ids (PUBREL for a PUBREC'd QoS 2
#   message the broker kept), then every subscription the broker may not have.
# - Writing never awaits in the middle of a packet: each packet goes to the socket
#   whole, or, if the socket takes only part, its rest waits in _out for a _flush task
#   (later packets queue behind it, in order). So one send buffer serves everyone.
# - publish() is a plain function that sends at once and returns what to await: at
#   QoS 1/2 the slot's _Park, which sleeps until the ack wakes it or command_timeout
#   passes. The wait goes on across a reconnect (the resend may complete it); when it
#   gives up, the session still holds the message.
# - MicroPython: a _Park puts its task straight on asyncio's task queue (with its
#   deadline) or I/O queue, and is woken by moving it, allocating nothing (as
#   asyncio.sleep_ms does): a warm QoS 0 publish allocates 0 bytes, and no asyncio
#   module beyond the core is loaded (no Event, wait_for or streams: about 1.9 KB).
#   On CPython (aiohost.py) a _Park is a future and the link a stream pair.

import asyncio
import gc

# One module at a time, with a collection after each (as client.py does): the next
# one's code fills the holes the loader leaves, not the heap's free end.
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

gc.collect()
from .session import Session  # noqa: E402

gc.collect()

try:
    from micropython import const
except ImportError:  # CPython
    const = int

try:
    from asyncio import core  # type: ignore[attr-defined]  # MicroPython: its task and I/O queues
except ImportError:
    core = None  # CPython

try:
    from random import getrandbits
except ImportError:  # a port without random: no jitter
    getrandbits = None  # type: ignore[assignment]

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
_ERR_TLS = const(8)
_ERR_QUEUE_SIZE = const(15)
_ERR_KEEPALIVE = const(16)
_ERR_TIMEOUT = const(17)
_ERR_SUBSCRIBE_REFUSED = const(18)

_T_QOS = const(7)
_T_KEEPALIVE = const(8)
_T_CONN_REFUSED = const(9)
_T_TLS_INSECURE = const(11)
_T_NO_CONNACK = const(12)
_T_NOT_CONNECTED = const(15)
_T_CLOSED = const(17)
_T_MUST_NOT_SEND = const(20)
_T_NO_PINGRESP = const(21)
_T_SLOTS_FULL = const(22)
_T_LOST_WAITING = const(24)
_T_ACK_TIMEOUT = const(25)
_T_SUB_REFUSED = const(28)
_T_FILTER = const(29)
_T_TLS_FAILED = const(77)
_T_STALLED_FOR = const(78)

# What a _Park waits for: a slot's ack (i >= 0), or
_READ = const(-1)  # bytes on the link (the reader)
_WRITE = const(-2)  # room on the link (an opening connection, the rest of a packet)
_IDLE = const(-3)  # anything in _idle's wake-ups: a CONNACK, a free slot, _out sent
_PAUSE = const(-4)  # nothing: one turn for the other tasks (a QoS 0 publish)


def _to_bytes(s):
    return s.encode() if isinstance(s, str) else s


if core is not None:  # MicroPython
    import socket
    from time import ticks_ms as _ticks, ticks_diff as _ticks_diff, ticks_add as _ticks_add  # type: ignore[attr-defined]
    from errno import EINPROGRESS

    _sleep_ms = asyncio.sleep_ms  # type: ignore[attr-defined]
    _STOP = StopIteration()  # raised again and again: a finished wait allocates nothing

    class _Park:
        """`await` it (or make it a task): its task sleeps until wake(), the deadline,
        or (_READ, _WRITE) the link being ready. A slot's park then asks
        c._acked(i, deadline): done (the await returns), not yet (sleep on), or it
        raises."""

        def __init__(self, c, i):
            self.c = c
            self.i = i
            self.task = None
            self.deadline = 0

        def __iter__(self):
            return self

        def __next__(self):
            i = self.i
            if self.task is not None:  # woken, or the deadline came
                self.task = None
                if i < 0 or self.c._acked(i, self.deadline):
                    _STOP.__traceback__ = None
                    raise _STOP
            t = self.task = core.cur_task
            if i == _READ:
                core._io_queue.queue_read(self.c._net)
            elif i == _WRITE:
                core._io_queue.queue_write(self.c._net)
            elif i == _PAUSE:
                core._task_queue.push(t)
            else:
                core._task_queue.push(t, self.deadline)

        def send(self, _):  # asyncio.create_task(client.publish(...)) runs it like this
            return self.__next__()

        def throw(self, e):  # cancelled: asyncio took the task off its queue
            self.task = None
            raise e

        def wake(self):
            t = self.task
            if t is not None:
                q = core._io_queue if t.data is core._io_queue else core._task_queue
                q.remove(t)
                core._task_queue.push(t)

    async def _open_link(c, host, port, ctx):
        # A non-blocking socket (TLS: wrapped, its handshake runs in the first reads and
        # writes), connected when it takes bytes; _tick bounds the wait.
        ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        s = socket.socket(ai[0], ai[1], ai[2])
        s.setblocking(False)
        try:
            s.setsockopt(6, 1, 1)  # IPPROTO_TCP, TCP_NODELAY: a PUBLISH is one segment
        except Exception:  # a stack without the option
            pass
        try:
            s.connect(ai[-1])
        except OSError as e:
            if e.errno != EINPROGRESS:
                s.close()
                raise
        if ctx is not None:
            s = ctx.wrap_socket(s, server_hostname=host, do_handshake_on_connect=False)
            s.setblocking(False)
        c._net = s
        await c._until(_WRITE, 0)
        if c._net is not s:  # closed meanwhile: _tick's timeout, or disconnect()
            raise c.last_error or MQTTError(_ERR_NO_CONN, _T_NOT_CONNECTED)

else:  # CPython: the same waits over futures and streams
    from .aiohost import (  # type: ignore[assignment]
        ticks as _ticks,
        ticks_diff as _ticks_diff,
        ticks_add as _ticks_add,
        sleep_ms as _sleep_ms,
        Park as _Park,
        open_link as _open_link,
    )


class Client:
    """The asyncio client: the names and parameters of umqtt_paho.Client, awaitable."""

    # Reconnecting (connect(reconnect=True)): delays grow from backoff_ms to
    # backoff_cap_ms with equal jitter; after max_attempts failed attempts in one outage
    # the client stops (0: never).
    backoff_ms = 1000
    backoff_cap_ms = 60000
    max_attempts = 0
    tls_insecure = False  # True: accept an ssl_ctx that verifies nothing
    oversize_dropped = 0  # PUBLISHes larger than max_packet_size, acked and dropped

    def __init__(self, client_id, clean_session=True, cycle_timeout=500,
                 command_timeout=60000, max_packet_size=1024, max_inflight=20,
                 max_inflight_in=256):
        # cycle_timeout: accepted for umqtt_paho.Client's signature; nothing polls here.
        gc.collect()  # the buffers first, into a clean heap: they are the largest blocks
        self._rmv = memoryview(bytearray(max_packet_size))  # the receive buffer
        self._sbuf = bytearray(256)
        self._id = (_to_bytes(client_id), clean_session, None, None)  # + will, auth
        self._command_timeout = command_timeout
        self.session = Session(max_inflight, max_inflight_in)
        self._waits = [None] * max_inflight  # each slot's _Park, made at its first use
        self._idle = []  # parks woken by _kick(): CONNACK, a free slot, _out sent, a close
        self._box = None  # messages(): aiobox.Inbox
        self._out = b""  # what the socket did not take yet (_flush sends it)
        self._handlers = []  # [filter bytes, function or None, qos, granted; -1 - pid]
        self._net = None  # the link: MicroPython's socket, or aiohost.StreamNet
        self._rd = _Park(self, _READ)
        self._pause = _Park(self, _PAUSE)
        self._task = self._ticker = None
        self._target = None  # (host, port, ssl_ctx, keepalive ms, bcb, acb, reconnect)
        self._connected = self._stopping = False
        self._attempt = -1  # failed attempts in this outage; -1 before the first CONNACK
        self._code = 0  # the last completed command's return code (SUBACK: the QoS)
        self._last_sent = self._last_recv = self._ping_at = self._part = 0
        self.last_error = None

    # ---- connection --------------------------------------------------------------------

    async def connect(self, host, keepalive, port=1883, ssl_ctx=None, breconnect_cb=None,
                      aconnect_cb=None, reconnect=True):
        """Returns once CONNACK accepted the connection; raises MQTTError or OSError.
        reconnect=True: when the link fails later, the client reconnects by itself
        (breconnect_cb(client) first, e.g. to bring WiFi back; aconnect_cb(client) after
        each CONNACK; either may be a coroutine function), resends what was not acked
        and renews the subscriptions."""
        if not 0 <= keepalive <= 65535:
            raise ArgError(_T_KEEPALIVE)
        if ssl_ctx is not None and not self.tls_insecure and (
            getattr(ssl_ctx, "verify_mode", 2) == 0
            or getattr(ssl_ctx, "check_hostname", 1) is False
        ):
            raise MQTTError(_ERR_TLS, _T_TLS_INSECURE)
        if self._ticker is not None:
            await self.disconnect()
        self._target = (host, port, ssl_ctx, keepalive * 1000, breconnect_cb, aconnect_cb,
                        reconnect)  # fmt: skip
        self._stopping = False
        self._attempt = -1
        self.last_error = None
        gc.collect()  # the link's objects then fill holes (RAM is tightest from here on)
        self._ticker = asyncio.create_task(self._tick())  # it bounds the opening too
        try:
            await self._open()
        except BaseException:
            await self.disconnect()
            raise
        self._task = asyncio.create_task(self._run())
        while not self._connected and self._net is not None:
            await self._until(_IDLE, self._command_timeout)  # _tick closes at the timeout
        # and the SUBACKs of subscriptions made before (within command_timeout)
        end = _ticks_add(_ticks(), self._command_timeout)
        for h in self._handlers:
            while h[3] < -1 and self._connected and _ticks_diff(end, _ticks()) > 0:
                await self._until(_IDLE, _ticks_diff(end, _ticks()))  # its SUBACK
        if not self._connected:
            e = self.last_error or MQTTError(_ERR_NO_CONN, _T_NOT_CONNECTED)
            await self.disconnect()
            raise e
        return 0

    def set_username_pw(self, username, password=""):
        """User name and password for the next CONNECT (password may be empty)."""
        i = self._id
        auth = None if username is None else (_to_bytes(username), _to_bytes(password))
        self._id = (i[0], i[1], i[2], auth)

    def set_will(self, topic, payload, qos=0, retain=True):
        """Last will: published by the broker if the link dies without DISCONNECT
        (checked by the next connect(), which raises ValueError for a bad one)."""
        i = self._id
        payload = b"" if payload is None else _to_bytes(payload)
        self._id = (i[0], i[1], (_to_bytes(topic), payload, qos, retain), i[3])

    def connected(self):
        return self._connected

    def pending(self):
        """Accepted QoS 1/2 messages not yet acknowledged (kept by the session)."""
        return self.session.pending()

    async def disconnect(self):
        """Send DISCONNECT (if connected) and stop: no more reconnecting."""
        self._stopping = True
        if self._connected and not self._out:
            try:
                self._send(b"\xe0\x00", 2)
            except Exception:
                pass
        self._close(None)
        me = asyncio.current_task()
        for t in (self._ticker, self._task):
            if t is not None and t is not me:
                t.cancel()
                try:
                    await t
                except BaseException:  # its CancelledError
                    pass
        self._ticker = self._task = None
        self._close(None)  # wake every waiter: nothing will complete them now

    async def __aenter__(self):
        return self

    async def __aexit__(self, a, b, c):
        await self.disconnect()
        return False

    async def _open(self):
        # Open the link and send CONNECT; _run reads the CONNACK.
        t = self._target
        self._out = b""
        self._ping_at = 0
        self._part = self._last_recv = _ticks()  # _tick: the CONNACK within command_timeout
        try:
            await _open_link(self, t[0], t[1], t[2])
            i = self._id
            w = i[2] or (None, b"", 0, False)
            a = i[3] or (b"", None)
            # CONNECT [3.1], into a one-off buffer if the send buffer is too small
            need = 32 + len(i[0]) + len(w[0] or b"") + len(w[1]) + len(a[0]) + len(a[1] or b"")
            buf = self._sbuf if need <= len(self._sbuf) else bytearray(need)
            n = encode_connect(buf, i[0], i[1], t[3] // 1000, w[0], w[1], w[2], w[3],
                               i[3] and a[0], a[1])  # fmt: skip
            self._send(buf, n)
        except Exception as e:
            raise self._close(e)

    def _close(self, e):
        # The link ends (failure e, or on purpose): close it, wake its reader and every
        # waiter (a waiter sleeps on if a reconnect may still complete it). Returns e.
        net = self._net
        if type(e) is ValueError and self._target[2] is not None:
            # MicroPython's ssl raises a bare ValueError with mbedtls' reason (a
            # certificate that fails verification, a host name it does not carry):
            # connect() fails with MQTTError or OSError only.
            e = MQTTError(_ERR_TLS, _T_TLS_FAILED, self._target[0], str(e).strip())
        if e is not None and net is not None:
            self.last_error = e
        self._net = None
        self._connected = False
        self._out = b""
        self._part = 0
        if net is not None:
            try:
                net.close()
            except Exception:
                pass
            self._rd.wake()
        for w in self._waits:
            if w is not None:
                w.wake()
        self._kick()
        if self._box is not None:
            self._box.ev.set()
        return e

    def _kick(self):
        for p in self._idle:
            p.wake()

    async def _until(self, kind, ms):
        # Sleep until _kick(), or (_IDLE) ms pass, or (_WRITE: an opening link, which
        # no reader waits on yet) the link takes bytes.
        p = _Park(self, kind)
        p.deadline = _ticks_add(_ticks(), ms)
        self._idle.append(p)
        try:
            await p
        finally:
            self._idle.remove(p)

    def _reconnecting(self):
        # Will the client try again after this link? Not before the first CONNACK.
        return not self._stopping and self._target[6] and self._attempt >= 0

    async def _run(self):
        # The client's task: read each link until it fails; reconnect with backoff.
        while True:
            try:
                # Every packet of the link: first byte, remaining length, body into _rmv
                # (the loop inline: a coroutine per packet would allocate).
                net = self._net  # None: the last attempt failed
                rd = self._rd
                buf = self._rmv
                size = len(buf)
                while net is not None:
                    n = net.readinto(buf, 1)
                    if n is None:
                        await rd
                        continue
                    if not n:
                        raise MQTTError(_ERR_CONN_LOST, _T_CLOSED)
                    first = buf[0]
                    packet_type(first)  # reserved types and flags [MQTT-2.2.2-2]
                    self._part = _ticks() or 1
                    rl = shift = 0
                    while True:
                        n = net.readinto(buf, 1)
                        if n is None:
                            await rd
                            continue
                        if not n:
                            raise MQTTError(_ERR_CONN_LOST, _T_CLOSED)
                        rl |= (buf[0] & 0x7F) << shift
                        if buf[0] < 0x80:
                            break
                        shift += 7
                        if shift == 28:
                            raise MQTTError(_ERR_PROTOCOL, _T_MUST_NOT_SEND, first >> 4)
                    keep = rl if rl <= size else size
                    got = 0
                    while got < keep:  # a slice only when the body comes in parts
                        n = net.readinto(buf[got:] if got else buf, keep - got)
                        if n is None:
                            await rd
                            continue
                        if not n:
                            raise MQTTError(_ERR_CONN_LOST, _T_CLOSED)
                        got += n
                    if rl > keep:
                        # Larger than max_packet_size: read through and dropped, acked
                        # per its QoS (the ack's id is in the head just read).
                        t = first >> 1 & 3  # QoS
                        tl = buf[0] << 8 | buf[1]
                        if first >> 4 != _PUBLISH or not t or tl + 4 > size:
                            t = 0
                        else:
                            pid = buf[2 + tl] << 8 | buf[3 + tl]
                            t = _PUBACK if t == 1 else _PUBREC
                        while got < rl:
                            n = net.readinto(buf, min(rl - got, size))
                            if n is None:
                                await rd
                                continue
                            if not n:
                                raise MQTTError(_ERR_CONN_LOST, _T_CLOSED)
                            got += n
                        self.oversize_dropped += 1
                        if t:
                            self._send_ack(t, pid)
                        rl = -1
                    self._part = self._ping_at = 0
                    self._last_recv = _ticks()
                    if rl >= 0:
                        self._handle(first, rl)
            except Exception as e:
                self._close(e)
            self._close(None)
            if not self._reconnecting():
                break
            # Equal jitter: half the delay fixed, half random (a fleet that lost the
            # same broker does not come back in lockstep).
            d = min(self.backoff_cap_ms, self.backoff_ms << min(self._attempt, 16)) // 2
            await _sleep_ms(d + (getrandbits(16) * d >> 16 if getrandbits else 0))  # type: ignore[truthy-function]
            self._attempt += 1
            if self.max_attempts and self._attempt > self.max_attempts:
                self._stopping = True
            if self._stopping:
                continue
            try:
                bcb = self._target[4]
                r = bcb and bcb(self)
                if r is not None and hasattr(r, "send"):
                    await r  # a coroutine function: e.g. bring WiFi back
                await self._open()
            except Exception as e:
                self.last_error = e
        self._task = None
        self._close(None)

    async def _tick(self):
        # Keepalive [MQTT-3.1.2-23], and the bound on whatever stalls the link.
        while not self._stopping:
            ka = self._target[3]
            await _sleep_ms(min(ka >> 2 or 1000, self._command_timeout >> 1))
            if self._net is None:
                continue
            now = _ticks()
            if self._part and _ticks_diff(now, self._part) >= self._command_timeout:
                self._close(MQTTError(_ERR_TIMEOUT, _T_STALLED_FOR if self._connected else
                                      _T_NO_CONNACK, self._command_timeout))  # fmt: skip
            elif not ka or not self._connected:
                pass
            elif self._ping_at:
                if _ticks_diff(now, self._ping_at) >= ka:
                    self._close(MQTTError(_ERR_KEEPALIVE, _T_NO_PINGRESP, ka // 1000))
            elif (_ticks_diff(now, self._last_sent) >= ka >> 1
                  or _ticks_diff(now, self._last_recv) >= ka >> 1):  # fmt: skip
                try:
                    self._send(b"\xc0\x00", 2)  # PINGREQ
                    self._ping_at = now
                except Exception as e:
                    self._close(e)

    # ---- commands ----------------------------------------------------------------------

    def publish(self, topic, payload=b"", qos=0, retain=False):
        """Sends at once and returns what to await: at QoS 0 the write (a pause for the
        other tasks), at QoS 1/2 the PUBACK / PUBCOMP. While the client reconnects, a
        QoS 1/2 message is held and sent after the CONNACK. Raises MQTTError:
        ERR_NO_CONN (QoS 0 while not connected, or the client stopped), ERR_QUEUE_SIZE,
        ERR_TIMEOUT, ERR_CONN_LOST; the session then still holds a QoS 1/2 message and
        resends it after a reconnect."""
        topic = _to_bytes(topic)
        payload = b"" if payload is None else _to_bytes(payload)
        if qos != 0 and qos != 1 and qos != 2:
            raise ArgError(_T_QOS, qos)
        if not qos:
            if not self._connected:
                raise MQTTError(_ERR_NO_CONN, _T_NOT_CONNECTED)
            self._send_publish(encode_publish(self._sbuf, topic, len(payload), 0, retain),
                               payload)  # fmt: skip
            if self._out:  # behind a backlog: until the flush (or anything) moves on
                return self._until(_IDLE, self._command_timeout)
            return self._pause if core is not None else self._net.w.drain()
        if self._task is None:
            raise MQTTError(_ERR_NO_CONN, _T_NOT_CONNECTED)
        i = self.session.take(_PUBLISH)
        if i < 0:
            return self._publish_later(topic, payload, qos, retain)
        return self._publish_in(i, topic, payload, qos, retain)

    async def _publish_later(self, topic, payload, qos, retain):
        await self._publish_in(await self._slot(_PUBLISH), topic, payload, qos, retain)

    def _publish_in(self, i, topic, payload, qos, retain):
        s = self.session
        try:
            n = encode_publish(self._sbuf, topic, len(payload), qos, retain, False,
                               s.pids[i])  # fmt: skip
        except Exception:
            s.free(i)
            raise
        s.accept(i, topic, payload, qos, retain, True, self._connected)
        if self._connected:
            try:
                self._send_publish(n, payload)
            except Exception as e:
                self._close(e)  # the resend after the reconnect sends it
        return self._ack(i)

    def _ack(self, i):
        # Slot i's park (made at the slot's first use), armed for command_timeout.
        w = self._waits[i]
        if w is None:
            w = self._waits[i] = _Park(self, i)
        w.deadline = _ticks_add(_ticks(), self._command_timeout)
        return w if core is not None else w.wait()  # CPython: a coroutine, for create_task

    async def subscribe(self, topic, function=None, qos=0):
        """Subscribe; function(client, payload, topic) gets each message (a coroutine
        function runs in its own task), or with function=None, messages() does. Returns
        the granted QoS; None while not connected (the SUBSCRIBE goes out after the
        next CONNACK)."""
        f = _to_bytes(topic)
        why = filter_problem(f)
        if why:
            raise ArgError(_T_FILTER, why)
        if qos != 0 and qos != 1 and qos != 2:
            raise ArgError(_T_QOS, qos)
        self._handlers = [h for h in self._handlers if h[0] != f]
        h = [f, function, qos, -1]
        self._handlers.append(h)
        if not self._connected:
            return None
        h[3] = await self._command(_SUBSCRIBE, ((f, qos),))
        return h[3]

    async def unsubscribe(self, topic):
        """Unsubscribe (raises MQTTError ERR_NO_CONN while not connected)."""
        f = _to_bytes(topic)
        why = filter_problem(f)
        if why:
            raise ArgError(_T_FILTER, why)
        if not self._connected:
            raise MQTTError(_ERR_NO_CONN, _T_NOT_CONNECTED)
        self._handlers = [h for h in self._handlers if h[0] != f]
        await self._command(_UNSUBSCRIBE, (f,))

    def messages(self):
        """`async for msg in client.messages()`: messages of subscriptions made with
        function=None (msg.topic str, .payload bytes, .qos, .retain); ends when the
        client stops. At most 32 wait unread; beyond that the oldest are dropped."""
        if self._box is None:
            from .aiobox import Inbox

            self._box = Inbox(self)
        return self._box

    async def _command(self, t, arg):
        i = await self._slot(t)
        s = self.session
        try:
            if not self._connected:
                raise MQTTError(_ERR_NO_CONN, _T_NOT_CONNECTED)
            self._send_subscribe(i, t, arg)
        except Exception:
            s.free(i)
            raise
        await self._ack(i)
        if self._code == 0x80:
            raise MQTTError(_ERR_SUBSCRIBE_REFUSED, _T_SUB_REFUSED, arg[0][0])
        return self._code

    def _send_subscribe(self, i, t, arg):
        need = 8
        for a in arg:
            need += len(a[0] if t == _SUBSCRIBE else a) + 3
        buf = self._sbuf if need <= len(self._sbuf) else bytearray(need)
        self._send(buf, encode_subscribe(buf, self.session.pids[i], arg, t == _UNSUBSCRIBE))

    async def _slot(self, t):
        # A free session slot, waiting up to command_timeout.
        s = self.session
        end = _ticks_add(_ticks(), self._command_timeout)
        while True:
            i = s.take(t)
            if i >= 0:
                return i
            left = _ticks_diff(end, _ticks())
            if self._task is None:
                raise MQTTError(_ERR_NO_CONN, _T_NOT_CONNECTED)
            if left <= 0:
                raise MQTTError(_ERR_QUEUE_SIZE, _T_SLOTS_FULL, len(s.states))
            await self._until(_IDLE, left)

    def _acked(self, i, deadline):
        # Slot i's park woke: True if its ack came (the code in _code), False to sleep
        # on (a reconnect may still complete it); raises when the wait gives up.
        s = self.session
        if s.done(i):
            self._code = s.order[i]
            s.free(i)
            self._kick()
            return True
        if (self._connected or self._task is not None and self._reconnecting()) and (
            _ticks_diff(deadline, _ticks()) > 0
        ):
            return False
        t = b"\4\4\5\7\x09\x0b"[s.states[i]]  # the ack it waited for
        p = s.payloads[i]
        if p is not None and not isinstance(p, bytes):
            s.payloads[i] = bytes(p)  # the message outlives publish(): p may be reused
        s.unwait(i)  # the ack, or a resend, finishes it
        if self._connected:
            raise MQTTError(_ERR_TIMEOUT, _T_ACK_TIMEOUT, t, self._command_timeout)
        raise MQTTError(_ERR_CONN_LOST, _T_LOST_WAITING, t)

    # ---- writing -----------------------------------------------------------------------

    def _send(self, buf, n):
        # n bytes of buf, whole: to the socket now, or queued behind what waits in _out.
        net = self._net
        if net is None:
            raise MQTTError(_ERR_NO_CONN, _T_NOT_CONNECTED)
        if not self._out:
            w = net.write(buf, n)
            if w == n:
                self._last_sent = _ticks()
                return
            buf = buf[w or 0 : n]
            asyncio.create_task(self._flush(net))
        else:
            buf = buf[:n]
        self._out += buf

    def _send_publish(self, n, payload):
        # The PUBLISH header is in the send buffer (n bytes): one write with the payload
        # when it fits, else two.
        end = n + len(payload)
        sbuf = self._sbuf
        if end <= len(sbuf):
            sbuf[n:end] = payload
            self._send(sbuf, end)
        else:
            self._send(sbuf, n)
            self._send(payload, len(payload))

    def _send_ack(self, t, pid):
        # Through the send buffer: every write is whole or queued before anything awaits.
        self._send(self._sbuf, encode_ack(self._sbuf, t, pid))

    async def _flush(self, net):
        # What the socket did not take, written as it drains (MicroPython: aiohost's
        # link takes every write). Ends with its link.
        p = _Park(self, _WRITE)  # not in _idle: waking it would take the reader off too
        try:
            while self._out and self._net is net:
                await p
                if self._net is not net:
                    break
                w = net.write(self._out, len(self._out))
                if w:
                    self._out = self._out[w:]
                    self._last_sent = _ticks()
        except Exception as e:
            if self._net is net:
                self._close(e)
        self._kick()

    # ---- reading -----------------------------------------------------------------------

    def _handle(self, first, rl):
        t = first >> 4
        mv = self._rmv
        s = self.session
        if t == _PUBLISH:
            p = decode_publish(first, mv, 0, rl)
            qos = first >> 1 & 3
            pid = mv[p - 2] << 8 | mv[p - 1] if qos else 0
            if qos < 2 or s.remember_in(pid):
                self._deliver(mv, p, rl, qos, first & 1)
            if qos:
                self._send_ack(_PUBACK if qos == 1 else _PUBREC, pid)
        elif t == _PUBREL:
            pid = decode_ack(first, mv, 0, rl)
            if s.inbound is not None:
                s.inbound.forget(pid)
            self._send_ack(_PUBCOMP, pid)  # [MQTT-4.3.3-2]
        elif t == _PINGRESP:
            pass
        elif t == _CONNACK:
            self._connack(first, rl)
        elif t == _PUBACK or t == _PUBREC or t == _PUBCOMP or t == _SUBACK or t == _UNSUBACK:
            if t == _SUBACK:
                pid = decode_suback(first, mv, 0, rl)
                for h in self._handlers:  # a renewed subscription (connect() may wait)
                    if h[3] == -1 - pid:
                        h[3] = mv[2]
                        self._kick()
            else:
                pid = decode_ack(first, mv, 0, rl)
            i = s.ack(t, pid, mv[2] if t == _SUBACK else 0)
            if t == _PUBREC:
                self._send_ack(_PUBREL, pid)
            elif i >= 0 and self._waits[i] is not None:
                self._waits[i].wake()
        else:
            raise MQTTError(_ERR_PROTOCOL, _T_MUST_NOT_SEND, t)

    def _connack(self, first, rl):
        if self._connected:
            raise MQTTError(_ERR_PROTOCOL, _T_MUST_NOT_SEND, _CONNACK)
        mv = self._rmv
        rc = decode_connack(first, mv, 0, rl)
        if rc:
            raise MQTTError(_ERR_CONN_REFUSED, _T_CONN_REFUSED, rc)
        s = self.session
        s.connack(mv[0] & 1 == 1)
        self._connected = True
        self._attempt = 0
        # What the session holds, in the order first sent [MQTT-4.6.0-1]: PUBLISH again
        # with DUP and its id, or PUBREL for a PUBREC'd message the broker kept.
        last = 0
        while True:
            i = s.resend_next(last)
            if i < 0:
                break
            last = s.order[i]
            f = s.resend(i)
            if f >> 4 == _PUBREL:
                self._send_ack(_PUBREL, s.pids[i])
            else:
                p = s.payloads[i]
                n = encode_publish(self._sbuf, s.topics[i], len(p), f >> 1 & 3, f & 1,
                                   f & 8, s.pids[i], True)  # fmt: skip
                self._send_publish(n, p)
        # Every subscription the broker may not have: all without a session, and any
        # whose SUBACK never came. Their SUBACKs set the granted QoS; nobody waits.
        for h in self._handlers:
            if s.present and h[3] >= 0:
                continue
            i = s.take(_SUBSCRIBE)
            if i < 0:
                break  # every slot busy: the next CONNACK tries again
            s.unwait(i)
            h[3] = -1 - s.pids[i]
            self._send_subscribe(i, _SUBSCRIBE, ((h[0], h[2]),))
        self._kick()
        acb = self._target[5]
        if acb is not None:
            r = acb(self)
            if r is not None and hasattr(r, "send"):
                asyncio.create_task(r)

    def _deliver(self, mv, p, end, qos, retain):
        tl = mv[0] << 8 | mv[1]
        topic = str(mv[2 : 2 + tl], "utf-8")
        payload = bytes(mv[p:end])
        queued = False
        for h in self._handlers:
            if not matches(h[0], mv, 2, 2 + tl):
                continue
            fn = h[1]
            if fn is None:
                if not queued:
                    queued = True
                    self.messages().put(topic, payload, qos, retain)
                continue
            try:
                r = fn(self, payload, topic)
                if r is not None and hasattr(r, "send"):
                    asyncio.create_task(r)  # a coroutine function: its own task
            except Exception as e:
                self.last_error = e
