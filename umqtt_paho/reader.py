# umqtt_paho reader: the reading half of the synchronous driver (Paho embedded C's
# cycle, readPacket, deliverMessage, keepalive and waitfor), the base class of Client
# (client.py, the commands). Only these two modules and the port touch the network.
#
# Theory of operation
# - Reading: _cycle(ms) reads at most one packet (its first byte within ms, the rest
#   within command_timeout), handles it, then sends a PINGREQ if one is due. One thread
#   reads at a time (_rlock): a thread that is not the reader becomes it for one cycle;
#   the reader itself (the loop thread, or a callback of the reading thread) reads on,
#   nested. With the background loop (threadloop.py) only the loop thread reads; other
#   threads wait on its Signal.
# - Handling: what arrived goes to the session (session.py), which says what it
#   completed; the acks MQTT requires go out at once. A message function runs on the
#   reading thread; one that raises is reported (on_log) and the loop goes on.
# - Waiting: _waitfor() reads until a slot is free, a slot is acked, or nothing is left
#   unacknowledged, or the deadline passes: the one wait of publish, subscribe,
#   unsubscribe and flush (Paho's waitfor). From a callback on the reading thread it
#   reads nested, at most _MAX_NEST deep.
# - Keepalive: a PINGREQ goes out once nothing was sent or nothing received for half the
#   keepalive; a PINGRESP missing one keepalive later means a dead link (ERR_KEEPALIVE).
# - A received packet larger than the receive buffer is read through it, acked per its
#   QoS, dropped and counted (oversize_dropped); never allocated.
# - Any failure of the link goes through _close(e): the link closes, _connected goes
#   False and every waiter wakes and gives up at once.
# - Errors and log lines carry numbers (_T_*); errors.py, loaded only when one is put
#   into words, words them.

try:
    from micropython import const
except ImportError:  # CPython: the host port runs the same file
    const = int  # a function here would cost RAM on the board too

from .packet import (
    MQTTError,
    encode_ack,
    packet_type,
    decode_ack,
    decode_publish,
    decode_suback,
    matches,
)

# on_log levels, as paho-mqtt's MQTT_LOG_*
_LOG_WARNING = const(4)
_LOG_ERR = const(8)
_LOG_DEBUG = const(16)

_MAX_NEST = const(4)  # reads nested inside callbacks waiting for a free slot

# Packet types [MQTT-2.2.1]
_PUBLISH = const(3)
_PUBACK = const(4)
_PUBREC = const(5)
_PUBREL = const(6)
_PUBCOMP = const(7)
_SUBACK = const(9)
_UNSUBACK = const(11)
_PINGRESP = const(13)

# Error codes (errors.py has them all, with names and texts)
_ERR_PROTOCOL = const(2)
_ERR_NO_CONN = const(4)
_ERR_CONN_LOST = const(7)
_ERR_QUEUE_SIZE = const(15)
_ERR_KEEPALIVE = const(16)
_ERR_TIMEOUT = const(17)

# Texts of errors and log lines (errors.py; tests/test_texts.py checks the numbers)
_T_NOT_CONNECTED = const(15)
_T_CLOSED = const(17)
_T_STALLED = const(18)
_T_MUST_NOT_SEND = const(20)
_T_NO_PINGRESP = const(21)
_T_SLOTS_FULL = const(22)
_T_NESTED_FULL = const(23)
_T_HOOK_RAISED = const(31)
_T_UNKNOWN_ACK = const(38)
_T_STALE = const(41)
_T_NO_FUNCTION = const(42)
_T_LINK_FAILED = const(44)
_T_LENGTH_LONG = const(63)
_T_PINGRESP_LENGTH = const(72)

# What raised, for _T_HOOK_RAISED (errors.py names them)
_W_ON_SUBSCRIBE = const(2)
_W_ON_UNSUBSCRIBE = const(3)
_W_ON_PUBLISH = const(4)
_W_FUNCTION = const(5)
_W_LOOP_FAILURE = const(6)


class Reader:
    """The reading half of a Client (see client.py for the API)."""

    # Defaults in the class: an instance holds only what was set (RAM).
    on_message = None  # on_message(client, payload, topic) for unmatched messages
    on_log = None  # on_log(client, level, text)
    on_publish = None  # on_publish(client, pid): a QoS 1/2 publish completed
    on_subscribe = None  # on_subscribe(client, pid, granted): SUBACK codes (bytes)
    on_unsubscribe = None  # on_unsubscribe(client, pid)
    deliver_views = False  # True: topic and payload as memoryviews (no copy)
    oversize_dropped = 0
    unhandled = 0
    _views = None  # deliver_views: [topic view, payload view, its offset], reused
    _signal = None  # the loop thread's Signal (threadloop.py)
    _nest = 0  # reads nested inside callbacks waiting for a free slot
    _loop_running = False  # the loop thread runs (set before it starts)
    _loop_tid = None  # its thread id, once it runs

    def _close(self, e=None):
        # Any end of the link (a failure e, or on purpose): close it and wake every waiter.
        if e is not None:
            self.last_error = e
        self._connected = False
        net = self._net
        self._net = None
        if net is not None:
            try:
                net.close()
            except Exception:
                pass
        if self._signal is not None:
            self._signal.notify()

    def _failed(self, e):
        # A failure while reading: the link closes; loop_failure(client) decides.
        self._close(e)
        hook = self._loop_failure
        if hook is not None:
            try:
                return hook(self)
            except Exception as x:
                self._log(_LOG_ERR, _T_HOOK_RAISED, _W_LOOP_FAILURE, x)
        return 0  # BREAK_LOOP: the loop ends

    def _cycle(self, timeout_ms, deadline=None):
        # One read cycle: at most one packet, then the keepalive and the store's drain.
        # deadline: the caller's own bound (a command's), which the rest of a packet
        # begun in this cycle must also keep. One thread reads at a time: a thread that
        # is not the reader yet becomes it for this cycle; the reader itself (the loop
        # thread, or a callback of this thread) reads on, nested.
        me = self._port.thread_id()
        if self._reader != me:
            with self._rlock:
                self._reader = me
                try:
                    return self._cycle(timeout_ms, deadline)
                finally:
                    self._reader = None
        t = 0
        first = self._read_packet(timeout_ms, deadline)
        if first:
            t = self._handle(first, self._rl)
        ka = self._target[5]  # keepalive (ms)
        if ka and self._connected:
            port = self._port
            now = port.ticks_ms()
            if self._ping_sent is not None:
                if port.ticks_diff(now, self._ping_sent) >= ka:
                    raise MQTTError(_ERR_KEEPALIVE, _T_NO_PINGRESP, ka // 1000)
            elif port.ticks_diff(now, self._last_sent) >= ka >> 1 or (
                port.ticks_diff(now, self._last_recv) >= ka >> 1
            ):
                with self._wlock:
                    self._write(b"\xc0\x00", 2, self._command_timeout)  # PINGREQ
                self._ping_sent = now
        if self._fwd is not None and self._nest == 0:
            self._fwd.drain()
        return t

    # ---- reading ---------------------------------------------------------------------

    def _deadline(self, ms=None):
        port = self._port
        return port.ticks_add(port.ticks_ms(), self._command_timeout if ms is None else ms)

    def _left(self, deadline):
        port = self._port
        return port.ticks_diff(deadline, port.ticks_ms())

    def _read_exact(self, mv, n, deadline):
        net = self._net
        if net is None:
            raise MQTTError(_ERR_CONN_LOST, _T_CLOSED)
        got = net.read_into(mv, n, self._left(deadline))
        while got < n:
            left = self._left(deadline)
            if left <= 0:
                raise MQTTError(_ERR_TIMEOUT, _T_STALLED, got, n, self._command_timeout)
            got += net.read_into(mv[got:], n - got, left)

    def _read_packet(self, timeout_ms, bound=None):
        # One packet into _rmv (its body at offset 0); returns its first byte, or 0 if
        # no packet began within timeout_ms (or it was too large: dropped).
        net = self._net
        if net is None:
            raise MQTTError(_ERR_CONN_LOST, _T_CLOSED)
        mv = self._rmv
        if net.read_into(mv, 1, timeout_ms) == 0:
            return 0
        first = mv[0]
        packet_type(first)  # reserved types and flag bits [MQTT-2.2.2-2]
        # The packet has begun: the rest must follow within command_timeout, and within
        # the caller's bound if it has one.
        deadline = self._deadline()
        if bound is not None and self._port.ticks_diff(bound, deadline) < 0:
            deadline = bound
        # The remaining length: 7 bits per byte, low first, at most 4 bytes [2.2.3]
        rl = shift = 0
        while True:
            self._read_exact(mv, 1, deadline)
            rl |= (mv[0] & 0x7F) << shift
            if mv[0] < 0x80:
                break
            shift += 7
            if shift == 28:
                raise MQTTError(_ERR_PROTOCOL, _T_LENGTH_LONG)
        self._rl = rl
        size = len(mv)
        if rl <= size:
            if rl:
                self._read_exact(mv, rl, deadline)
            self._last_recv = self._port.ticks_ms()
            return first
        # Larger than the receive buffer: oversize.py reads it through and drops it.
        from .oversize import drop

        return drop(self, first, rl, deadline)

    # ---- handling --------------------------------------------------------------------

    def _handle(self, first, rl):
        t = first >> 4
        mv = self._rmv
        s = self.session
        if t == _PUBLISH:
            payload = decode_publish(first, mv, 0, rl)
            qos = first >> 1 & 3
            # What the callback cannot see in (client, payload, topic): small ints.
            self.last_qos = qos
            self.last_retain = first & 1
            self.last_dup = first >> 3 & 1
            pid = mv[payload - 2] << 8 | mv[payload - 1] if qos else 0
            self.last_mid = pid
            if qos < 2:
                self._deliver(mv, payload, rl)
                if qos:
                    self._send_ack(_PUBACK, pid)
            else:
                # Exactly once: deliver on first sight, remember the id until PUBREL,
                # and only ack a redelivery [MQTT-4.3.3-2].
                new = s.remember_in(pid)
                if new:
                    if new > 1:
                        self._log(_LOG_WARNING, _T_STALE, s.inbound.last_evicted)
                    self._deliver(mv, payload, rl)
                self._send_ack(_PUBREC, pid)
        elif t == _PUBREL:
            pid = decode_ack(first, mv, 0, rl)
            if s.inbound is not None:
                s.inbound.forget(pid)
            self._send_ack(_PUBCOMP, pid)  # [MQTT-4.3.3-2]: always answered
        elif t == _PINGRESP:
            if rl:
                raise MQTTError(_ERR_PROTOCOL, _T_PINGRESP_LENGTH, rl)
            self._ping_sent = None
        elif t == _SUBACK or t == _PUBACK or t == _PUBREC or t == _PUBCOMP or t == _UNSUBACK:
            if t == _SUBACK:
                pid = decode_suback(first, mv, 0, rl)
                if self.on_subscribe is not None:
                    self._hook(self.on_subscribe, _W_ON_SUBSCRIBE, pid, bytes(mv[2:rl]))
            else:
                pid = decode_ack(first, mv, 0, rl)
                if t == _UNSUBACK:
                    self._hook(self.on_unsubscribe, _W_ON_UNSUBSCRIBE, pid)
            fwd = self._fwd
            lseq = 0
            with self._tlock:
                i = s.ack(t, pid, mv[2] if t == _SUBACK else 0)
                if i >= 0 and fwd is not None and t < _SUBACK:
                    lseq = fwd.acked(i, t)  # the outbox lets the record go
            if lseq:
                fwd.logged(lseq, t)  # the flash log: acked, or PUBREC'd (before PUBREL)
            if t == _PUBREC:
                # Released even if nothing waits for it, so the broker can finish.
                self._send_ack(_PUBREL, pid)
            if i < 0:
                self._log(_LOG_DEBUG, _T_UNKNOWN_ACK, t, pid)
            else:
                if self._signal is not None:
                    self._signal.notify()
                if t == _PUBACK or t == _PUBCOMP:
                    self._hook(self.on_publish, _W_ON_PUBLISH, pid)
        else:
            # CONNECT, SUBSCRIBE, ... only a client sends; a second CONNACK is an error too
            raise MQTTError(_ERR_PROTOCOL, _T_MUST_NOT_SEND, t)
        return t

    def _deliver(self, mv, payload, rl):
        # To every function whose filter matches, else on_message. The receive buffer is
        # reused by the next read: topic and payload are copied, unless deliver_views is
        # set: then they are memoryviews of it, reused while messages keep the same
        # topic length and payload position (telemetry and commands usually do), so
        # steady traffic allocates nothing per message.
        tl = mv[0] << 8 | mv[1]
        topic = data = None
        if self.deliver_views:
            v = self._views
            if v is None:
                v = self._views = [mv[0:0], mv[0:0], -1]  # made once, then reused
            topic = v[0]
            if len(topic) != tl:
                topic = v[0] = mv[2 : 2 + tl]
            data = v[1]
            if v[2] != payload or len(data) != rl - payload:
                data = v[1] = mv[payload:rl]
                v[2] = payload
        fn = None
        for h in self._handlers:
            if h[1] is not None and matches(h[0], mv, 2, 2 + tl):
                fn = h[1]
                if topic is None:
                    topic = str(mv[2 : 2 + tl], "utf-8")
                    data = bytes(mv[payload:rl])
                self._hook(fn, _W_FUNCTION, data, topic)
        if fn is None:
            fn = self.on_message
            if fn is None:
                self.unhandled += 1
                self._log(_LOG_WARNING, _T_NO_FUNCTION)
                return
            if topic is None:
                topic = str(mv[2 : 2 + tl], "utf-8")
                data = bytes(mv[payload:rl])
            self._hook(fn, _W_FUNCTION, data, topic)

    def _hook(self, fn, what, a=None, b=None):
        # An application callback: fn(client), fn(client, a) or fn(client, a, b). One
        # that raises is reported and must not take the loop (or the session) down.
        if fn is not None:
            try:
                if a is None:
                    fn(self)
                elif b is None:
                    fn(self, a)
                else:
                    fn(self, a, b)
            except Exception as e:
                if what == _W_FUNCTION:
                    self.last_error = e
                self._log(_LOG_ERR, _T_HOOK_RAISED, what, e)

    # ---- writing ---------------------------------------------------------------------

    def _write(self, buf, n, timeout_ms):
        # Caller holds _wlock.
        net = self._net
        if net is None:
            raise MQTTError(_ERR_NO_CONN, _T_NOT_CONNECTED)
        try:
            net.write(buf, n, timeout_ms)
        except Exception as e:
            self._close(e)
            raise
        self._last_sent = self._port.ticks_ms()

    def _send_ack(self, t, pid):
        with self._wlock:
            # The send buffer: every write holds _wlock from encoding to the last byte.
            self._write(self._sbuf, encode_ack(self._sbuf, t, pid), self._command_timeout)

    # ---- waiting for the session -----------------------------------------------------

    def _waitfor(self, t, i, deadline):
        # Paho's waitfor, the one wait of every command: read (or, while the loop
        # thread reads, wait for its Signal) until what the caller waits for holds:
        #   t > 0   a free session slot for packet type t, with a fresh packet id:
        #           returns its index; raises ERR_QUEUE_SIZE when none freed in time;
        #   t == 0  slot i's ack: returns 0, or ERR_CONN_LOST / ERR_TIMEOUT;
        #   t < 0   no accepted message left unacknowledged (flush): the same.
        # A failure while reading for a slot propagates (nothing was accepted); while
        # waiting for acks it closes the link (the session keeps the messages).
        s = self.session
        me = self._port.thread_id()
        while True:
            gen = self._signal.gen if self._signal is not None else 0
            if t > 0:
                with self._tlock:
                    i = s.take(t)
                if i >= 0:
                    return i
            elif s.done(i) if t == 0 else not self.pending():
                return 0
            left = self._left(deadline)
            if not self._connected or left <= 0:
                if t > 0:
                    raise MQTTError(_ERR_QUEUE_SIZE, _T_SLOTS_FULL, len(s.states))
                return _ERR_TIMEOUT if self._connected else _ERR_CONN_LOST
            if left > self._cycle_timeout:
                left = self._cycle_timeout
            try:
                if self._loop_running and me != self._loop_tid:
                    self._signal.wait(gen, left)  # the loop thread reads for us
                elif self._reader == me:
                    # In a callback on the reading thread: read on, nested, at most
                    # _MAX_NEST deep.
                    if self._nest >= _MAX_NEST:
                        raise MQTTError(_ERR_QUEUE_SIZE, _T_NESTED_FULL, self._nest)
                    self._nest += 1
                    try:
                        self._cycle(left, deadline)
                    finally:
                        self._nest -= 1
                else:
                    self._cycle(left, deadline)
            except Exception as e:
                if t > 0:
                    raise
                self._close(e)
                self._log(_LOG_WARNING, _T_LINK_FAILED, e)

    # ---- logging ---------------------------------------------------------------------

    def _log(self, level, text, a=None, b=None, c=None):
        # The words (text number `text` of errors.py) are built only for on_log, or for
        # a warning or an error printed when nobody listens.
        fn = self.on_log
        if fn is None and level != _LOG_WARNING and level != _LOG_ERR:
            return
        try:
            from .errors import text_of

            line = text_of(text, a, b, c)
        except (ImportError, MemoryError):  # errors.py not installed, or no RAM for it
            line = "%d %r %r" % (text, a, b)
        if fn is None:
            print("umqtt_paho:", line)
            return
        try:
            fn(self, level, line)
        except Exception:
            pass
