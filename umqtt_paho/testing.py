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
# No threads (the port's start_thread is None): drive the client with client.cycle()
# (connect(..., start_loop=False)). This file runs on MicroPython too: plain code only.

try:
    import errno as _errno

    _EBADF = _errno.EBADF
    _ECONNRESET = _errno.ECONNRESET
except ImportError:  # pragma: no cover  (a port without errno)
    _EBADF = 9
    _ECONNRESET = 104

from . import packet as _pk
from .errors import type_name as _type_name
from .topic import matches as _matches

__all__ = ("FakeClock", "FakePort", "Broker", "Message", "Session", "Link")

_CONNECT = 1
_CONNACK = 2
_PUBLISH = 3
_PUBACK = 4
_PUBREC = 5
_PUBREL = 6
_PUBCOMP = 7
_SUBSCRIBE = 8
_SUBACK = 9
_UNSUBSCRIBE = 10
_UNSUBACK = 11
_PINGREQ = 12
_PINGRESP = 13
_DISCONNECT = 14

_PERIOD = 1 << 30  # MicroPython's ticks period
_HALF = 1 << 29


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
    raise), "closed" (the client closed it).
    """

    def __init__(self, port):
        self.port = port
        self.broker = port.broker
        self.clock = port.clock
        self.state = "new"
        self.session = None
        self.open_args = None
        self.writes = 0  # write() calls
        self._in = b""  # broker -> client bytes, from _pos on not read yet
        self._pos = 0
        self._out = b""  # client -> broker bytes of a packet not complete yet

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
        avail = len(self._in) - self._pos
        if avail > 0 and st != "stalled" and n > 0:
            k = n if n < avail else avail
            p = self._pos
            buf[0:k] = self._in[p : p + k]
            p += k
            if p == len(self._in):
                self._in = b""
                p = 0
            self._pos = p
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
        if st == "stalled":
            return  # half-open: the bytes go nowhere
        self.broker._feed(self, bytes(memoryview(buf)[:n]))

    def close(self):
        if self.state != "closed":
            self.broker._gone(self, True)
            self.state = "closed"

    # ---- the broker's side -------------------------------------------------------------

    def _send(self, data):
        if self.state == "open":
            self._in = self._in[self._pos :] + data
            self._pos = 0

    def _reset(self):
        # Unread bytes are lost with a reset connection.
        self._in = b""
        self._pos = 0
        if self.state != "closed":
            self.state = "cut"


class Broker:
    """An MQTT 3.1.1 broker in memory, for Clients on FakePorts (see the file header).

    Records: received (Message per PUBLISH from a client), packets ((client id, packet
    name, value) per packet from a client), retained (topic -> payload), errors (what a
    client did against the spec; a test asserts it is empty), sessions (client id ->
    Session), links (every connection opened).
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
        self.puback = True
        self.pubrec = True
        self.pubcomp = True
        self.pingresp = True
        # what happened
        self.received = []
        self.packets = []
        self.retained = {}  # topic -> payload (bytes)
        self._retained_qos = {}
        self.errors = []
        self.sessions = {}
        self.links = []
        self._last = {}  # (client id, pid) -> the last Message with that id, any session

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

    def cut(self, client_id=None):
        """Reset the link of client_id (of every client if None): the client's next
        read or write raises OSError(_ECONNRESET); the will is published."""
        for s in self._live(client_id):
            link = s.link
            self._gone(link, True)
            link._reset()

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

    def _feed(self, link, data):
        buf = link._out + data
        start = 0
        end = len(buf)
        while start < end:
            try:
                rl = _pk.remaining_length(buf, start + 1, end)
            except Exception as e:
                self._error(link, "malformed remaining length: %r" % (e,))
                return
            if rl < 0:
                break
            hs = 1 + _pk.remaining_length_size(rl)
            if start + hs + rl > end:
                break
            first = buf[start]
            body = buf[start + hs : start + hs + rl]
            start += hs + rl
            if link.state != "open":
                break
            try:
                self._packet(link, first, body)
            except Exception as e:  # malformed: as a broker, close the link
                self._error(link, "malformed %s: %r" % (_type_name(first >> 4), e))
                return
        link._out = buf[start:]

    def _error(self, link, text):
        self.errors.append(text)
        self._gone(link, True)
        link._reset()

    def _packet(self, link, first, body):
        t = first >> 4
        s = link.session
        cid = s.client_id if s is not None else None
        if s is None and t != _CONNECT:
            self._error(link, "first packet is %s, not CONNECT [MQTT-3.1.0-1]" % _type_name(t))
            return
        if s is not None:
            s.last_seen = self.clock.now
        if t == _CONNECT:
            if s is not None:
                self._error(link, "a second CONNECT [MQTT-3.1.0-2]")
                return
            self._connect(link, body)
        elif t == _PUBLISH:
            self._on_publish(link, s, first, body)
        elif t == _PUBACK:
            self.packets.append((cid, "PUBACK", _u16(body, 0)))
            self._outbound_ack(s, _u16(body, 0), "PUBACK")
        elif t == _PUBREC:
            pid = _u16(body, 0)
            self.packets.append((cid, "PUBREC", pid))
            if self._outbound_ack(s, pid, "PUBREC"):
                link._send(_ack(_PUBREL, pid))
        elif t == _PUBREL:
            pid = _u16(body, 0)
            self.packets.append((cid, "PUBREL", pid))
            if pid in s.in_qos2:
                s.in_qos2.remove(pid)
            if self.pubcomp:
                link._send(_ack(_PUBCOMP, pid))
        elif t == _PUBCOMP:
            self.packets.append((cid, "PUBCOMP", _u16(body, 0)))
            self._outbound_ack(s, _u16(body, 0), "PUBCOMP")
        elif t == _SUBSCRIBE:
            self._subscribe(link, s, body)
        elif t == _UNSUBSCRIBE:
            pid = _u16(body, 0)
            filters = []
            pos = 2
            while pos < len(body):
                f, pos = _string(body, pos)
                filters.append(_s(f))
                s.subscriptions.pop(_s(f), None)
            self.packets.append((cid, "UNSUBSCRIBE", (pid, filters)))
            link._send(_ack(_UNSUBACK, pid))
        elif t == _PINGREQ:
            self.packets.append((cid, "PINGREQ", None))
            if self.pingresp:
                link._send(bytes((_PINGRESP << 4, 0)))
        elif t == _DISCONNECT:
            self.packets.append((cid, "DISCONNECT", None))
            s.will = None  # [MQTT-3.1.2-10]
            self._gone(link, False)
            link.state = "eof"
        else:
            self._error(link, "a client must not send %s" % _type_name(t))

    def _connect(self, link, body):
        pos = 0
        name, pos = _string(body, pos)
        level = body[pos]
        flags = body[pos + 1]
        keepalive = _u16(body, pos + 2)
        pos += 4
        cid, pos = _string(body, pos)
        will = None
        if flags & 0x04:
            wt, pos = _string(body, pos)
            wp, pos = _string(body, pos)
            will = Message(wt, wp, (flags >> 3) & 3, flags & 0x20)
        user = None
        password = None
        if flags & 0x80:
            user, pos = _string(body, pos)
        if flags & 0x40:
            password, pos = _string(body, pos)
        clean = bool(flags & 0x02)
        cid = _s(cid)
        info = {
            "protocol": _s(name),
            "level": level,
            "client_id": cid,
            "clean_session": clean,
            "keepalive": keepalive,
            "will": will,
            "username": None if user is None else _s(user),
            "password": password,
        }
        self.packets.append((cid, "CONNECT", info))
        rc = self.connack_rc
        if not rc and not cid and not clean:
            rc = 2  # identifier rejected [MQTT-3.1.3-8]
        if not rc and self.users is not None:
            if user is None or self.users.get(_s(user)) != (
                None if password is None else _s(password)
            ):
                rc = 4
        if rc:
            link._send(bytes((_CONNACK << 4, 2, 0, rc)))
            link.state = "eof"  # the broker closes after a refusal [MQTT-3.2.2-5]
            return
        old = self.sessions.get(cid)
        if old is not None and old.link is not None:
            other = old.link  # take-over [MQTT-3.1.4-2]
            self._gone(other, False)
            other._reset()
        if old is None or clean or old.clean:
            s = Session(cid, clean)  # a new session [MQTT-3.1.2-6]
            present = False
        else:
            s = old
            present = True
        self.sessions[cid] = s
        s.clean = clean
        s.link = link
        s.will = will
        s.keepalive_ms = keepalive * 1000
        s.last_seen = self.clock.now
        link.session = s
        link._send(bytes((_CONNACK << 4, 2, 1 if present else 0, 0)))
        if present:
            # Unacknowledged messages first, in order, then what was queued [4.4].
            for pid in sorted(s.out):
                m, qos, state = s.out[pid]
                if state == "PUBCOMP":
                    link._send(_ack(_PUBREL, pid))
                else:
                    link._send(_publish(m, qos, False, True, pid))
            queue = s.queue
            s.queue = []
            for m, qos in queue:
                self._deliver(s, m, qos, False)

    def _on_publish(self, link, s, first, body):
        qos = (first >> 1) & 3
        tl = _u16(body, 0)
        topic = body[2 : 2 + tl]
        pos = 2 + tl
        pid = 0
        if qos:
            pid = _u16(body, pos)
            pos += 2
        m = Message(topic, body[pos:], qos, first & 1, first & 8, pid, s.client_id)
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
        self.packets.append((s.client_id, "PUBLISH", m))
        if qos == 1:
            if self.puback:
                link._send(_ack(_PUBACK, pid))
        elif qos == 2:
            first_time = pid not in s.in_qos2
            if first_time:
                s.in_qos2.append(pid)
            if self.pubrec:
                link._send(_ack(_PUBREC, pid))
            if not first_time:
                return  # already forwarded [MQTT-4.3.3-2]
        self._route(m)

    def _subscribe(self, link, s, body):
        pid = _u16(body, 0)
        pos = 2
        asked = []
        while pos < len(body):
            f, pos = _string(body, pos)
            asked.append((_s(f), body[pos]))
            pos += 1
        self.packets.append((s.client_id, "SUBSCRIBE", (pid, asked)))
        codes = []
        for f, q in asked:
            code = q if self.grant is None else self.grant
            if code != 0x80:
                s.subscriptions[f] = code
            codes.append(code)
        link._send(_header(_SUBACK << 4, 2 + len(codes)) + _u16b(pid) + bytes(codes))
        # Retained messages matching each new subscription, retain flag set [MQTT-3.3.1-6]
        for i in range(len(asked)):
            code = codes[i]
            if code == 0x80:
                continue
            for topic in sorted(self.retained):
                if _match(asked[i][0], topic):
                    m = Message(topic, self.retained[topic], self._retained_qos[topic], True)
                    self._deliver(s, m, min(m.qos, code), True)

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

    def _deliver(self, s, m, qos, retain):
        link = s.link
        if link is None:
            if qos and not s.clean:
                s.queue.append((m, qos))
            return
        pid = 0
        if qos:
            pid = s.next_pid
            while True:
                pid = pid % 65535 + 1
                if pid not in s.out:
                    break
            s.next_pid = pid
            s.out[pid] = [m, qos, "PUBACK" if qos == 1 else "PUBREC"]
        link._send(_publish(m, qos, retain, False, pid))

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
        # A client silent for 1.5 x its keepalive is dropped [MQTT-3.1.2-24].
        now = self.clock.now
        for s in list(self.sessions.values()):
            ka = s.keepalive_ms
            if s.link is not None and ka and now - s.last_seen >= ka + (ka >> 1):
                link = s.link
                self._gone(link, True)
                link._reset()


def _u16(b, pos):
    return b[pos] << 8 | b[pos + 1]


def _u16b(n):
    return bytes((n >> 8, n & 0xFF))


def _string(b, pos):
    n = _u16(b, pos)
    return bytes(b[pos + 2 : pos + 2 + n]), pos + 2 + n


def _header(first, rl):
    out = [first]
    while True:
        d = rl & 0x7F
        rl >>= 7
        out.append(d | 0x80 if rl else d)
        if not rl:
            return bytes(out)


def _ack(t, pid):
    buf = bytearray(4)
    _pk.encode_ack(buf, t, pid)
    return bytes(buf)


def _publish(m, qos, retain, dup, pid):
    topic = _b(m.topic)
    buf = bytearray(len(topic) + 9)
    n = _pk.encode_publish(buf, topic, len(m.payload), qos, retain, dup, pid)
    return bytes(buf[:n]) + m.payload


class FakePort:
    """A port (pass it as Client(port=...)): an in-memory Broker and a FakeClock.

    Several FakePorts may share one broker (and so one clock): FakePort(broker=b) makes
    a second client, an operator's console say, talk to the same broker. The port has
    the clock's names (ticks_ms, ticks_diff, ticks_add, sleep_ms), so it can be given
    to application code that wants a clock, too.
    """

    NAME = "testing"
    start_thread = None  # no threads: client.cycle() drives everything
    allocate_lock = None
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
