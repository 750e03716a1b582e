# umqtt_paho.testing: test your firmware on a PC, with no broker, no network, no board.
#
#     from umqtt_paho import Client
#     from umqtt_paho.testing import FakePort
#
#     port = FakePort()                       # an in-memory broker and a fake clock
#     client = Client("dev1", port=port)      # the port stands in for sockets and time
#     client.connect("broker.test", 60, start_loop=False)
#     client.publish("dev1/temp", b"21.5", qos=1)      # PUBACK from the fake broker
#     assert port.broker.received[-1].payload == b"21.5"
#     port.broker.publish("dev1/cmd", b"on", qos=1)    # a message TO the device
#     client.cycle()                          # ... reaches its subscribe() function
#     port.broker.cut()                       # the link drops: the will is published
#     port.broker.unreachable = True          # and reconnecting fails (OSError 113)
#     port.clock.advance(5000)                # five seconds pass, instantly
#
# What the broker does, as a real one (MQTT 3.1.1) would:
# - CONNECT: CONNACK with `connack_rc` (0 accepted; 1-5 refused, then it closes the
#   link), 4 if `users` ({name: password}) is set and the credentials don't match, 2
#   for an empty client id with clean_session False. Sessions live in `sessions`, by
#   client id: with clean_session False they survive a disconnect (subscriptions, QoS
#   1/2 messages queued while the client was away, messages not yet acknowledged), and
#   CONNACK says session present [MQTT-3.2.2-2]. A second connection with the same
#   client id takes the session over and the first link is closed [MQTT-3.1.4-2].
# - PUBLISH from a client: recorded in `received` (a Message each, resends with DUP
#   included and marked `duplicate`), acknowledged (PUBACK; PUBREC, then PUBCOMP for
#   the PUBREL), stored in `retained` if it has the retain flag (an empty payload
#   deletes it [MQTT-3.3.1-10]), and forwarded to every session with a matching
#   subscription at the lower of the two QoS [MQTT-3.8.4-6]. A QoS 2 resend of a message
#   not yet released is acknowledged but not forwarded twice [MQTT-4.3.3-2].
# - SUBSCRIBE: SUBACK granting what was asked (or `grant`: a code for every filter,
#   0x80 = refused), then the retained messages that match, with the retain flag
#   [MQTT-3.3.1-6]. UNSUBSCRIBE: UNSUBACK. PINGREQ: PINGRESP (unless `pingresp` False).
# - The will is published when a link ends without DISCONNECT: cut(), the client
#   closing after a failure, or the client silent for 1.5 x its keepalive
#   [MQTT-3.1.2-8, MQTT-3.1.2-24]. DISCONNECT discards it [MQTT-3.1.2-10].
#
# What a test can do to the device:
# - broker.publish(topic, payload, qos, retain): a message from "another client".
# - broker.cut(): the link is reset: the client's next read or write raises
#   OSError(ECONNRESET), as a board's socket does when WiFi or the broker goes away.
# - broker.stall(): the link goes silent (half-open): writes vanish, nothing arrives;
#   the client's keepalive must find out.
# - broker.unreachable = True: connecting raises OSError(unreachable_errno, 113 by
#   default: EHOSTUNREACH on Linux, ECONNABORTED on ESP32) after connect_delay_ms.
# - broker.puback / pubrec / pubcomp / pingresp = False: the broker stops answering.
#
# Time: a FakeClock, in milliseconds, moved only by waiting: a read that finds nothing
# waits its whole timeout, sleep_ms(ms) waits ms, clock.advance(ms) is the test's own
# wait. Minutes of device life take microseconds and every run is the same. With
# FakeClock(wrap=True) the ticks wrap as MicroPython's do (period 2**30): start near
# the wrap (start_ms=2**30 - 1000) to prove your code uses ticks_diff().
#
# For scripted tests (the library's own client tests are written with these):
# - broker.connack / suback / unsuback / pubrel = False, like puback, pubrec, pubcomp
#   and pingresp: that answer is not sent (what the packet does on the broker still
#   happens: the session is set up, the subscription made, the flow moved on).
#   broker.release(pid) sends a PUBREL held back by pubrel = False.
# - broker.session_present = True / False: what CONNACK says, whatever the broker had
#   (False also drops the session it had, as a broker restarted without persistence);
#   None (the default) tells the truth.
# - broker.forward = False: messages from clients are recorded and acknowledged, but
#   neither retained nor sent on to subscribers.
# - broker.deliver(topic, payload, qos, retain, dup, pid): a PUBLISH straight to the
#   connected client (subscribed or not), its QoS 1/2 flow followed by the broker.
# - port.link.send(data): raw bytes to the client (garbage, half a packet, a packet
#   the broker would never send); broker.hangup(): the broker closes the link: the
#   client reads what was sent, then its reads raise OSError(ECONNRESET).
# - broker.on_packet = fn: fn(link, name, value) runs after the broker handled each
#   packet from a client (name and value as in `packets`), to answer it by hand.
# - port.link.written: the bytes of each write() call, as the client cut them;
#   port.link.sent: each packet (or raw send) the broker put on the link. port.link.chunk
#   = n: at most n bytes per read (the client must reassemble).
# - broker.record = False: to measure a client's allocations on MicroPython. From then
#   on the broker only counts packets (counts[type]), answers PUBLISH and PUBREL from
#   a preallocated buffer and ignores PUBACK, without decoding, recording, forwarding
#   or calling on_packet; bytes move through preallocated buffers one at a time
#   (link.push(buf, n) puts raw bytes on the link the same way): the fake broker
#   itself allocates nothing per message.
#
# The MQTT encoding and decoding is servercodec.py's (the broker half of the codec),
# so a client that sends a malformed packet is caught by the same checks as the
# codec's tests; the broker records it in `errors` and resets the link.
#
# No threads (the port's start_thread is None): drive the client with client.cycle()
# (connect(..., start_loop=False)). This file runs on MicroPython too: plain code only.

try:
    import errno as _errno

    _EBADF = _errno.EBADF
    _ECONNRESET = _errno.ECONNRESET
except ImportError:  # pragma: no cover  (a port without errno)
    _EBADF = 9
    _ECONNRESET = 104

from . import servercodec as _sc
from .errors import type_name as _type_name
from .servercodec import (
    CONNECT as _CONNECT,
    PINGREQ as _PINGREQ,
    PUBACK as _PUBACK,
    PUBCOMP as _PUBCOMP,
    PUBLISH as _PUBLISH,
    PUBREC as _PUBREC,
    PUBREL as _PUBREL,
    SUBSCRIBE as _SUBSCRIBE,
    DISCONNECT as _DISCONNECT,
    UNSUBSCRIBE as _UNSUBSCRIBE,
)
from .packet import matches as _matches

__all__ = ("FakeClock", "FakePort", "Broker", "Message", "Session", "Link")

_PERIOD = 1 << 30  # MicroPython's ticks period
_HALF = 1 << 29
_BUF = 256  # first size of a link's buffers (they grow when a packet needs more)


def _b(s):
    # str -> bytes (UTF-8); bytes-like -> bytes
    if isinstance(s, str):
        return s.encode()
    return bytes(s)


def _s(b):
    # bytes -> str (topics and client ids in the records are str: easy to compare)
    if isinstance(b, str):
        return b
    return str(b, "utf-8")


def _match(filt, topic):
    f = _b(filt)
    t = _b(topic)
    return _matches(f, t, 0, len(t))


def _grown(buf, used, need):
    # A larger copy of buf[0:used], for `need` bytes at least.
    new = bytearray(max(2 * len(buf), need))
    for i in range(used):
        new[i] = buf[i]
    return new


class FakeClock:
    """Milliseconds that pass only when something waits.

    The same names as MicroPython's `time` module (ticks_ms, ticks_diff, ticks_add,
    sleep_ms), so application code can take `time` on the board and this in a test.
    `now` is the elapsed time in ms since start_ms, never wrapped.
    """

    def __init__(self, start_ms=0, wrap=False):
        self.now = start_ms
        self.wrap = wrap

    def advance(self, ms):
        """Let ms milliseconds pass (negative or zero: nothing happens)."""
        if ms > 0:
            self.now += int(ms)

    def ticks_ms(self):
        return self.now % _PERIOD if self.wrap else self.now

    def ticks_add(self, t, ms):
        return (t + ms) % _PERIOD if self.wrap else t + ms

    def ticks_diff(self, a, b):
        if self.wrap:
            return ((a - b + _HALF) % _PERIOD) - _HALF
        return a - b

    def sleep_ms(self, ms):
        self.advance(ms)

    def sleep(self, seconds):
        self.advance(int(seconds * 1000))


class Message:
    """One application message the broker saw or sent.

    topic: str; payload: bytes; qos, retain, dup: as on the wire; pid: packet id (0 at
    QoS 0); sender: the client id (str) that published it, None for broker.publish();
    duplicate: True for a resend (DUP) of a message the broker already had; at: the
    fake clock's `now` (ms) when the broker got it.
    """

    def __init__(self, topic, payload, qos=0, retain=False, dup=False, pid=0, sender=None):
        self.topic = _s(topic)
        self.payload = _b(payload)
        self.qos = qos
        self.retain = bool(retain)
        self.dup = bool(dup)
        self.pid = pid
        self.sender = sender
        self.duplicate = False
        self.at = 0

    def text(self):
        """The payload as str."""
        return str(self.payload, "utf-8")

    def json(self):
        """The payload parsed as JSON."""
        import json

        return json.loads(self.payload)

    def __repr__(self):
        return "Message(%r, %r, qos=%d%s%s%s)" % (
            self.topic,
            self.payload,
            self.qos,
            ", retain" if self.retain else "",
            ", dup" if self.dup else "",
            ", from %s" % self.sender if self.sender else "",
        )


class Session:
    """What the broker keeps for one client id."""

    def __init__(self, client_id, clean):
        self.client_id = client_id
        self.clean = clean
        self.subscriptions = {}  # filter (str) -> granted QoS
        self.queue = []  # (Message, qos): for delivery when the client comes back
        self.out = {}  # pid -> [Message, qos, waiting for "PUBACK"|"PUBREC"|"PUBCOMP"]
        self.in_qos2 = []  # the client's QoS 2 ids received, PUBREL not yet
        self.next_pid = 0
        self.link = None  # the live Link, or None while the client is away
        self.will = None  # Message or None
        self.keepalive_ms = 0
        self.last_seen = 0

    def connected(self):
        return self.link is not None


class Link:
    """One connection as the client sees it: the port contract's Network object.

    state: "new", "open", "stalled" (half-open: silent both ways), "eof" (the broker
    closed: reads drain what was sent, then raise), "cut" (reset: reads and writes
    raise), "closed" (the client closed it). writes counts write() calls; written holds
    the bytes of each (while the broker records), sent each packet the broker sent.
    """

    def __init__(self, port):
        self.port = port
        self.broker = port.broker
        self.clock = port.clock
        self.state = "new"
        self.session = None
        self.open_args = None
        self.writes = 0  # write() calls
        self.written = []  # the bytes of each write() call (while broker.record)
        self.sent = []  # the bytes of each packet the broker sent (while broker.record)
        self.chunk = 0  # > 0: at most this many bytes per read_into
        self._tx = bytearray(_BUF)  # broker -> client: _tx[_tx_start:_tx_end] not read yet
        self._tx_start = 0
        self._tx_end = 0
        self._rx = bytearray(_BUF)  # client -> broker: _rx[0:_rx_len], a packet not complete
        self._rx_len = 0

    @property
    def closed(self):
        """True once the client closed the link."""
        return self.state == "closed"

    # ---- the port contract -------------------------------------------------------------

    def open(self, host, port, ssl_ctx, timeout_ms):
        self.open_args = (host, port, ssl_ctx, timeout_ms)
        b = self.broker
        if b.unreachable:
            wait = b.connect_delay_ms
            self.clock.advance(wait if wait < timeout_ms else timeout_ms)
            raise OSError(b.unreachable_errno, "umqtt_paho.testing: broker unreachable")
        self.state = "open"
        b.links.append(self)

    def read_into(self, buf, n, timeout_ms):
        st = self.state
        if st == "closed":
            raise OSError(_EBADF, "read on a closed link")
        if st == "cut":
            raise OSError(_ECONNRESET, "connection reset (umqtt_paho.testing cut)")
        s = self._tx_start
        avail = self._tx_end - s
        if avail > 0 and st != "stalled" and n > 0:
            k = n if n < avail else avail
            c = self.chunk
            if c and k > c:
                k = c
            tx = self._tx
            for i in range(k):
                buf[i] = tx[s + i]
            s += k
            if s == self._tx_end:
                self._tx_start = self._tx_end = 0
            else:
                self._tx_start = s
            return k
        if st == "eof":
            raise OSError(_ECONNRESET, "connection closed by the broker")
        # Nothing to read: the wait passes, and the broker may time a client out.
        self.clock.advance(timeout_ms)
        self.broker._expire()
        return 0

    def write(self, buf, n, timeout_ms):
        st = self.state
        if st == "closed":
            raise OSError(_EBADF, "write on a closed link")
        if st == "cut" or st == "eof":
            raise OSError(_ECONNRESET, "connection reset (umqtt_paho.testing)")
        self.writes += 1
        b = self.broker
        if b.record:
            self.written.append(bytes(memoryview(buf)[:n]))
        if st == "stalled":
            return  # half-open: the bytes go nowhere
        b._feed(self, buf, n)

    def close(self):
        if self.state != "closed":
            self.broker._gone(self, True)
            self.state = "closed"

    # ---- the broker's side -------------------------------------------------------------

    def send(self, data):
        """Raw bytes to the client, as they are (recorded in `sent`)."""
        if self.state == "open":
            if self.broker.record:
                self.sent.append(bytes(data))
            self.push(data, len(data))

    def push(self, data, n):
        """data[0:n] to the client, not recorded: allocates nothing once the link's
        buffer has grown to what the client leaves unread."""
        if self.state != "open":
            return
        tx = self._tx
        e = self._tx_end
        if e + n > len(tx):
            s = self._tx_start
            m = e - s
            if m + n > len(tx):
                new = bytearray(max(2 * len(tx), m + n))
                for i in range(m):
                    new[i] = tx[s + i]
                self._tx = tx = new
            else:
                for i in range(m):
                    tx[i] = tx[s + i]
            self._tx_start = 0
            self._tx_end = e = m
        for i in range(n):
            tx[e + i] = data[i]
        self._tx_end = e + n

    def unread(self):
        """Bytes sent to the client and not read yet."""
        return self._tx_end - self._tx_start

    def hangup(self):
        """The broker closes the link: the client reads what was sent, then its reads
        raise OSError(ECONNRESET); the will is published."""
        if self.state == "open" or self.state == "stalled":
            self.broker._gone(self, True)
            self.state = "eof"

    def _reset(self):
        # Unread bytes are lost with a reset connection.
        self._tx_start = self._tx_end = 0
        if self.state != "closed":
            self.state = "cut"


class Broker:
    """An MQTT 3.1.1 broker in memory, for Clients on FakePorts (see the file header).

    Records: received (Message per PUBLISH from a client), packets ((client id, packet
    name, value) per packet from a client), retained (topic -> payload), errors (what a
    client did against the spec; a test asserts it is empty), sessions (client id ->
    Session), links (every connection opened), counts (packets received, per type).
    """

    def __init__(self, clock=None):
        self.clock = clock if clock is not None else FakeClock()
        # behaviour a test may change
        self.connack_rc = 0
        self.users = None  # {user name: password}: other credentials get CONNACK 4
        self.unreachable = False
        self.unreachable_errno = 113
        self.connect_delay_ms = 0
        self.grant = None  # None: grant what was asked; or one SUBACK code for all
        self.connack = True
        self.puback = True
        self.pubrec = True
        self.pubrel = True
        self.pubcomp = True
        self.suback = True
        self.unsuback = True
        self.pingresp = True
        self.session_present = None  # None: the truth; True / False: what CONNACK says
        self.forward = True
        self.on_packet = None  # fn(link, name, value), after each packet from a client
        self.record = True
        # what happened
        self.received = []
        self.packets = []
        self.retained = {}  # topic -> payload (bytes)
        self._retained_qos = {}
        self.errors = []
        self.sessions = {}
        self.links = []
        self.counts = [0] * 16
        self._last = {}  # (client id, pid) -> the last Message with that id, any session
        self._ack = bytearray(4)  # the acks of record = False

    # ---- for tests ---------------------------------------------------------------------

    def publish(self, topic, payload, qos=0, retain=False):
        """Publish as another client would (a command to the device, say): stored if
        retained, sent to every matching subscription, queued for a persistent session
        that is away (QoS 1/2). Returns how many sessions it went to."""
        if qos not in (0, 1, 2):
            raise ValueError("qos must be 0, 1 or 2")
        m = Message(topic, payload, qos, retain)
        m.at = self.clock.now
        return self._route(m)

    def deliver(self, topic, payload, qos=0, retain=False, dup=False, pid=None, client_id=None):
        """Send client_id (the newest connected client if None) a PUBLISH, subscribed or
        not, and follow its QoS 1/2 flow as for any message the broker sends. pid=None
        takes the session's next free packet id. Returns the packet id (0 at QoS 0)."""
        if qos not in (0, 1, 2):
            raise ValueError("qos must be 0, 1 or 2")
        m = Message(topic, payload, qos, retain)
        m.at = self.clock.now
        return self._deliver(self._session_of(client_id), m, qos, retain, dup, pid)

    def release(self, pid, client_id=None):
        """PUBREL to client_id (the newest connected client if None): for a message
        whose PUBREC came while pubrel was False."""
        self._send(self._session_of(client_id).link, _sc.to_bytes(_sc.encode_ack, _PUBREL, pid))

    def cut(self, client_id=None):
        """Reset the link of client_id (of every client if None): the client's next
        read or write raises OSError(_ECONNRESET); the will is published."""
        for s in self._live(client_id):
            link = s.link
            self._gone(link, True)
            link._reset()

    def hangup(self, client_id=None):
        """Close the link of client_id (of every client if None) from the broker's
        side: what was sent is still read, then the client's reads raise
        OSError(ECONNRESET); the will is published."""
        for s in self._live(client_id):
            s.link.hangup()

    def stall(self, client_id=None):
        """Make the link of client_id (every client if None) half-open: silent both
        ways. The broker drops it (and publishes the will) once the client has been
        silent for 1.5 x its keepalive."""
        for s in self._live(client_id):
            s.link.state = "stalled"

    def connected(self, client_id=None):
        """True if client_id (any client if None) has a live connection."""
        return bool(self._live(client_id))

    def subscriptions(self, client_id):
        """{filter: granted QoS} of client_id's session ({} if it has none)."""
        s = self.sessions.get(_s(client_id))
        return dict(s.subscriptions) if s is not None else {}

    def messages(self, topic_filter="#", sender=None):
        """The Messages received from clients on topics matching topic_filter, resends
        of a message already received left out."""
        out = []
        for m in self.received:
            if m.duplicate or not _match(topic_filter, m.topic):
                continue
            if sender is None or m.sender == _s(sender):
                out.append(m)
        return out

    def payloads(self, topic_filter="#", sender=None):
        """Payloads (bytes) of messages(topic_filter, sender)."""
        return [m.payload for m in self.messages(topic_filter, sender)]

    def types(self, client_id=None):
        """Names of the packets received (from client_id, or all), in order."""
        cid = None if client_id is None else _s(client_id)
        return [p[1] for p in self.packets if cid is None or p[0] == cid]

    # ---- receiving ---------------------------------------------------------------------

    def _live(self, client_id):
        cid = None if client_id is None else _s(client_id)
        out = []
        for s in self.sessions.values():
            if s.link is not None and (cid is None or s.client_id == cid):
                out.append(s)
        return out

    def _session_of(self, client_id):
        if client_id is not None:
            live = self._live(client_id)
            if live:
                return live[0]
        else:
            for link in reversed(self.links):
                s = link.session
                if s is not None and s.link is link:
                    return s
        raise ValueError("no client %s is connected" % (client_id or ""))

    def _feed(self, link, buf, n):
        # The client wrote buf[0:n]: append it to what the link holds, then handle
        # every complete packet. Allocates nothing itself (see _quiet).
        rx = link._rx
        have = link._rx_len
        if have + n > len(rx):
            link._rx = rx = _grown(rx, have, have + n)
        for i in range(n):
            rx[have + i] = buf[i]
        have += n
        start = 0
        while start < have:
            try:
                hs = _sc.header_size(rx, start, have)
            except Exception as e:
                link._rx_len = 0
                self._error(link, "malformed remaining length: %r" % (e,))
                return
            if hs < 0:
                break
            end = start + hs + _sc.remaining_length(rx, start + 1, have)
            if end > have or link.state != "open":
                break
            first = rx[start]
            try:
                rec = self._packet(link, first, start + hs, end - start - hs)
            except Exception as e:  # malformed: as a broker, close the link
                link._rx_len = 0
                self._error(link, "malformed %s: %r" % (_type_name(first >> 4), e))
                return
            start = end
            if rec is not None and self.on_packet is not None:
                self.on_packet(link, rec[1], rec[2])
            rx = link._rx  # (on_packet may have written to the link)
        if start:
            for i in range(have - start):
                rx[i] = rx[start + i]
        link._rx_len = have - start

    def _error(self, link, text):
        self.errors.append(text)
        self._gone(link, True)
        link._reset()

    def _quiet(self, link, first, t, pos):
        # record = False: PUBLISH and PUBREL answered, PUBACK ignored, from the bytes,
        # allocating nothing. True if handled.
        rx = link._rx
        if t == _PUBLISH:
            qos = (first >> 1) & 3
            if qos:
                tl = rx[pos] << 8 | rx[pos + 1]
                pid = rx[pos + 2 + tl] << 8 | rx[pos + 3 + tl]
                if qos == 1:
                    if self.puback:
                        link.push(self._ack, _sc.encode_ack(self._ack, _PUBACK, pid))
                elif self.pubrec:
                    link.push(self._ack, _sc.encode_ack(self._ack, _PUBREC, pid))
            return True
        if t == _PUBREL:
            if self.pubcomp:
                pid = rx[pos] << 8 | rx[pos + 1]
                link.push(self._ack, _sc.encode_ack(self._ack, _PUBCOMP, pid))
            return True
        return t == _PUBACK

    def _packet(self, link, first, pos, rl):
        # One packet from the client; returns what was appended to `packets` (or None).
        t = first >> 4
        self.counts[t] += 1
        s = link.session
        if s is None:
            if t != _CONNECT:
                self._error(
                    link, "first packet is %s, not CONNECT [MQTT-3.1.0-1]" % _type_name(t)
                )
                return None
        else:
            s.last_seen = self.clock.now
            if not self.record and self._quiet(link, first, t, pos):
                return None
            if t == _CONNECT:
                self._error(link, "a second CONNECT [MQTT-3.1.0-2]")
                return None
        t, value = _sc.decode_packet(first, link._rx, pos, rl)
        if t == _CONNECT:
            return self._connect(link, value)
        if t == _PUBLISH:
            return self._on_publish(link, s, value)
        if t == _SUBSCRIBE:
            return self._subscribe(link, s, value)
        cid = s.client_id
        name = _type_name(t)
        if t == _UNSUBSCRIBE:
            pid, filters = value
            filters = [_s(f) for f in filters]
            for f in filters:
                s.subscriptions.pop(f, None)
            value = (pid, filters)
        rec = (cid, name, value)
        if t == _PUBACK or t == _PUBCOMP:
            self.packets.append(rec)
            self._outbound_ack(s, value, name)
        elif t == _PUBREC:
            self.packets.append(rec)
            if self._outbound_ack(s, value, name) and self.pubrel:
                self._send(link, _sc.to_bytes(_sc.encode_ack, _PUBREL, value))
        elif t == _PUBREL:
            self.packets.append(rec)
            if value in s.in_qos2:
                s.in_qos2.remove(value)
            if self.pubcomp:
                self._send(link, _sc.to_bytes(_sc.encode_ack, _PUBCOMP, value))
        elif t == _UNSUBSCRIBE:
            self.packets.append(rec)
            if self.unsuback:
                self._send(link, _sc.to_bytes(_sc.encode_unsuback, value[0]))
        elif t == _PINGREQ:
            self.packets.append(rec)
            if self.pingresp:
                self._send(link, _sc.to_bytes(_sc.encode_pingresp))
        elif t == _DISCONNECT:
            self.packets.append(rec)
            s.will = None  # [MQTT-3.1.2-10]
            self._gone(link, False)
            link.state = "eof"
        else:
            self._error(link, "a client must not send %s" % name)
            return None
        return rec

    def _connect(self, link, d):
        will = None
        if d["will_topic"] is not None:
            will = Message(d["will_topic"], d["will_payload"], d["will_qos"], d["will_retain"])
        user = d["username"]
        password = d["password"]
        clean = d["clean_session"]
        cid = _s(d["client_id"])
        info = {
            "protocol": _s(d["protocol_name"]),
            "level": d["level"],
            "client_id": cid,
            "clean_session": clean,
            "keepalive": d["keepalive"],
            "will": will,
            "username": None if user is None else _s(user),
            "password": password,
        }
        rec = (cid, "CONNECT", info)
        self.packets.append(rec)
        rc = self.connack_rc
        if not rc and not cid and not clean:
            rc = 2  # identifier rejected [MQTT-3.1.3-8]
        if not rc and self.users is not None:
            if user is None or self.users.get(_s(user)) != (
                None if password is None else _s(password)
            ):
                rc = 4
        if rc:
            if self.connack:
                self._send(link, _sc.to_bytes(_sc.encode_connack, 0, rc, False))
            link.state = "eof"  # the broker closes after a refusal [MQTT-3.2.2-5]
            return rec
        old = self.sessions.get(cid)
        if old is not None and old.link is not None:
            other = old.link  # take-over [MQTT-3.1.4-2]
            self._gone(other, False)
            other._reset()
        if old is None or clean or old.clean or self.session_present is False:
            s = Session(cid, clean)  # a new session [MQTT-3.1.2-6]
            present = False
        else:
            s = old
            present = True
        self.sessions[cid] = s
        s.clean = clean
        s.link = link
        s.will = will
        s.keepalive_ms = d["keepalive"] * 1000
        s.last_seen = self.clock.now
        link.session = s
        if self.connack:
            flag = present if self.session_present is None else self.session_present
            self._send(link, _sc.to_bytes(_sc.encode_connack, 1 if flag else 0, 0, False))
        if present:
            # Unacknowledged messages first, in order, then what was queued [4.4].
            for pid in sorted(s.out):
                m, qos, state = s.out[pid]
                if state == "PUBCOMP":
                    self._send(link, _sc.to_bytes(_sc.encode_ack, _PUBREL, pid))
                else:
                    self._send(link, _publish(m, qos, False, True, pid))
            queue = s.queue
            s.queue = []
            for m, qos in queue:
                self._deliver(s, m, qos, False)
        return rec

    def _on_publish(self, link, s, d):
        qos = d["qos"]
        pid = d["pid"]
        m = Message(d["topic"], d["payload"], qos, d["retain"], d["dup"], pid, s.client_id)
        m.at = self.clock.now
        if qos:
            # A resend (DUP) of the last message with this id: the first copy arrived.
            last = self._last.get((s.client_id, pid))
            if m.dup and last is not None and last.topic == m.topic and last.payload == m.payload:
                m.duplicate = True
            self._last[(s.client_id, pid)] = m
        if qos == 2 and pid in s.in_qos2:
            m.duplicate = True
        self.received.append(m)
        rec = (s.client_id, "PUBLISH", m)
        self.packets.append(rec)
        if qos == 1:
            if self.puback:
                self._send(link, _sc.to_bytes(_sc.encode_ack, _PUBACK, pid))
        elif qos == 2:
            first_time = pid not in s.in_qos2
            if first_time:
                s.in_qos2.append(pid)
            if self.pubrec:
                self._send(link, _sc.to_bytes(_sc.encode_ack, _PUBREC, pid))
            if not first_time:
                return rec  # already forwarded [MQTT-4.3.3-2]
        if self.forward:
            self._route(m)
        return rec

    def _subscribe(self, link, s, value):
        pid, filters = value
        asked = [(_s(f), q) for f, q in filters]
        rec = (s.client_id, "SUBSCRIBE", (pid, asked))
        self.packets.append(rec)
        codes = []
        for f, q in asked:
            code = q if self.grant is None else self.grant
            if code != 0x80:
                s.subscriptions[f] = code
            codes.append(code)
        if self.suback:
            self._send(link, _sc.to_bytes(_sc.encode_suback, pid, codes, False))
        # Retained messages matching each new subscription, retain flag set [MQTT-3.3.1-6]
        for i in range(len(asked)):
            code = codes[i]
            if code == 0x80:
                continue
            for topic in sorted(self.retained):
                if _match(asked[i][0], topic):
                    m = Message(topic, self.retained[topic], self._retained_qos[topic], True)
                    self._deliver(s, m, min(m.qos, code), True)
        return rec

    def _outbound_ack(self, s, pid, got):
        entry = s.out.get(pid)
        if entry is None or entry[2] != got:
            self.errors.append(
                "%s from %s for packet id %d, which %s"
                % (got, s.client_id, pid, "waits for " + entry[2] if entry else "is not in flight")
            )
            return False
        if got == "PUBREC":
            entry[2] = "PUBCOMP"
        else:
            del s.out[pid]
        return True

    # ---- sending -----------------------------------------------------------------------

    def _send(self, link, data):
        link.send(data)

    def _route(self, m):
        if m.retain:
            if m.payload:
                self.retained[m.topic] = m.payload
                self._retained_qos[m.topic] = m.qos
            elif m.topic in self.retained:
                del self.retained[m.topic]
                del self._retained_qos[m.topic]
        n = 0
        for s in list(self.sessions.values()):
            best = -1
            for f in s.subscriptions:
                if _match(f, m.topic) and s.subscriptions[f] > best:
                    best = s.subscriptions[f]
            if best < 0:
                continue
            qos = m.qos if m.qos < best else best
            if s.link is not None:
                self._deliver(s, m, qos, False)
            elif qos and not s.clean:
                s.queue.append((m, qos))
            else:
                continue  # QoS 0 to an absent client: dropped
            n += 1
        return n

    def _deliver(self, s, m, qos, retain, dup=False, pid=None):
        link = s.link
        if link is None:
            if qos and not s.clean:
                s.queue.append((m, qos))
            return 0
        if not qos:
            pid = 0
        else:
            if pid is None:
                pid = s.next_pid
                while True:
                    pid = pid % 65535 + 1
                    if pid not in s.out:
                        break
                s.next_pid = pid
            s.out[pid] = [m, qos, "PUBACK" if qos == 1 else "PUBREC"]
        self._send(link, _publish(m, qos, retain, dup, pid))
        return pid

    def _gone(self, link, publish_will):
        # The link ended; without DISCONNECT the will goes out [MQTT-3.1.2-8].
        s = link.session
        if s is None or s.link is not link:
            return
        s.link = None
        will = s.will
        s.will = None
        if s.clean:
            del self.sessions[s.client_id]  # [MQTT-3.1.2-6]
        if publish_will and will is not None:
            will.sender = s.client_id
            will.at = self.clock.now
            self._route(will)

    def _expire(self):
        # A client silent for 1.5 x its keepalive is dropped [MQTT-3.1.2-24]. (Over the
        # links, a list: no allocation on an idle read.)
        now = self.clock.now
        for link in self.links:
            s = link.session
            if s is not None and s.link is link:
                ka = s.keepalive_ms
                if ka and now - s.last_seen >= ka + (ka >> 1):
                    self._gone(link, True)
                    link._reset()


def _publish(m, qos, retain, dup, pid):
    return _sc.to_bytes(_sc.encode_publish_message, _b(m.topic), m.payload, qos, retain, dup, pid)


class FakePort:
    """A port (pass it as Client(port=...)): an in-memory Broker and a FakeClock.

    Several FakePorts may share one broker (and so one clock): FakePort(broker=b) makes
    a second client, an operator's console say, talk to the same broker. The port has
    the clock's names (ticks_ms, ticks_diff, ticks_add, sleep_ms), so it can be given
    to application code that wants a clock, too.
    """

    NAME = "testing"
    start_thread = None  # no threads: client.cycle() drives everything
    Signal = None

    def __init__(self, broker=None, clock=None):
        if clock is None:
            clock = broker.clock if broker is not None else FakeClock()
        self.clock = clock
        self.broker = broker if broker is not None else Broker(clock)
        self.links = []  # every Network() made, in order

    @property
    def link(self):
        """The last connection opened (or attempted)."""
        return self.links[-1] if self.links else None

    def Network(self):
        link = Link(self)
        self.links.append(link)
        return link

    def ticks_ms(self):
        return self.clock.ticks_ms()

    def ticks_diff(self, a, b):
        return self.clock.ticks_diff(a, b)

    def ticks_add(self, t, ms):
        return self.clock.ticks_add(t, ms)

    def sleep_ms(self, ms):
        self.clock.advance(ms)

    def thread_id(self):
        return 0

    class allocate_lock:  # noqa: N801  (no threads: `with` works, locks nothing)
        def __enter__(self):
            return self

        def __exit__(self, a, b, c):
            return False
