# umqtt_paho Client: the synchronous driver, in the shape of the Paho embedded C client
# (MQTTClient.c), over the session (session.py: every state transition) and the codec
# (packet.py): the commands of the seed API here, the reading half (cycle, waitfor,
# keepalive) in its base class, reader.py. Only these two modules and the port touch
# the network.
#
# Theory of operation
# - Connecting: connect() opens the port's Network (DNS, TCP, TLS inside
#   command_timeout), sends CONNECT and waits for CONNACK under the same deadline, then
#   resends what the session holds and renews every subscription the broker may not
#   have. Any failure closes the link (Reader._close) and wakes every waiter.
# - Commands: publish (QoS 1/2), subscribe and unsubscribe take a session slot (its
#   packet id), write their packet and wait for the ack in Reader._waitfor. A QoS 1/2
#   publish from a message function (on the reading thread) is sent without waiting:
#   the reader completes it when the ack comes, so a burst of messages cannot nest reads.
# - Buffers: receive (max_packet_size) and send (acks too), allocated once. A PUBLISH
#   whose payload fits the send buffer leaves in one write.
# - Threads: the background loop (threadloop.py) is loaded when it starts; without it
#   the application calls cycle().
# - Store and forward (outbox= / store=): forward.py, imported only then; the driver
#   calls its hooks where a message is published, acked, PUBREC'd and resent.
# - Errors and log lines carry numbers (_T_*); errors.py, loaded only when one is
#   put into words, words them.

try:
    from micropython import const
except ImportError:  # CPython: the host port runs the same file
    const = int  # a function here would cost RAM on the board too

import gc

# The core, one module at a time with a collection after each: loading a module leaves
# small garbage between its functions (the loader's own records), and a collection lets
# the next module's code fill those holes instead of the heap's free end (on a 32-bit
# board the telemetry job then needs about 3 KB less heap, tools/bench.py). From .py
# sources the order matters too: each module is compiled with the ones before it in
# RAM, so the largest (this one, then reader.py) go first.
from .reader import Reader

gc.collect()
from .packet import (  # noqa: E402
    MQTTError,
    ArgError,
    encode_connect,
    encode_publish,
    encode_subscribe,
    decode_connack,
    filter_problem,
    topic_problem,
    topic_matches_sub,  # noqa: F401  (the package's, umqtt_paho/__init__.py)
)

gc.collect()
from .session import Session  # noqa: E402

gc.collect()

BREAK_LOOP = const(0)
RECOVERED = const(1)

MQTTv31 = const(3)
MQTTv311 = const(4)

# on_log levels, as paho-mqtt's MQTT_LOG_*
_LOG_INFO = const(1)
_LOG_WARNING = const(4)
_LOG_ERR = const(8)

# Packet types [MQTT-2.2.1]
_CONNACK = const(2)
_PUBLISH = const(3)
_PUBREL = const(6)
_SUBSCRIBE = const(8)
_UNSUBSCRIBE = const(10)

# Error codes (errors.py has them all, with names and texts)
_ERR_PROTOCOL = const(2)
_ERR_NO_CONN = const(4)
_ERR_CONN_REFUSED = const(5)
_ERR_CONN_LOST = const(7)
_ERR_TLS = const(8)
_ERR_NOT_SUPPORTED = const(10)
_ERR_QUEUE_SIZE = const(15)
_ERR_TIMEOUT = const(17)
_ERR_SUBSCRIBE_REFUSED = const(18)

# Texts of errors and log lines (errors.py; tests/test_texts.py checks the numbers)
_T_PROTOCOL_LEVEL = const(1)
_T_EMPTY_ID = const(2)
_T_EMPTY_ID_31 = const(3)
_T_TIMEOUTS = const(4)
_T_SIZES = const(5)
_T_WILL_TOPIC = const(6)
_T_QOS = const(7)
_T_KEEPALIVE = const(8)
_T_CONN_REFUSED = const(9)
_T_RECONNECT_FIRST = const(10)
_T_TLS_INSECURE = const(11)
_T_NO_CONNACK = const(12)
_T_NOT_CONNACK = const(13)
_T_NO_THREADS = const(14)
_T_NOT_CONNECTED = const(15)
_T_CYCLE_IN_LOOP = const(16)
_T_LOST_WAITING = const(24)
_T_ACK_TIMEOUT = const(25)
_T_OFFLINE_FULL = const(27)
_T_SUB_REFUSED = const(28)
_T_FILTER = const(29)
_T_RECONNECT_FAILED = const(32)
_T_NO_DISCONNECT = const(34)
_T_NOT_SENT = const(43)

# What raised, for _T_HOOK_RAISED (errors.py names them)
_W_BRECONNECT = const(0)
_W_ACONNECT = const(1)


def _to_bytes(s):
    return s.encode() if isinstance(s, str) else s


def _kept(b):
    # A message the session keeps until acked, as bytes: the caller may reuse a
    # bytearray or what a memoryview shows. While publish() waits for the ack it holds
    # the caller's object itself: a telemetry loop's reused buffer costs no copy.
    return b if isinstance(b, bytes) else bytes(b)


class Client(Reader):
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
    outbox, store: store and forward (forward.py, docs/store-and-forward.md): an
        outbox.Outbox ring for QoS 1/2 messages that cannot go out now, and a
        flashlog.FlashLog that keeps every QoS 1/2 message on flash until acked.
    """

    # Settings and callbacks an application may set on a client, and counters. Their
    # defaults live here, in the class: an instance holds only what was set, so its
    # attribute table stays small (RAM, and fragmentation while it is built).
    tls_insecure = False  # True: accept an ssl_ctx that does not verify
    # the last CONNACK's flag (clean_session=False): the session's, not a copy
    session_present = property(lambda self: self.session.present)
    # True: a QoS 1/2 publish while disconnected is accepted into the in-flight table
    # (if a slot is free) and sent after the next CONNACK.
    queue_offline = False
    _fwd = None  # store and forward's Forward (forward.py), for a client given them
    # Store and forward's settings (drain_burst, queue_qos0) and its outbox and store
    # are attributes that forward.py reads and sets: see there.
    # Rarely set state
    _auth = None  # (username, password or None)
    _will = None  # (topic, payload, qos, retain)

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
            raise ArgError(_T_PROTOCOL_LEVEL, protocol)
        if not client_id:
            if not clean_session:
                raise ArgError(_T_EMPTY_ID)
            if protocol == MQTTv31:
                raise ArgError(_T_EMPTY_ID_31)
        if cycle_timeout <= 0 or command_timeout <= 0:
            raise ArgError(_T_TIMEOUTS)
        if min(max_packet_size, send_buffer) < 16 or min(max_inflight, max_inflight_in) < 1:
            raise ArgError(_T_SIZES)
        if port is None:
            gc.collect()  # the imports' leftovers: the port's code fills their holes
            from .ports import select

            port = select()
        # The buffers below live as long as the client: collect first, so they take
        # whole free blocks instead of landing among the imports' leftovers.
        gc.collect()
        # Every attribute the client writes is made here, before the buffers: the
        # instance's attribute table grows to its final size now, in a heap just
        # collected, and never again mid-flight (a table grown while messages flow, or
        # on a first failure, needs a contiguous block when RAM is tightest).
        self._port = port
        self._id = (client_id, clean_session, protocol)  # for CONNECT
        self._cycle_timeout = cycle_timeout
        self._command_timeout = command_timeout
        self._rl = 0  # remaining length of the packet in _rmv
        self._net = None
        self._connected = False
        self._rc = -1
        self._topic_ok = None  # the last bytes topic that passed the checks
        # connect()'s (host, port, ssl_ctx, breconnect_cb, aconnect_cb, keepalive ms)
        self._target = None
        self._loop_failure = None
        self._last_sent = 0
        self._last_recv = 0
        self._ping_sent = None  # ticks of the PINGREQ awaiting its PINGRESP
        self._reader = None  # thread id of the thread inside _cycle
        self._looping = False  # the loop thread should go on
        self._stopped = False  # disconnect() was called: recovery hooks stop
        self.last_error = None
        # The message being delivered: what the 3-argument callback cannot carry.
        self.last_qos = self.last_retain = self.last_dup = self.last_mid = 0
        # Subscriptions: [filter bytes, function, qos, granted or -1]; kept across
        # reconnects, renewed after each CONNACK unless confirmed in this session.
        self._handlers = []
        lock = port.allocate_lock  # a lock that does nothing where there are no threads
        self._wlock = lock()  # writes
        self._rlock = lock()  # the one reader
        self._tlock = lock()  # the session's tables

        # Buffers: allocated here, never grown. A packet's header bytes are read one by
        # one into the receive buffer; its body then fills it from offset 0.
        self._rmv = memoryview(bytearray(max_packet_size))
        self._sbuf = bytearray(send_buffer)
        self.session = Session(max_inflight, max_inflight_in)

        # Store and forward (docs/store-and-forward.md): its code only when used.
        if outbox is not None or store is not None:
            from .forward import Forward

            self._fwd = Forward(self, outbox, store)

    # ---- configuration ---------------------------------------------------------------

    def set_username_pw(self, username, password=""):
        """User name and password for the next CONNECT (password may be empty)."""
        self._auth = None if username is None else (_to_bytes(username), _to_bytes(password))

    def set_will(self, topic, payload, qos=0, retain=True):
        """Last will: published by the broker if the link dies without DISCONNECT."""
        topic = _to_bytes(topic)
        why = topic_problem(topic, 0, len(topic))
        if why:
            raise ArgError(_T_WILL_TOPIC, why)
        if qos not in (0, 1, 2):
            raise ArgError(_T_QOS, qos)
        self._will = (topic, b"" if payload is None else _to_bytes(payload), qos, retain)

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
            raise ArgError(_T_KEEPALIVE)
        self._target = (host, port, ssl_ctx, breconnect_cb, aconnect_cb, keepalive * 1000)
        self._loop_failure = loop_failure
        self._stopped = False
        rc = self._connect_once()
        if rc:
            raise MQTTError(_ERR_CONN_REFUSED, _T_CONN_REFUSED, rc)
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
        if self._target is None:
            raise MQTTError(_ERR_NO_CONN, _T_RECONNECT_FIRST)
        self._hook(self._target[3], _W_BRECONNECT)
        try:
            return self._connect_once()
        except Exception as e:
            self.last_error = e
            self._rc = -1
            self._log(_LOG_WARNING, _T_RECONNECT_FAILED, e)
            return -1

    def _connect_once(self):
        # Open, CONNECT, CONNACK, resend, renew subscriptions: under command_timeout.
        host, port_no, ctx, _, aconnect_cb, ka = self._target
        if ctx is not None and not self.tls_insecure:
            # Security by default: a context that does not check the broker's
            # certificate (verify_mode CERT_NONE = 0) or name is refused unless the
            # application opted out explicitly.
            if getattr(ctx, "verify_mode", 2) == 0 or getattr(ctx, "check_hostname", 1) is False:
                raise MQTTError(_ERR_TLS, _T_TLS_INSECURE)
        self._close()
        self._rc = -1
        deadline = self._deadline()
        net = self._port.Network()
        try:
            net.open(host, port_no, ctx, self._command_timeout)
        except Exception:
            net.close()
            raise
        self._net = net
        try:
            # CONNECT [3.1], into a one-off buffer when the send buffer is too small
            w = self._will or (None, b"", 0, False)
            user, pw = self._auth or (None, None)
            cid, clean, protocol = self._id
            need = 32 + len(cid) + len(w[1]) + len(w[0] or b"")
            need += len(user or b"") + len(pw or b"")
            buf = self._sbuf if need <= len(self._sbuf) else bytearray(need)
            n = encode_connect(buf, cid, clean, ka // 1000, w[0], w[1], w[2],
                               w[3], user, pw, protocol)  # fmt: skip
            with self._wlock:
                self._write(buf, n, self._left(deadline))
            self._last_recv = self._port.ticks_ms()
            self._ping_sent = None
            first = 0
            while not first:  # the first packet from the server is CONNACK [MQTT-3.2.0-1]
                left = self._left(deadline)
                if left <= 0:
                    raise MQTTError(_ERR_TIMEOUT, _T_NO_CONNACK, self._command_timeout)
                first = self._read_packet(left, deadline)
            if first >> 4 != _CONNACK:
                raise MQTTError(_ERR_PROTOCOL, _T_NOT_CONNACK, first >> 4)
            rc = self._rc = decode_connack(first, self._rmv, 0, self._rl)
        except Exception as e:
            self._close(e)
            raise
        if rc:
            self._close()
            return rc
        self._connected = True
        s = self.session
        with self._tlock:
            s.connack(self._rmv[0] & 1 == 1)
        if not s.present:
            for h in self._handlers:
                h[3] = -1  # no session on the broker: every subscription again
        try:
            self._resend()  # first: acks for these free slots the resubscribe may need
            # Every subscription not confirmed by a SUBACK: after a CONNACK without a
            # session, and any whose SUBACK was lost with the link (the broker may have
            # created the session, so session present says nothing about it).
            for h in list(self._handlers):
                if h[3] < 0:
                    try:
                        h[3] = self._command(_SUBSCRIBE, ((h[0], h[2]),), len(h[0]) + 8)
                    except MQTTError as e:
                        if e.code != _ERR_SUBSCRIBE_REFUSED:
                            raise
                        self._log(_LOG_ERR, _T_SUB_REFUSED, h[0])
        except Exception as e:
            self._close(e)  # never connected() with half a session
            raise
        if self._fwd is not None:
            self._fwd.drain()  # a first burst of the backlog; each read cycle sends more
        self._hook(aconnect_cb, _W_ACONNECT)
        return 0

    def disconnect(self, timeout=None):
        """Send DISCONNECT and close. With timeout (ms), wait that long at most for the
        background loop to end. Returns within the timeout even if the broker is gone."""
        self._looping = False
        self._stopped = True
        net = self._net
        if self._connected and net is not None:
            try:
                with self._wlock:
                    net.write(b"\xe0\x00", 2, timeout or self._command_timeout)  # DISCONNECT
            except Exception as e:
                self._log(_LOG_INFO, _T_NO_DISCONNECT, e)
        self._close()
        if self._fwd is not None:
            self._fwd.sync()  # acks and messages still in RAM: before deep sleep
        if timeout and self._loop_running and self._port.thread_id() != self._loop_tid:
            deadline = self._deadline(timeout)
            while self._loop_running and self._left(deadline) > 0:
                self._port.sleep_ms(5)

    # ---- loop ------------------------------------------------------------------------

    def loop(self):
        """Start the background read loop (connect() does it unless start_loop=False)."""
        if self._port.start_thread is None:
            raise MQTTError(_ERR_NOT_SUPPORTED, _T_NO_THREADS)
        if not self._loop_running:
            from .threadloop import start

            start(self)

    def cycle(self, timeout_ms=None):
        """Without the background loop: read and handle at most one packet, waiting up
        to timeout_ms (default cycle_timeout) for it, and send a PINGREQ when due.

        Returns the packet type handled, or 0. On failure the link is closed and
        loop_failure(client) is called: RECOVERED makes cycle() return -1, otherwise the
        error is raised.
        """
        if self._loop_running:
            raise MQTTError(_ERR_NOT_SUPPORTED, _T_CYCLE_IN_LOOP)
        if timeout_ms is None:
            timeout_ms = self._cycle_timeout
        try:
            if not self._connected:
                # Still down (a hook said RECOVERED while it waits to retry): wait out
                # the cycle, so a loop around cycle() does not spin.
                self._port.sleep_ms(timeout_ms)
                raise MQTTError(_ERR_NO_CONN, _T_NOT_CONNECTED)
            return self._cycle(timeout_ms)
        except Exception as e:
            if self._failed(e) == RECOVERED:
                return -1
            raise

    def _write_publish(self, n, payload, plen):
        # Caller holds _wlock; the header (n bytes) is in the send buffer.
        sbuf = self._sbuf
        if n + plen <= len(sbuf):
            sbuf[n : n + plen] = payload  # header and payload in one write
            self._write(sbuf, n + plen, self._command_timeout)
        else:
            self._write(sbuf, n, self._command_timeout)
            self._write(payload, plen, self._command_timeout)

    def _release(self, i, ok):
        # The waiter is done with slot i: free it (acked), or leave it to the session.
        with self._tlock:
            if ok:
                self.session.free(i)
            else:
                self.session.unwait(i)
        if self._signal is not None:
            self._signal.notify()  # a thread may wait for a free slot

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
        topic = _to_bytes(topic)
        if isinstance(payload, str):
            payload = payload.encode()
        elif payload is None:
            payload = b""
        elif isinstance(payload, int) or isinstance(payload, float):  # no tuple: no alloc
            payload = str(payload).encode()
        if qos != 0 and qos != 1 and qos != 2:
            raise ArgError(_T_QOS, qos)
        plen = len(payload)
        fwd = self._fwd
        if fwd is not None and fwd.queues(qos):
            return fwd.publish(topic, payload, plen, qos, retain, wait)
        if not self._connected and not (qos and self.queue_offline):
            raise MQTTError(_ERR_NO_CONN, _T_NOT_CONNECTED)
        if qos == 0:
            with self._wlock:
                # A bytes topic validated once is not scanned again (sensors publish to
                # the same topic object over and over): bytes cannot change.
                ok = topic is self._topic_ok
                n = encode_publish(self._sbuf, topic, plen, 0, retain, 0, 0, ok)
                self._write_publish(n, payload, plen)
            if isinstance(topic, bytes):
                self._topic_ok = topic
            return 0
        deadline = self._deadline()
        if self._connected:
            i = self._waitfor(_PUBLISH, 0, deadline)
        else:
            # queue_offline: kept for the next CONNACK. No waiting for a slot: nothing
            # can free one while the link is down.
            with self._tlock:
                i = self.session.take(_PUBLISH)
            if i < 0:
                raise MQTTError(_ERR_QUEUE_SIZE, _T_OFFLINE_FULL, len(self.session.states))
        return self._send_in_slot(i, topic, payload, qos, retain, wait, deadline)

    def _send_in_slot(self, i, topic, payload, qos, retain, wait, deadline):
        # Publish through reserved session slot i (QoS 1/2); returns its packet id. Not
        # connected (queue_offline): only accepted, sent by the next CONNACK's resend.
        s = self.session
        pid = s.pids[i]
        sent = self._connected
        # From a message function on the reading thread, waiting would read (and
        # deliver) nested, one level per message of a burst: never wait there.
        waiter = sent and wait and self._reader != self._port.thread_id()
        if not waiter:
            payload = _kept(payload)
        plen = len(payload)
        with self._wlock:
            try:
                n = encode_publish(self._sbuf, topic, plen, qos, retain, 0, pid,
                                   topic is self._topic_ok)  # fmt: skip
            except Exception:
                self._release(i, True)
                raise  # not accepted
            if isinstance(topic, bytes):
                self._topic_ok = topic
            # Accepted: the message is the session's now (visible to a reconnect's
            # resend once filled, under _tlock).
            with self._tlock:
                s.accept(i, topic, payload, qos, retain, waiter, sent)
            try:
                if sent:
                    self._write_publish(n, payload, plen)
            except Exception as e:
                # The link failed (it is closed, the loop reports it); the message is
                # resent after the reconnect.
                self._log(_LOG_WARNING, _T_NOT_SENT, pid, e)
        if waiter:
            ok = self._waitfor(0, i, deadline) == 0
            if not ok:
                # Not acked yet: the session keeps the message past this call, and the
                # caller may reuse its objects from now on. (Under _wlock: a resend
                # writing them right now finishes first.)
                with self._wlock:
                    with self._tlock:
                        if s.payloads[i] is payload:
                            s.topics[i] = _kept(topic)
                            s.payloads[i] = _kept(payload)
            self._release(i, ok)
        return pid

    def pending(self):
        """Accepted QoS 1/2 messages not yet acknowledged by the broker, and queued
        QoS 0 ones not yet sent. With a flash log: at least its unacknowledged count."""
        n = self.session.pending()
        if self._fwd is not None:
            n = self._fwd.pending(n)
        return n

    def flush(self, timeout_ms=None):
        """Wait until every accepted QoS 1/2 message is acknowledged (True), or the link
        fails or timeout_ms (default command_timeout) passes (False). For a sensor before
        deep sleep: publish(..., wait=False) a batch, then flush()."""
        return self._waitfor(-1, 0, self._deadline(timeout_ms)) == 0

    def _resend(self):
        # After a CONNACK: what the session says, in the order first sent. Slots are
        # read under _tlock (publish() fills them under it) and written outside it.
        s = self.session
        last = 0
        while True:
            with self._tlock:
                i = s.resend_next(last)
                if i < 0:
                    return
                last = s.order[i]
                first = s.resend(i)
                pid = s.pids[i]
                topic = s.topics[i]
                payload = s.payloads[i]
            if first >> 4 == _PUBREL:
                self._send_ack(_PUBREL, pid)
            elif self._fwd is None or not self._fwd.resend(i, pid, first & 8):
                with self._wlock:
                    n = encode_publish(self._sbuf, topic, len(payload), first >> 1 & 3,
                                       first & 1, first & 8, pid, True)  # fmt: skip
                    self._write_publish(n, payload, len(payload))

    def subscribe(self, topic, function, qos=0):
        """Subscribe to a topic filter; function(client, payload, topic) gets each
        matching message. Before connect() it only registers (the SUBSCRIBE goes out
        after CONNACK). Returns the granted QoS (None if not yet connected); raises
        MQTTError(ERR_SUBSCRIBE_REFUSED) if the broker refused it (SUBACK 0x80)."""
        f = _to_bytes(topic)
        why = filter_problem(f)
        if why:
            raise ArgError(_T_FILTER, why)
        if qos not in (0, 1, 2):
            raise ArgError(_T_QOS, qos)
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
            entry[3] = self._command(_SUBSCRIBE, ((f, qos),), len(f) + 8)
        except MQTTError as e:
            if e.code == _ERR_SUBSCRIBE_REFUSED and entry in self._handlers:
                self._handlers.remove(entry)
            raise
        return entry[3]

    def unsubscribe(self, topic):
        """Remove the topic's function and, if connected, unsubscribe at the broker."""
        f = _to_bytes(topic)
        why = filter_problem(f)
        if why:
            raise ArgError(_T_FILTER, why)
        for h in list(self._handlers):
            if h[0] == f:
                self._handlers.remove(h)
        if self._connected:
            self._command(_UNSUBSCRIBE, (f,), len(f) + 6)

    def _command(self, t, arg, need, wait=True):
        # SUBSCRIBE or UNSUBSCRIBE of arg (need: bytes its packet may take) in a session
        # slot; with wait, until its ack: returns the granted QoS (SUBSCRIBE), else the
        # packet id (for layers such as paho.py: the ack then reaches on_subscribe /
        # on_unsubscribe, and the reader frees the slot).
        if not self._connected:
            raise MQTTError(_ERR_NO_CONN, _T_NOT_CONNECTED)
        deadline = self._deadline()
        i = self._waitfor(t, 0, deadline)
        s = self.session
        pid = s.pids[i]
        if not wait:
            with self._tlock:
                s.unwait(i)  # the reader frees it when the ack comes
        try:
            # The send buffer, or a one-off buffer for filters longer than it.
            buf = self._sbuf if need <= len(self._sbuf) else bytearray(need)
            with self._wlock:
                n = encode_subscribe(buf, pid, arg, t == _UNSUBSCRIBE)
                self._write(buf, n, self._command_timeout)
        except Exception:
            self._release(i, True)
            raise
        if not wait:
            return pid
        code = self._waitfor(0, i, deadline)
        granted = s.order[i]  # the SUBACK's return code
        self._release(i, True)
        if code:
            raise MQTTError(code, _T_LOST_WAITING if code == _ERR_CONN_LOST else _T_ACK_TIMEOUT,
                            t + 1, self._command_timeout)  # fmt: skip
        if granted == 0x80:
            raise MQTTError(_ERR_SUBSCRIBE_REFUSED, _T_SUB_REFUSED, arg[0][0])
        return granted

