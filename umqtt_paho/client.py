# umqtt_paho Client: the MQTT protocol state machine, in the shape of the Paho
# embedded C client (MQTTClient.c).
#
# Theory of operation
# - Connection: connect() opens the port's Network (DNS, TCP, TLS inside
#   command_timeout), sends CONNECT, and waits for CONNACK under the same deadline. After
#   a CONNACK that found no session it renews every registered subscription. State:
#   _connected (bool). Any failure goes through _fail(): it closes the link, sets
#   _connected False and wakes every waiter, who then raise ERR_CONN_LOST at once.
# - Reading: _cycle(ms) reads at most one packet (first byte within ms, the rest within
#   command_timeout), handles it in _handle(), then runs _keepalive(). Exactly one thread
#   reads at a time (_rlock); when the background loop runs, only the loop thread reads
#   and other threads wait on the port's Signal for the loop thread to record their ack.
#   A message function runs on the reading thread; a QoS 1/2 publish from it is sent
#   without waiting (the reader frees its slot when the ack comes), so a burst of
#   messages cannot nest reads one inside another. subscribe() from a callback reads
#   nested until its SUBACK.
# - Acks: every command that waits for an ack (PUBLISH QoS 1/2, SUBSCRIBE, UNSUBSCRIBE)
#   takes a slot in a fixed table (max_inflight slots, allocated in __init__): its packet
#   id, the state it waits in, and a result byte. The reader moves the state on
#   (PUBREC -> send PUBREL -> wait PUBCOMP) and marks it done; the waiter frees the slot.
# - Inbound QoS 2: packet ids of PUBLISHes delivered but not yet released (PUBREL) are
#   kept in a fixed table, so a redelivery with DUP is acked but not delivered twice
#   [MQTT-4.3.3-2]. It is cleared when a CONNACK finds no session. MQTT sets no limit on
#   how many await PUBREL: when the table is full the oldest id is forgotten (counted
#   in qos2_evicted), never the connection.
# - Keepalive: a PINGREQ goes out once nothing was sent or nothing received for half the
#   keepalive; if its PINGRESP has not come one keepalive later the link is declared dead
#   (ERR_KEEPALIVE). A half-open link is so found within 1.5 x keepalive.
# - Buffers: the receive buffer (max_packet_size), the send buffer and the ack buffer are
#   allocated once. A PUBLISH whose payload fits the send buffer leaves in one write.
#   A received packet larger than the receive buffer is drained through it, acked per
#   its QoS, counted (oversize_dropped) and reported through on_log; never allocated.
# - Store and forward (outbox= / store=): forward.py, imported only then, queues what
#   cannot go out now and drains it from each read cycle; a slot then keeps the
#   message's outbox offset (_slot_off) and flash log seq (_slot_lseq), settled here on
#   the ack (outbox done, log ack) and, for QoS 2, on PUBREC (log release).
# - Failures in the background loop reach loop_failure(client): RECOVERED keeps the loop
#   going (after the hook reconnected), anything else ends it. The failure itself is in
#   client.last_error. A message callback that raises is reported through on_log and
#   does not end the loop.

try:
    from micropython import const
except ImportError:  # CPython: the host port runs the same file
    def const(x):
        return x

from . import packet as _pk
from .errors import (
    MQTTError,
    ERR_CONN_LOST,
    ERR_CONN_REFUSED,
    ERR_KEEPALIVE,
    ERR_NO_CONN,
    ERR_NOT_SUPPORTED,
    ERR_PROTOCOL,
    ERR_QUEUE_SIZE,
    ERR_SUBSCRIBE_REFUSED,
    ERR_TIMEOUT,
    ERR_TLS,
    connack_string,
)
from .topic import matches, filter_problem, topic_problem

BREAK_LOOP = const(0)
RECOVERED = const(1)

MQTTv31 = const(3)
MQTTv311 = const(4)

# on_log levels, as paho-mqtt's MQTT_LOG_*
LOG_INFO = const(1)
LOG_NOTICE = const(2)
LOG_WARNING = const(4)
LOG_ERR = const(8)
LOG_DEBUG = const(16)

# States of an in-flight slot
_FREE = const(0)
_WAIT_PUBACK = const(1)
_WAIT_PUBREC = const(2)
_WAIT_PUBCOMP = const(3)
_WAIT_SUBACK = const(4)
_WAIT_UNSUBACK = const(5)
_DONE = const(6)
_RESERVED = const(7)  # taken by publish(), not yet filled: invisible to _resend
_STALE_EPOCHS = const(4)  # reconnects an inbound QoS 2 id may go unmentioned
_MAX_NEST = const(4)  # reads nested inside callbacks waiting for a free slot

_SENT = const(8)  # slot flag: the PUBLISH went out at least once (resend sets DUP)

_PUBLISH = const(3)
_PUBACK = const(4)
_PUBREC = const(5)
_PUBREL = const(6)
_PUBCOMP = const(7)
_SUBACK = const(9)
_UNSUBACK = const(11)
_PINGRESP = const(13)
_CONNACK = const(2)


def _default_port():
    from .ports import select

    return select()


def _to_bytes(s):
    if isinstance(s, str):
        return s.encode()
    return s


class _NoLock:
    # For ports without threads: `with` works, nothing is locked. (No *args: building
    # that tuple would allocate on every `with`.)
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return False

    def acquire(self, blocking=True, timeout=-1):
        return True

    def release(self):
        pass


class Client:
    """An MQTT 3.1/3.1.1 client (API of the Paho-embedded-style 'Lightweight MQTT Library').

    client_id: str or bytes, may be empty with clean_session True (MQTT 3.1.1 only).
    cycle_timeout: ms each read cycle waits for a packet to start.
    command_timeout: ms bound on every ack wait, on connect (DNS, TCP, TLS, CONNACK), and
        on the rest of a packet once its first byte has arrived.
    protocol: MQTTv311 (4) or MQTTv31 (3).
    port: a port module or object (see ports/cpython.py); chosen automatically if None.
    max_packet_size: size of the receive buffer; larger inbound packets are dropped.
    send_buffer: size of the send buffer; a larger PUBLISH payload is written straight
        from the caller's object in a second write.
    max_inflight: commands that may wait for an ack at once (threads, nested callbacks).
    max_inflight_in: inbound QoS 2 messages awaiting PUBREL at once.
    outbox: an outbox.Outbox: QoS 1/2 messages published while disconnected, while the
        in-flight table is full or while older ones wait are copied into it and sent
        from it in order (store and forward, docs/store-and-forward.md).
    store: a flashlog.FlashLog: every QoS 1/2 message is logged on flash first and
        acknowledged there once the broker acknowledged it; after a reset, a new
        Client on the same log sends what was not acknowledged. The outbox (default
        Outbox(2048)) then holds a window of the log.
    """

    def __init__(
        self,
        client_id,
        clean_session=True,
        cycle_timeout=500,
        command_timeout=60000,
        protocol=MQTTv311,
        port=None,
        max_packet_size=1024,
        send_buffer=256,
        max_inflight=20,
        max_inflight_in=256,
        outbox=None,
        store=None,
    ):
        client_id = _to_bytes(client_id)
        if protocol != MQTTv311 and protocol != MQTTv31:
            raise ValueError("protocol must be MQTTv311 (4) or MQTTv31 (3)")
        if not client_id and not clean_session:
            raise ValueError("an empty client id needs clean_session=True [MQTT-3.1.3-7]")
        if not client_id and protocol == MQTTv31:
            raise ValueError("MQTT 3.1 does not allow an empty client id")
        if cycle_timeout <= 0 or command_timeout <= 0:
            raise ValueError("cycle_timeout and command_timeout must be > 0 ms")
        if max_packet_size < 16 or send_buffer < 16 or max_inflight < 1 or max_inflight_in < 1:
            raise ValueError("buffer sizes must be >= 16 and table sizes >= 1")
        if port is None:
            port = _default_port()
        self._port = port
        self._ticks = port.ticks_ms
        self._diff = port.ticks_diff
        self.client_id = client_id
        self.clean_session = clean_session
        self.protocol = protocol
        self._cycle_timeout = cycle_timeout
        self._command_timeout = command_timeout

        # Buffers: allocated here, never grown.
        self._rbuf = bytearray(max_packet_size)
        self._rmv = memoryview(self._rbuf)
        self._sbuf = bytearray(send_buffer)
        self._abuf = bytearray(4)  # acks and PINGREQ, written by the reader
        self._hbuf = bytearray(5)  # fixed header: type byte + up to 4 length bytes
        self._b1 = bytearray(1)
        self._b1mv = memoryview(self._b1)
        self._rl = 0

        # In-flight table (outgoing commands awaiting acks) and inbound QoS 2 ids.
        self._slot_pid = [0] * max_inflight
        self._slot_state = bytearray(max_inflight)
        self._slot_result = bytearray(max_inflight)
        self._slot_waiter = bytearray(max_inflight)  # 1: a thread waits; 0: reader frees
        # Accepted QoS 1/2 messages, kept (by reference) until acked, for resending.
        self._slot_topic = [None] * max_inflight
        self._slot_payload = [None] * max_inflight
        self._slot_flags = bytearray(max_inflight)  # qos << 1 | retain
        self._slot_seq = [0] * max_inflight  # order first sent
        self._slot_off = [-1] * max_inflight  # the message's record in the outbox, or -1
        self._slot_lseq = [0] * max_inflight  # its seq in the flash log, or 0
        self._seq = 0
        # Inbound QoS 2 ids awaiting PUBREL, 2 bytes each (0: free), and the connection
        # each came on: 3 bytes an entry (768 B at the default 256).
        self._in_ids = bytearray(2 * max_inflight_in)
        self._in_epoch = bytearray(max_inflight_in)
        self._epoch = 0  # counts successful connections (mod 256)
        self._pid = 0

        # Store and forward (docs/store-and-forward.md): its code only when used.
        self.outbox = None
        self.store = None
        self._fwd = None
        self._behind = False
        self.drain_burst = 4  # queued messages sent per read cycle at most
        self.queue_qos0 = False  # True: QoS 0 publishes are queued too while offline
        if outbox is not None or store is not None:
            from . import forward

            self._fwd = forward
            forward.setup(self, outbox, store)

        # Subscriptions: [filter bytes, function, qos]; kept across reconnects.
        self._handlers = []

        self._net = None
        self._connected = False
        self._rc = -1
        self.session_present = False
        self.last_error = None
        self.oversize_dropped = 0
        self.unhandled = 0
        self.qos2_evicted = 0
        self.on_message = None  # on_message(client, payload, topic) for unmatched messages
        self.on_log = None  # on_log(client, level, text)
        self.on_publish = None  # on_publish(client, pid): a QoS 1/2 publish completed
        self.on_subscribe = None  # on_subscribe(client, pid, granted): SUBACK codes (bytes)
        self.on_unsubscribe = None  # on_unsubscribe(client, pid)
        # The message being delivered: its QoS, retain and DUP flags and packet id.
        self.last_qos = 0
        self.last_retain = 0
        self.last_dup = 0
        self.last_mid = 0
        self.tls_insecure = False  # True: accept an ssl_ctx that does not verify
        # True: a QoS 1/2 publish while disconnected is accepted into the in-flight
        # table (if a slot is free) and sent after the next CONNACK.
        self.queue_offline = False
        self.deliver_views = False  # True: topic and payload as memoryviews (no copy)
        self._topic_ok = None  # the last bytes topic that passed the checks
        self._topic_view = None
        self._payload_view = None
        self._payload_view_at = 0

        self._host = None
        self._port_no = 1883
        self._keepalive_s = 0
        self._keepalive_ms = 0
        self._ssl_ctx = None
        self._breconnect_cb = None
        self._aconnect_cb = None
        self._loop_failure = None
        self._username = None
        self._password = None
        self._will_topic = None
        self._will_payload = b""
        self._will_qos = 0
        self._will_retain = False

        self._last_sent = 0
        self._last_recv = 0
        self._ping_outstanding = False
        self._ping_sent = 0

        threads = port.start_thread is not None
        self._wlock = port.allocate_lock() if threads else _NoLock()
        self._rlock = port.allocate_lock() if threads else _NoLock()
        self._tlock = port.allocate_lock() if threads else _NoLock()
        self._slock = port.allocate_lock() if threads else _NoLock()  # the flash log
        self._signal = port.Signal() if threads else None
        self._reader = None  # thread id of the thread inside _cycle
        self._nest = 0
        self._looping = False
        self._loop_running = False
        self._loop_tid = None
        self._stopped = False  # disconnect() was called: recovery hooks stop

    def __repr__(self):
        # Never the password [issue: security by default]
        return "<umqtt_paho.Client %r %s>" % (
            self.client_id,
            "connected" if self._connected else "disconnected",
        )

    # ---- configuration ---------------------------------------------------------------

    def set_username_pw(self, username, password=""):
        """User name and password for the next CONNECT (password may be empty)."""
        self._username = None if username is None else _to_bytes(username)
        self._password = None if password is None else _to_bytes(password)

    def set_will(self, topic, payload, qos=0, retain=True):
        """Last will: published by the broker if the link dies without DISCONNECT."""
        topic = _to_bytes(topic)
        why = topic_problem(topic, 0, len(topic))
        if why:
            raise ValueError("will topic " + why)
        if qos not in (0, 1, 2):
            raise ValueError("will QoS must be 0, 1 or 2")
        self._will_topic = topic
        self._will_payload = _to_bytes(payload) if payload is not None else b""
        self._will_qos = qos
        self._will_retain = bool(retain)

    # ---- connection ------------------------------------------------------------------

    def connect(
        self,
        host,
        keepalive,
        port=1883,
        ssl_ctx=None,
        breconnect_cb=None,
        aconnect_cb=None,
        loop_failure=None,
        start_loop=True,
    ):
        """Connect to the broker; raises MQTTError or OSError if that fails.

        get_rc() then holds the CONNACK return code (-1: no CONNACK: network error).
        """
        if not 0 <= keepalive <= 65535:
            raise ValueError("keepalive must be 0..65535 seconds")
        self._host = host
        self._port_no = port
        self._keepalive_s = keepalive
        self._keepalive_ms = keepalive * 1000
        self._ssl_ctx = ssl_ctx
        self._breconnect_cb = breconnect_cb
        self._aconnect_cb = aconnect_cb
        self._loop_failure = loop_failure
        self._stopped = False
        rc = self._connect_once()
        if rc:
            raise MQTTError(ERR_CONN_REFUSED, "%s (CONNACK %d)" % (connack_string(rc), rc))
        if start_loop:
            self.loop()
        return rc

    def get_rc(self):
        """Return code of the last connection attempt: 0 accepted, 1-5 CONNACK refusal,
        -1 no CONNACK (network error or timeout)."""
        return self._rc

    def connected(self):
        return self._connected

    def reconnect(self):
        """Connect again with the previous parameters; returns the return code.

        breconnect_cb(client) runs first (bring the network back there). Network errors
        do not raise: they return -1, with the exception in client.last_error.
        """
        if self._host is None:
            raise MQTTError(ERR_NO_CONN, "reconnect() before connect()")
        cb = self._breconnect_cb
        if cb is not None:
            try:
                cb(self)
            except Exception as e:  # reported; the attempt goes on
                self._log(LOG_ERR, "breconnect_cb raised %r" % (e,))
        try:
            return self._connect_once()
        except Exception as e:
            self.last_error = e
            self._rc = -1
            self._log(LOG_WARNING, "reconnect failed: %r" % (e,))
            return -1

    def _connect_once(self):
        # Open, CONNECT, CONNACK, resend, renew subscriptions: under command_timeout.
        ctx = self._ssl_ctx
        if ctx is not None and not self.tls_insecure:
            # Security by default: a context that does not check the broker's
            # certificate (verify_mode CERT_NONE = 0) or name is refused unless the
            # application opted out explicitly.
            no_cert = getattr(ctx, "verify_mode", 2) == 0
            if no_cert or getattr(ctx, "check_hostname", True) is False:
                raise MQTTError(
                    ERR_TLS,
                    "ssl_ctx does not verify the broker's certificate and host name; "
                    "set client.tls_insecure = True to connect anyway",
                )
        self._close()
        self._rc = -1
        port = self._port
        deadline = port.ticks_add(self._ticks(), self._command_timeout)
        net = port.Network()
        try:
            net.open(self._host, self._port_no, self._ssl_ctx, self._command_timeout)
        except Exception:
            net.close()
            raise
        self._net = net
        try:
            rc = self._handshake(deadline)
        except Exception as e:
            self._close()
            self.last_error = e
            raise
        self._rc = rc
        if rc:
            self._close()
            return rc
        self._connected = True
        self._epoch = (self._epoch + 1) & 0xFF
        if not self.session_present:
            # No session on the broker: our inbound QoS 2 state is void [MQTT-3.1.2-6],
            # and every subscription must be made again.
            ids = self._in_ids
            for i in range(len(ids)):
                ids[i] = 0
            for h in self._handlers:
                h[3] = -1
        try:
            self._drop_lost_acks()
            self._resend()  # first: acks for these free slots the resubscribe may need
            # Every subscription not confirmed by a SUBACK: after a CONNACK without a
            # session, and any whose SUBACK was lost with the link (the broker may have
            # created the session, so session present says nothing about it).
            self._resubscribe()
        except Exception as e:
            self._fail(e)  # never connected() with half a session
            raise
        if self.outbox is not None:
            self._fwd.drain(self)  # a first burst of the backlog; each read cycle sends more
        cb = self._aconnect_cb
        if cb is not None:
            try:
                cb(self)
            except Exception as e:
                self._log(LOG_ERR, "aconnect_cb raised %r" % (e,))
        return 0

    def _handshake(self, deadline):
        sbuf = self._sbuf
        cid = self.client_id
        need = 32 + len(cid)
        if self._will_topic is not None:
            need += len(self._will_topic) + len(self._will_payload)
        if self._username is not None:
            need += len(self._username)
        if self._password is not None:
            need += len(self._password)
        buf = sbuf if need <= len(sbuf) else bytearray(need)
        n = _pk.encode_connect(
            buf,
            cid,
            self.clean_session,
            self._keepalive_s,
            self._will_topic,
            self._will_payload,
            self._will_qos,
            self._will_retain,
            self._username,
            self._password if self._username is not None else None,
            self.protocol,
        )
        with self._wlock:
            self._write(buf, n, self._left(deadline))
        self._last_recv = self._ticks()
        self._ping_outstanding = False
        while True:
            left = self._left(deadline)
            if left <= 0:
                raise MQTTError(
                    ERR_TIMEOUT,
                    "no CONNACK within command_timeout (%d ms)" % self._command_timeout,
                )
            first = self._read_packet(left, deadline)
            if not first:
                continue
            if first >> 4 != _CONNACK:
                # The first packet from the server must be CONNACK [MQTT-3.2.0-1]
                raise MQTTError(
                    ERR_PROTOCOL,
                    "expected CONNACK, got %s [MQTT-3.2.0-1]" % _pk.type_name(first >> 4),
                )
            rc = _pk.decode_connack(first, self._rmv, 0, self._rl)
            self.session_present = bool(self._rbuf[0] & 1)
            return rc

    def _resubscribe(self):
        for h in list(self._handlers):
            if h[3] >= 0:
                continue  # confirmed by a SUBACK in this session
            try:
                granted = self._subscribe_wait(h[0], h[2])
            except MQTTError as e:
                if e.code != ERR_SUBSCRIBE_REFUSED:
                    raise
                self._log(LOG_ERR, str(e))
                continue
            h[3] = granted

    def disconnect(self, timeout=None):
        """Send DISCONNECT and close. With timeout (ms), wait that long at most for the
        background loop to end. Returns within the timeout even if the broker is gone."""
        self._looping = False
        self._stopped = True
        if self._connected and self._net is not None:
            bound = self._command_timeout if timeout is None else max(1, timeout)
            try:
                with self._wlock:
                    n = _pk.encode_disconnect(self._abuf)
                    self._net.write(self._abuf, n, bound)
            except Exception as e:
                self._log(LOG_INFO, "DISCONNECT not sent: %r" % (e,))
        self._close()
        if self.store is not None:
            with self._slock:
                self.store.sync()  # acks and messages still in RAM: before deep sleep
        if timeout and self._loop_running and self._port.thread_id() != self._loop_tid:
            deadline = self._port.ticks_add(self._ticks(), timeout)
            while self._loop_running and self._left(deadline) > 0:
                self._port.sleep_ms(5)

    def _close(self):
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

    def _fail(self, e):
        # Any failure of the link: close it and wake every waiter.
        self.last_error = e
        self._close()

    # ---- loop ------------------------------------------------------------------------

    def loop(self):
        """Start the background read loop (connect() does it unless start_loop=False)."""
        if self._port.start_thread is None:
            raise MQTTError(
                ERR_NOT_SUPPORTED, "this port has no threads: call client.cycle() in your loop"
            )
        if self._loop_running:
            return
        self._looping = True
        self._loop_running = True
        try:
            self._port.start_thread(self._loop_main, ())
        except Exception:
            self._loop_running = False
            raise

    def _loop_main(self):
        self._loop_tid = self._port.thread_id()
        try:
            while self._looping:
                try:
                    if not self._connected:
                        # Not connected (a hook said RECOVERED without reconnecting):
                        # fail again, but at most once per cycle_timeout.
                        self._port.sleep_ms(self._cycle_timeout)
                        if not self._looping:
                            break
                        raise MQTTError(ERR_NO_CONN, "not connected")
                    with self._rlock:
                        self._reader = self._loop_tid
                        try:
                            self._cycle(self._cycle_timeout)
                        finally:
                            self._reader = None
                except Exception as e:
                    if not self._looping:
                        break  # disconnect() closed the link under us
                    self._fail(e)
                    self._log(LOG_WARNING, "read loop failure: %r" % (e,))
                    if self._call_loop_failure() != RECOVERED:
                        break
        finally:
            self._looping = False
            self._loop_running = False
            self._loop_tid = None
            if self._signal is not None:
                self._signal.notify()

    def _call_loop_failure(self):
        hook = self._loop_failure
        if hook is None:
            return BREAK_LOOP
        try:
            return hook(self)
        except Exception as e:
            self._log(LOG_ERR, "loop_failure raised %r: loop ends" % (e,))
            return BREAK_LOOP

    def cycle(self, timeout_ms=None):
        """Without the background loop: read and handle at most one packet, waiting up
        to timeout_ms (default cycle_timeout) for it, and send a PINGREQ when due.

        Returns the packet type handled, or 0. On failure the link is closed and
        loop_failure(client) is called: RECOVERED makes cycle() return -1, otherwise the
        error is raised.
        """
        if self._loop_running:
            raise MQTTError(ERR_NOT_SUPPORTED, "cycle() while the background loop runs")
        if timeout_ms is None:
            timeout_ms = self._cycle_timeout
        try:
            if not self._connected:
                # Still down (a hook said RECOVERED while it waits to retry): wait out
                # the cycle, so a loop around cycle() does not spin.
                self._port.sleep_ms(timeout_ms)
                raise MQTTError(ERR_NO_CONN, "not connected")
            return self._cycle_as_reader(timeout_ms)
        except Exception as e:
            self._fail(e)
            if self._call_loop_failure() == RECOVERED:
                return -1
            raise

    def _cycle_as_reader(self, timeout_ms, deadline=None):
        me = self._port.thread_id()
        if self._reader == me:
            return self._cycle(timeout_ms, deadline)  # nested: from a callback of this reader
        with self._rlock:
            self._reader = me
            try:
                return self._cycle(timeout_ms, deadline)
            finally:
                self._reader = None

    def _cycle(self, timeout_ms, deadline=None):
        # deadline: the caller's own bound (a command's), which the rest of a packet
        # begun in this cycle must also keep.
        t = 0
        first = self._read_packet(timeout_ms, deadline)
        if first:
            t = self._handle(first, self._rl)
        self._keepalive()
        if self.outbox is not None and self._nest == 0:
            self._fwd.drain(self)
        return t

    # ---- reading ---------------------------------------------------------------------

    def _left(self, deadline):
        return self._diff(deadline, self._ticks())

    def _read_exact(self, mv, n, deadline):
        net = self._net
        if net is None:
            raise MQTTError(ERR_CONN_LOST, "connection closed")
        got = net.read_into(mv, n, self._left(deadline))
        while got < n:
            left = self._left(deadline)
            if left <= 0:
                raise MQTTError(
                    ERR_TIMEOUT,
                    "broker stalled mid-packet: %d of %d bytes in %d ms"
                    % (got, n, self._command_timeout),
                )
            got += net.read_into(mv[got:], n - got, left)

    def _read_packet(self, timeout_ms, bound=None):
        # One packet into _rbuf (its body at offset 0); returns its first byte, or 0 if
        # no packet began within timeout_ms.
        net = self._net
        if net is None:
            raise MQTTError(ERR_CONN_LOST, "connection closed")
        b1 = self._b1
        if net.read_into(self._b1mv, 1, timeout_ms) == 0:
            return 0
        h = self._hbuf
        h[0] = first = b1[0]
        # The packet has begun: the rest must follow within command_timeout, and within
        # the caller's bound if it has one.
        deadline = self._port.ticks_add(self._ticks(), self._command_timeout)
        if bound is not None and self._diff(bound, deadline) < 0:
            deadline = bound
        i = 1
        while True:
            self._read_exact(self._b1mv, 1, deadline)
            h[i] = b1[0]
            i += 1
            if _pk.header_size(h, 0, i) > 0:
                break
        rl = _pk.remaining_length(h, 1, i)
        self._rl = rl
        _pk.packet_type(first)  # reserved types and flag bits [MQTT-2.2.2-2]
        if rl > len(self._rbuf):
            self._drain_oversize(first, rl, deadline)
            self._last_recv = self._ticks()
            return 0
        if rl:
            self._read_exact(self._rmv, rl, deadline)
        self._last_recv = self._ticks()
        return first

    def _drain_oversize(self, first, rl, deadline):
        # Larger than the receive buffer: read it through the buffer and drop it. A
        # PUBLISH is still acked per its QoS so the broker does not send it forever.
        size = len(self._rbuf)
        self._read_exact(self._rmv, size, deadline)
        t = first >> 4
        qos = (first >> 1) & 3
        pid = 0
        if t == _PUBLISH and qos:
            tl = self._rbuf[0] << 8 | self._rbuf[1]
            if tl + 4 <= size:
                pid = self._rbuf[2 + tl] << 8 | self._rbuf[3 + tl]
        left = rl - size
        while left > 0:
            n = size if left > size else left
            self._read_exact(self._rmv, n, deadline)
            left -= n
        if t != _PUBLISH:
            raise MQTTError(
                ERR_PROTOCOL,
                "%s of %d bytes is larger than max_packet_size" % (_pk.type_name(t), rl),
            )
        self.oversize_dropped += 1
        self._log(
            LOG_WARNING,
            "dropped a PUBLISH of %d bytes: larger than max_packet_size %d" % (rl, size),
        )
        if qos == 1 and pid:
            self._send_ack(_PUBACK, pid)
        elif qos == 2 and pid:
            self._remember_in(pid)
            self._send_ack(_PUBREC, pid)

    # ---- handling --------------------------------------------------------------------

    def _handle(self, first, rl):
        t = first >> 4
        mv = self._rmv
        if t == _PUBLISH:
            self._on_publish(first, mv, rl)
        elif t == _PUBACK:
            self._acked(_pk.decode_ack(first, mv, 0, rl), _WAIT_PUBACK, t, 0)
        elif t == _PUBREC:
            pid = _pk.decode_ack(first, mv, 0, rl)
            i = self._find_slot(pid, _WAIT_PUBREC)
            if i >= 0:
                self._slot_state[i] = _WAIT_PUBCOMP
                lseq = self._slot_lseq[i]
                if lseq:
                    # On flash before the PUBREL: after a reset only the PUBREL is owed
                    # (a PUBLISH could arrive as a new message once this one is released).
                    try:
                        with self._slock:
                            self.store.release(lseq)
                    except Exception as e:
                        self._log(LOG_ERR, "flash log release(%d) failed: %r" % (lseq, e))
            else:
                self._log(LOG_DEBUG, "PUBREC for unknown packet id %d" % pid)
            # Release it even if we no longer wait for it, so the broker can finish.
            self._send_ack(_PUBREL, pid)
        elif t == _PUBREL:
            pid = _pk.decode_ack(first, mv, 0, rl)
            self._forget_in(pid)
            self._send_ack(_PUBCOMP, pid)  # [MQTT-4.3.3-2]: always answered
        elif t == _PUBCOMP:
            self._acked(_pk.decode_ack(first, mv, 0, rl), _WAIT_PUBCOMP, t, 0)
        elif t == _SUBACK:
            pid = _pk.decode_suback(first, mv, 0, rl)
            fn = self.on_subscribe
            if fn is not None:
                try:
                    fn(self, pid, bytes(mv[2:rl]))
                except Exception as e:
                    self._log(LOG_ERR, "on_subscribe raised %r" % (e,))
            self._acked(pid, _WAIT_SUBACK, t, mv[2])
        elif t == _UNSUBACK:
            pid = _pk.decode_ack(first, mv, 0, rl)
            fn = self.on_unsubscribe
            if fn is not None:
                try:
                    fn(self, pid)
                except Exception as e:
                    self._log(LOG_ERR, "on_unsubscribe raised %r" % (e,))
            self._acked(pid, _WAIT_UNSUBACK, t, 0)
        elif t == _PINGRESP:
            _pk.decode_pingresp(first, mv, 0, rl)
            self._ping_outstanding = False
        else:
            # CONNECT, SUBSCRIBE, ... only a client sends; a second CONNACK is an error too
            raise MQTTError(
                ERR_PROTOCOL, "the broker sent %s, which it must not [2.2.1]" % _pk.type_name(t)
            )
        return t

    def _acked(self, pid, state, t, result):
        i = self._find_slot(pid, state)
        if i < 0:
            # Late ack of a command that timed out, or a broker bug: nothing waits.
            self._log(LOG_DEBUG, "%s for unknown packet id %d" % (_pk.type_name(t), pid))
            return
        lseq = self._slot_lseq[i]
        with self._tlock:
            off = self._slot_off[i]
            if off >= 0:
                self.outbox.done(off)  # the record leaves the ring
            if self._slot_waiter[i]:
                self._slot_result[i] = result
                self._slot_state[i] = _DONE
            else:
                self._clear(i)  # nobody waits for it
        if lseq:
            with self._slock:
                self.store.ack(lseq)
        if self._signal is not None:
            self._signal.notify()
        fn = self.on_publish
        if fn is not None and (t == _PUBACK or t == _PUBCOMP):
            try:
                fn(self, pid)
            except Exception as e:
                self._log(LOG_ERR, "on_publish raised %r" % (e,))

    def _on_publish(self, first, mv, rl):
        payload = _pk.decode_publish(first, mv, 0, rl)
        qos = (first >> 1) & 3
        # What the callback cannot see in (client, payload, topic): small ints, no alloc.
        self.last_qos = qos
        self.last_retain = first & 1
        self.last_dup = (first >> 3) & 1
        pid = mv[payload - 2] << 8 | mv[payload - 1] if qos else 0
        self.last_mid = pid
        if qos == 0:
            self._deliver(first, mv, payload, rl)
        elif qos == 1:
            self._deliver(first, mv, payload, rl)
            self._send_ack(_PUBACK, pid)
        else:
            # Exactly once: deliver on first sight, remember the id until PUBREL, and
            # only ack a redelivery [MQTT-4.3.3-2].
            if self._remember_in(pid):
                self._deliver(first, mv, payload, rl)
            self._send_ack(_PUBREC, pid)

    def _remember_in(self, pid):
        # True if pid is new (and now remembered), False if it was already there.
        ids = self._in_ids
        epochs = self._in_epoch
        now = self._epoch
        free = -1
        stale = -1
        for i in range(len(epochs)):
            p = ids[2 * i] << 8 | ids[2 * i + 1]
            if p == pid:
                epochs[i] = now  # redelivered: the broker still has it
                return False
            if p == 0:
                if free < 0:
                    free = i
            elif stale < 0 and (now - epochs[i]) & 0xFF >= _STALE_EPOCHS:
                stale = i
        if free < 0:
            if stale < 0:
                # Forgetting an id the broker may still redeliver could deliver a
                # message twice. Close the link instead: after the reconnect the broker
                # resends those PUBRELs (freeing ids) and this PUBLISH.
                raise MQTTError(
                    ERR_QUEUE_SIZE,
                    "more than max_inflight_in=%d QoS 2 messages awaiting PUBREL" % len(epochs),
                )
            # The broker resends PUBREL or PUBLISH for every id it still holds after
            # each CONNACK [MQTT-4.4.0-1]: an id untouched over several reconnects is
            # one it no longer holds.
            free = stale
            self.qos2_evicted += 1
            self._log(
                LOG_WARNING,
                "forgot stale QoS 2 id %d" % (ids[2 * free] << 8 | ids[2 * free + 1]),
            )
        ids[2 * free] = pid >> 8
        ids[2 * free + 1] = pid & 0xFF
        epochs[free] = now
        return True

    def _forget_in(self, pid):
        ids = self._in_ids
        hi = pid >> 8
        lo = pid & 0xFF
        for i in range(0, len(ids), 2):
            if ids[i] == hi and ids[i + 1] == lo:
                ids[i] = 0
                ids[i + 1] = 0

    def _inbound_ids(self):
        # The QoS 2 ids awaiting PUBREL (for tests and diagnostics; allocates).
        ids = self._in_ids
        return [ids[i] << 8 | ids[i + 1] for i in range(0, len(ids), 2) if ids[i] | ids[i + 1]]

    def _deliver(self, first, mv, payload, rl):
        tl = mv[0] << 8 | mv[1]
        topic = None
        data = None
        delivered = False
        for h in self._handlers:
            if h[1] is not None and matches(h[0], mv, 2, 2 + tl):
                if topic is None:
                    topic = self._topic_object(mv, tl)
                    data = self._payload_object(mv, payload, rl)
                delivered = True
                self._call(h[1], topic, data)
        if not delivered:
            fn = self.on_message
            if fn is None:
                self.unhandled += 1
                self._log(LOG_WARNING, "message on a topic with no function and no on_message")
                return
            self._call(fn, self._topic_object(mv, tl), self._payload_object(mv, payload, rl))

    # The receive buffer is reused by the next read: copy, unless deliver_views is set.
    # Views are memoryviews of the buffer, reused while a message has the same topic
    # length and payload position as the one before (telemetry and commands usually
    # do), so steady traffic allocates nothing per message.

    def _topic_object(self, mv, tl):
        if not self.deliver_views:
            return str(mv[2 : 2 + tl], "utf-8")
        v = self._topic_view
        if v is None or len(v) != tl:
            v = self._topic_view = mv[2 : 2 + tl]
        return v

    def _payload_object(self, mv, start, end):
        if not self.deliver_views:
            return bytes(mv[start:end])
        v = self._payload_view
        if v is None or self._payload_view_at != start or len(v) != end - start:
            v = self._payload_view = mv[start:end]
            self._payload_view_at = start
        return v

    def _call(self, fn, topic, data):
        try:
            fn(self, data, topic)
        except Exception as e:
            # A faulty callback must not take the loop (or the session) down.
            self.last_error = e
            self._log(LOG_ERR, "message function raised %r" % (e,))

    # ---- keepalive -------------------------------------------------------------------

    def _keepalive(self):
        ka = self._keepalive_ms
        if not ka or not self._connected:
            return
        now = self._ticks()
        if self._ping_outstanding:
            if self._diff(now, self._ping_sent) >= ka:
                raise MQTTError(
                    ERR_KEEPALIVE,
                    "no PINGRESP within the keepalive (%d s): the link is dead" % (ka // 1000),
                )
        elif (
            self._diff(now, self._last_sent) >= ka >> 1
            or self._diff(now, self._last_recv) >= ka >> 1
        ):
            with self._wlock:
                n = _pk.encode_pingreq(self._abuf)
                self._write(self._abuf, n, self._command_timeout)
            self._ping_outstanding = True
            self._ping_sent = now

    # ---- writing ---------------------------------------------------------------------

    def _write(self, buf, n, timeout_ms):
        # Caller holds _wlock.
        net = self._net
        if net is None:
            raise MQTTError(ERR_NO_CONN, "not connected")
        try:
            net.write(buf, n, timeout_ms)
        except Exception as e:
            self._fail(e)
            raise
        self._last_sent = self._ticks()

    def _send_ack(self, ptype, pid):
        with self._wlock:
            n = _pk.encode_ack(self._abuf, ptype, pid)
            self._write(self._abuf, n, self._command_timeout)

    # ---- in-flight slots -------------------------------------------------------------

    def _take_slot(self, state, deadline):
        # A free slot with a fresh packet id (unique among slots in use). When all are
        # busy, wait for an ack to free one until the deadline (command_timeout).
        i = self._try_take_slot(state)
        me = self._port.thread_id()
        while i < 0:
            if self._left(deadline) <= 0 or not self._connected:
                raise MQTTError(
                    ERR_QUEUE_SIZE,
                    "all %d in-flight slots are waiting for acks (max_inflight)"
                    % len(self._slot_state),
                )
            left = min(self._left(deadline), self._cycle_timeout)
            if self._reader == me:
                # In a callback on the reading thread: read on (nested, bounded depth)
                # until an ack frees a slot.
                if self._nest >= _MAX_NEST:
                    raise MQTTError(
                        ERR_QUEUE_SIZE,
                        "in-flight table full inside %d nested callbacks (max_inflight)"
                        % self._nest,
                    )
                self._nest += 1
                try:
                    self._cycle(left, deadline)
                finally:
                    self._nest -= 1
            elif self._loop_running and me != self._loop_tid:
                gen = self._signal.gen
                i = self._try_take_slot(state)
                if i >= 0:
                    break
                self._signal.wait(gen, left)
            else:
                self._cycle_as_reader(left, deadline)
            i = self._try_take_slot(state)
        return i

    def _try_take_slot(self, state):
        with self._tlock:
            return self._slot_for(state, 0, 1)

    def _slot_for(self, state, pid, spare):
        # Caller holds _tlock. A free slot, leaving spare - 1 others free, with packet
        # id pid (-1 if a slot in use has it) or, if pid is 0, the next unused one.
        states = self._slot_state
        pids = self._slot_pid
        free = -1
        for i in range(len(states)):
            if states[i] == _FREE:
                if free < 0:
                    free = i
                spare -= 1
            elif pids[i] == pid:
                return -1
        if spare > 0:
            return -1
        if not pid:
            pid = self._pid
            while True:
                pid = pid + 1 if pid < 65535 else 1  # ids 1..65535 [MQTT-2.3.1-1]
                used = False
                for i in range(len(states)):
                    if states[i] != _FREE and pids[i] == pid:
                        used = True
                if not used:
                    break
            self._pid = pid
        pids[free] = pid
        self._slot_result[free] = 0
        self._slot_waiter[free] = 1
        states[free] = state
        return free

    def _find_slot(self, pid, state):
        pids = self._slot_pid
        states = self._slot_state
        for i in range(len(states)):
            if pids[i] == pid and states[i] == state:
                return i
        return -1

    def _drop_lost_acks(self):
        # SUBACK / UNSUBACK of a send_subscribe / send_unsubscribe lost with the link:
        # nothing resends those, so their slots would stay taken for good.
        states = self._slot_state
        with self._tlock:
            for i in range(len(states)):
                st = states[i]
                if (st == _WAIT_SUBACK or st == _WAIT_UNSUBACK) and not self._slot_waiter[i]:
                    self._clear(i)

    def _clear(self, i):
        self._slot_state[i] = _FREE
        self._slot_topic[i] = None  # let the message go
        self._slot_payload[i] = None
        self._slot_off[i] = -1
        self._slot_lseq[i] = 0

    def _free_slot(self, i):
        with self._tlock:
            self._clear(i)
        if self._signal is not None:
            self._signal.notify()  # a thread may wait for a free slot

    def _release(self, i):
        # The waiter is done with its acked slot.
        self._free_slot(i)

    def _unwait(self, i):
        # The waiter gives up (timeout or link lost); the message stays in the session.
        with self._tlock:
            if self._slot_state[i] == _DONE:
                self._clear(i)  # the ack came just now
            else:
                self._slot_waiter[i] = 0

    def _wait_done(self, i, deadline):
        # Until slot i is done (0), the link fails (ERR_CONN_LOST) or the deadline
        # passes (ERR_TIMEOUT). A failure while reading for it closes the link.
        states = self._slot_state
        port = self._port
        while True:
            gen = self._signal.gen if self._signal is not None else 0
            if states[i] == _DONE:
                return 0
            if not self._connected:
                return ERR_CONN_LOST
            left = self._left(deadline)
            if left <= 0:
                return ERR_TIMEOUT
            if left > self._cycle_timeout:
                left = self._cycle_timeout
            if self._loop_running and port.thread_id() != self._loop_tid:
                self._signal.wait(gen, left)  # the loop thread reads for us
            else:
                try:
                    self._cycle_as_reader(left, deadline)
                except Exception as e:
                    self._fail(e)
                    self._log(LOG_WARNING, "link failed while waiting for an ack: %r" % (e,))

    def _waitfor(self, i, deadline, what):
        # As _wait_done, raising on failure (subscribe, unsubscribe).
        code = self._wait_done(i, deadline)
        if code == ERR_CONN_LOST:
            raise MQTTError(ERR_CONN_LOST, "connection lost while waiting for " + what)
        if code:
            raise MQTTError(
                ERR_TIMEOUT, "no %s within command_timeout (%d ms)" % (what, self._command_timeout)
            )

    # ---- commands --------------------------------------------------------------------

    def publish(self, topic, payload="", qos=0, retain=False, wait=True):
        """Publish a message. topic and payload may be str or bytes-like; bytes cost no
        encoding and, at QoS 1/2, no copy. Returns the packet id (0 at QoS 0).

        QoS 1 and 2, the contract: publish() either raises BEFORE accepting the message
        (ValueError for bad arguments; MQTTError ERR_NO_CONN when not connected,
        ERR_QUEUE_SIZE when no in-flight slot freed within command_timeout,
        ERR_PAYLOAD_SIZE when the header does not fit the send buffer), so the
        application may retry it without a duplicate; or it accepts it into the session
        and from then on never raises for it: the library delivers it, across reconnects
        (resent with DUP and the same packet id). With wait=True (the default) it returns
        once PUBACK / PUBCOMP came, or after command_timeout, or when the link failed;
        pending() and flush() tell whether everything was acknowledged.
        """
        if isinstance(topic, str):
            topic = topic.encode()
        if isinstance(payload, str):
            payload = payload.encode()
        elif payload is None:
            payload = b""
        elif isinstance(payload, int) or isinstance(payload, float):  # no tuple: no alloc
            payload = str(payload).encode()
        if qos != 0 and qos != 1 and qos != 2:
            raise ValueError("qos must be 0, 1 or 2, not %r" % (qos,))
        plen = len(payload)
        ob = self.outbox
        if ob is not None and (qos or self.queue_qos0):
            if qos or not self._connected or self._behind or ob.unsent:
                return self._fwd.publish_stored(self, topic, payload, plen, qos, retain, wait)
        if not self._connected:
            if qos and self.queue_offline:
                return self._accept_offline(topic, payload, plen, qos, retain)
            raise MQTTError(ERR_NO_CONN, "publish: not connected")
        # A bytes topic validated once is not scanned again (sensors publish to the same
        # topic object over and over): bytes cannot change.
        checked = topic is self._topic_ok
        if qos == 0:
            with self._wlock:
                n = _pk.encode_publish(self._sbuf, topic, plen, 0, retain, False, 0, checked)
                self._write_publish(n, payload, plen)
            if isinstance(topic, bytes):
                self._topic_ok = topic
            return 0
        if not isinstance(payload, bytes):
            payload = bytes(payload)  # kept until acked: the caller may reuse its buffer
        deadline = self._port.ticks_add(self._ticks(), self._command_timeout)
        i = self._take_slot(_RESERVED, deadline)
        return self._send_in_slot(i, topic, payload, plen, qos, retain, wait, deadline, 0)

    def _send_in_slot(self, i, topic, payload, plen, qos, retain, wait, deadline, lseq):
        # Publish through reserved slot i (QoS 1/2); lseq: its seq in the flash log.
        pid = self._slot_pid[i]
        checked = topic is self._topic_ok
        # From a message function on the reading thread, waiting would read (and
        # deliver) nested, one level per message of a burst: never wait there.
        waiter = wait and self._reader != self._port.thread_id()
        with self._wlock:
            try:
                n = _pk.encode_publish(self._sbuf, topic, plen, qos, retain, False, pid, checked)
            except Exception:
                self._free_slot(i)
                raise  # not accepted
            if isinstance(topic, bytes):
                self._topic_ok = topic
            # Accepted: the message is the session's now. Filled under _tlock, and only
            # then visible to a reconnect's _resend.
            with self._tlock:
                self._slot_topic[i] = topic
                self._slot_payload[i] = payload
                # _SENT before writing: even a write that fails half way may have
                # reached the broker, so its resend carries DUP.
                self._slot_flags[i] = _SENT | qos << 1 | (1 if retain else 0)
                self._seq += 1
                self._slot_seq[i] = self._seq
                self._slot_lseq[i] = lseq
                self._slot_waiter[i] = 1 if waiter else 0
                self._slot_state[i] = _WAIT_PUBACK if qos == 1 else _WAIT_PUBREC
            try:
                self._write_publish(n, payload, plen)
            except Exception as e:
                # The link failed (it is closed, the loop reports it); the message is
                # resent after the reconnect.
                self._log(LOG_WARNING, "PUBLISH %d not sent (%r): resent on reconnect" % (pid, e))
        if waiter:
            if self._wait_done(i, deadline) == 0:
                self._release(i)
            else:
                self._unwait(i)  # stays in the session; the reader or a resend finishes it
        return pid

    def _accept_offline(self, topic, payload, plen, qos, retain):
        # queue_offline: keep the message for the next CONNACK (no waiting for a slot:
        # nothing can free one while the link is down).
        if not isinstance(payload, bytes):
            payload = bytes(payload)
        i = self._try_take_slot(_RESERVED)
        if i < 0:
            raise MQTTError(
                ERR_QUEUE_SIZE,
                "not connected and all %d in-flight slots are in use (max_inflight)"
                % len(self._slot_state),
            )
        with self._wlock:
            try:
                # Encoded only to check it (it raises before accepting); not sent.
                _pk.encode_publish(self._sbuf, topic, plen, qos, retain, False, 1)
            except Exception:
                self._free_slot(i)
                raise
        with self._tlock:
            self._slot_topic[i] = topic
            self._slot_payload[i] = payload
            self._slot_flags[i] = qos << 1 | (1 if retain else 0)  # not _SENT: no DUP
            self._seq += 1
            self._slot_seq[i] = self._seq
            self._slot_waiter[i] = 0
            self._slot_state[i] = _WAIT_PUBACK if qos == 1 else _WAIT_PUBREC
        return self._slot_pid[i]

    def _write_publish(self, n, payload, plen):
        # Caller holds _wlock; the header (n bytes) is in the send buffer.
        sbuf = self._sbuf
        if n + plen <= len(sbuf):
            sbuf[n : n + plen] = payload  # header and payload in one write
            self._write(sbuf, n + plen, self._command_timeout)
        else:
            self._write(sbuf, n, self._command_timeout)
            self._write(payload, plen, self._command_timeout)

    def pending(self):
        """Accepted QoS 1/2 messages not yet acknowledged by the broker, and queued
        QoS 0 ones not yet sent. With a flash log: at least its unacknowledged count."""
        n = 0
        for st in self._slot_state:
            if st == _WAIT_PUBACK or st == _WAIT_PUBREC or st == _WAIT_PUBCOMP:
                n += 1
        ob = self.outbox
        if ob is not None:
            n += ob.unsent
            if self.store is not None:
                with self._slock:
                    logged = len(self.store)
                if logged > n:
                    n = logged  # some wait on flash only (the outbox holds a window)
        return n

    def flush(self, timeout_ms=None):
        """Wait until every accepted QoS 1/2 message is acknowledged (True), or the link
        fails or timeout_ms (default command_timeout) passes (False). For a sensor before
        deep sleep: publish(..., wait=False) a batch, then flush()."""
        if timeout_ms is None:
            timeout_ms = self._command_timeout
        deadline = self._port.ticks_add(self._ticks(), timeout_ms)
        port = self._port
        while self.pending():
            gen = self._signal.gen if self._signal is not None else 0
            left = self._left(deadline)
            if not self._connected or left <= 0:
                return False
            if left > self._cycle_timeout:
                left = self._cycle_timeout
            if self._loop_running and port.thread_id() != self._loop_tid:
                self._signal.wait(gen, left)
            else:
                try:
                    self._cycle_as_reader(left, deadline)
                except Exception as e:
                    self._fail(e)
                    return False
        return True

    def _resend(self):
        # After a CONNACK: every accepted, unacknowledged QoS 1/2 message again, in the
        # order first sent [MQTT-4.6.0-1], with its original packet id: PUBLISH with DUP,
        # or PUBREL if the broker had PUBREC'd it and kept the session [MQTT-4.4.0-1].
        # If the session is gone, a PUBREC'd QoS 2 message is published again (the
        # broker may have lost it with the session; at worst it arrives twice). Slots
        # are read under _tlock (publish() fills them under it) and written outside it.
        states = self._slot_state
        seqs = self._slot_seq
        last = 0
        while True:
            with self._tlock:
                i = -1
                for k in range(len(states)):
                    st = states[k]
                    if st >= _WAIT_PUBACK and st <= _WAIT_PUBCOMP and seqs[k] > last:
                        if i < 0 or seqs[k] < seqs[i]:
                            i = k
                if i < 0:
                    return
                last = seqs[i]
                pid = self._slot_pid[i]
                release = states[i] == _WAIT_PUBCOMP and self.session_present
                flags = self._slot_flags[i]
                qos = (flags >> 1) & 3
                topic = self._slot_topic[i]
                payload = self._slot_payload[i]
                off = self._slot_off[i]
                if not release:
                    states[i] = _WAIT_PUBACK if qos == 1 else _WAIT_PUBREC
                    self._slot_flags[i] = flags | _SENT
            if release:
                self._send_ack(_PUBREL, pid)
                continue
            dup = flags & _SENT != 0  # a message queued offline goes out the first time
            if off >= 0:
                with self._wlock:
                    self._fwd.write_record(self, off, pid, dup)  # from the outbox: it stays
                continue
            with self._wlock:
                n = _pk.encode_publish(
                    self._sbuf, topic, len(payload), qos, flags & 1, dup, pid, True
                )
                self._write_publish(n, payload, len(payload))

    def subscribe(self, topic, function, qos=0):
        """Subscribe to a topic filter; function(client, payload, topic) gets each
        matching message. Before connect() it only registers (the SUBSCRIBE goes out
        after CONNACK). Returns the granted QoS (None if not yet connected); raises
        MQTTError(ERR_SUBSCRIBE_REFUSED) if the broker refused it (SUBACK 0x80)."""
        f = _to_bytes(topic)
        why = filter_problem(f)
        if why:
            raise ValueError("topic filter " + why)
        if qos not in (0, 1, 2):
            raise ValueError("qos must be 0, 1 or 2, not %r" % (qos,))
        entry = None
        for h in self._handlers:
            if h[0] == f:
                entry = h
        if entry is None:
            entry = [f, function, qos, -1]
            self._handlers.append(entry)
        else:
            entry[1] = function
            entry[2] = qos
        if not self._connected:
            return None
        try:
            granted = self._subscribe_wait(f, qos)
        except MQTTError as e:
            if e.code == ERR_SUBSCRIBE_REFUSED and entry in self._handlers:
                self._handlers.remove(entry)
            raise
        entry[3] = granted
        return granted

    def _subscribe_wait(self, f, qos):
        deadline = self._port.ticks_add(self._ticks(), self._command_timeout)
        i = self._take_slot(_WAIT_SUBACK, deadline)
        try:
            with self._wlock:
                pid = self._slot_pid[i]
                self._encode_large(_pk.encode_subscribe, pid, ((f, qos),), len(f) + 8)
            self._waitfor(i, deadline, "SUBACK")
            granted = self._slot_result[i]
        finally:
            self._free_slot(i)
        if granted == 0x80:
            raise MQTTError(
                ERR_SUBSCRIBE_REFUSED,
                "the broker refused the subscription to %r (SUBACK 0x80)" % (f,),
            )
        return granted

    def send_subscribe(self, filters):
        """Low level, for layers such as umqtt_paho.paho: one SUBSCRIBE for a list of
        (filter, qos) pairs, without registering functions and without waiting; the
        SUBACK reaches on_subscribe(client, pid, granted). Returns the packet id.
        Not renewed after a reconnect (unlike subscribe())."""
        pairs = []
        need = 8
        for f, qos in filters:
            f = _to_bytes(f)
            pairs.append((f, qos))
            need += len(f) + 3
        return self._send_nowait(_WAIT_SUBACK, _pk.encode_subscribe, pairs, need)

    def send_unsubscribe(self, filters):
        """Low level: one UNSUBSCRIBE for a list of filters, without waiting; the
        UNSUBACK reaches on_unsubscribe(client, pid). Returns the packet id."""
        fs = [_to_bytes(f) for f in filters]
        need = 6
        for f in fs:
            need += len(f) + 2
        return self._send_nowait(_WAIT_UNSUBACK, _pk.encode_unsubscribe, fs, need)

    def _send_nowait(self, state, encode, arg, need):
        if not self._connected:
            raise MQTTError(ERR_NO_CONN, "not connected")
        deadline = self._port.ticks_add(self._ticks(), self._command_timeout)
        i = self._take_slot(state, deadline)
        self._slot_waiter[i] = 0  # the reader frees it when the ack comes
        pid = self._slot_pid[i]
        try:
            with self._wlock:
                self._encode_large(encode, pid, arg, need)
        except Exception:
            self._free_slot(i)
            raise
        return pid

    def _encode_large(self, encode, pid, arg, need):
        # Caller holds _wlock. Subscribe-sized packets: the send buffer, or a one-off
        # buffer for a filter longer than it (not a hot path).
        buf = self._sbuf if need <= len(self._sbuf) else bytearray(need)
        n = encode(buf, pid, arg)
        self._write(buf, n, self._command_timeout)
        return n

    def unsubscribe(self, topic):
        """Remove the topic's function and, if connected, unsubscribe at the broker."""
        f = _to_bytes(topic)
        why = filter_problem(f)
        if why:
            raise ValueError("topic filter " + why)
        for h in list(self._handlers):
            if h[0] == f:
                self._handlers.remove(h)
        if not self._connected:
            return
        deadline = self._port.ticks_add(self._ticks(), self._command_timeout)
        i = self._take_slot(_WAIT_UNSUBACK, deadline)
        try:
            with self._wlock:
                self._encode_large(_pk.encode_unsubscribe, self._slot_pid[i], (f,), len(f) + 6)
            self._waitfor(i, deadline, "UNSUBACK")
        finally:
            self._free_slot(i)

    # ---- logging ---------------------------------------------------------------------

    def _log(self, level, text):
        fn = self.on_log
        if fn is not None:
            try:
                fn(self, level, text)
            except Exception:
                pass
        elif level == LOG_WARNING or level == LOG_ERR:
            print("umqtt_paho:", text)
