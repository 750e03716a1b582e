# umqtt_paho forward: the client's store-and-forward path (docs/store-and-forward.md),
# loaded only by a Client given outbox= or store=, so a client without them does not
# carry its bytecode. A Forward is the client's queue: the driver (client.py) calls its
# hooks, and it keeps session slots through the session's own calls (session.py).
#
# - publish(): a QoS 1/2 publish (or a QoS 0 with queue_qos0) that goes through the
#   queue: logged on flash first (store), then straight out if nothing older waits and
#   a slot is free, else copied into the outbox ring (or left on flash only).
# - drain(): queued messages out, oldest first, drain_burst per read cycle, into free
#   in-flight slots (one always left free); the slot's record offset is kept here.
# - refill(): the flash log's messages after the last loaded one into the ring, in
#   batches (read once a quarter of the ring is free).
# - acked() / logged(): a slot's PUBACK, PUBREC or PUBCOMP: the record leaves the ring,
#   the log acks it (or, at PUBREC, notes the release before the PUBREL goes out).
# - resend(): a slot whose message lives in the ring goes out again from the ring.
# Locks: the client's _wlock (writes) before its _tlock (slots, outbox); self.lock (the
# flash log) before _tlock.

try:
    from micropython import const
except ImportError:  # CPython: the host port runs the same file
    const = int  # a function here would cost RAM on the board too

from .packet import ArgError, encode_publish, encode_ack
from .outbox import RECORD_HEADER

_DRAIN_BURST = const(4)  # client.drain_burst's default

_PUBLISH = const(3)
_PUBREC = const(5)
_PUBREL = const(6)
_PUBCOMP = const(7)
_LOG_WARNING = const(4)
_LOG_ERR = const(8)
_T_OUTBOX_FIT = const(45)
_T_LOG_FULL = const(46)
_T_QUEUED_NOT_SENT = const(47)
_T_LOG_TOO_BIG = const(48)
_T_LOG_RELEASE = const(49)


def pid_of(seq):
    # The packet id of flash log message seq: a pure function of it, so after a reset
    # a message goes out again under the id the broker's session may hold.
    return (seq - 1) % 65535 + 1


class Forward:
    def __init__(self, c, outbox, store):
        if store is not None and outbox is None:
            from .outbox import Outbox

            outbox = Outbox(2048)
        c.outbox = outbox  # read: outbox.dropped, outbox.count, outbox.unsent
        c.store = store
        # The client's store-and-forward settings (a client without outbox or store
        # has neither): messages sent per read cycle at most, and whether QoS 0
        # publishes are queued too while offline.
        c.drain_burst = _DRAIN_BURST
        c.queue_qos0 = False
        self.c = c
        self.outbox = outbox
        self.store = store
        n = len(c.session.states)
        self.off = [-1] * n  # each slot's record in the outbox, or -1
        self.lseq = [0] * n  # each slot's seq in the flash log, or 0
        self.lock = c._port.allocate_lock() if c._port.start_thread else c._tlock
        # The flash log: seqs up to loaded went to the outbox or a slot; behind: it holds
        # messages after them. Seqs up to recovered were logged before this Client
        # existed: they may have been sent (DUP) under the pid of their seq.
        self.loaded = 0
        self.released = []  # recovered QoS 2 seqs the broker had PUBREC'd
        self.need_t = 0  # the sizes of the next logged message the outbox must fit
        self.need_p = 0
        self.behind = store is not None and len(store) > 0
        self.spare = 2 if n > 1 else 1  # queued sends leave a slot free
        self.recovered = store.last_seq() if store is not None else 0

    def queues(self, qos):
        # Does this publish go through the queue?
        c = self.c
        if qos:
            return True
        return c.queue_qos0 and (not c._connected or self.behind or self.outbox.unsent)

    def publish(self, topic, payload, plen, qos, retain, wait):
        # Order per topic needs one queue: a message goes straight out only when nothing
        # older waits; otherwise, or when disconnected or no slot is free, it is copied
        # into the outbox and sent from there. Checks come first, so a refused message
        # was never accepted.
        c = self.c
        ob = self.outbox
        store = self.store
        tl = len(topic)
        with c._wlock:
            # Encoded only to check it (topic, header size against the send buffer): the
            # packet the drain sends later has the same header but for its id.
            encode_publish(c._sbuf, topic, plen, qos, retain, False, 1 if qos else 0,
                           topic is c._topic_ok)  # fmt: skip
        if RECORD_HEADER + tl + plen > ob.capacity:
            raise ArgError(_T_OUTBOX_FIT, tl + plen, ob.capacity)
        if isinstance(topic, bytes):
            c._topic_ok = topic
        lseq = 0
        if qos and store is not None:
            with self.lock:
                lseq = store.append(topic, payload, qos, retain)
            if not lseq:
                c._log(_LOG_WARNING, _T_LOG_FULL)
                return 0
        i = -1
        s = c.session
        with c._tlock:
            # One decision, under the lock refill() loads the log under: a reading
            # thread's refill() may have taken this very message from the log already.
            fresh = not lseq or lseq > self.loaded
            if fresh and qos and c._connected and not self.behind and not ob.unsent:
                i = s.take(_PUBLISH, pid_of(lseq) if lseq else 0, self.spare)
            if not fresh or i >= 0:
                pass  # refill() queued it, or it goes straight out
            elif not lseq:
                ob.put(topic, payload, qos, retain)  # the outbox's policy applies
            elif self.behind or not ob.has_room(tl, plen):
                self.behind = True  # the log holds it: the outbox is a window, never dropping
            else:
                ob.put(topic, payload, qos, retain, lseq)
            if fresh and lseq and not self.behind:
                self.loaded = lseq
            if i >= 0:
                self.off[i] = -1
                self.lseq[i] = lseq
        if i >= 0:
            if not isinstance(payload, bytes):
                payload = bytes(payload)  # kept until acked
            deadline = c._deadline()
            return c._send_in_slot(i, topic, payload, qos, retain, wait, deadline)
        if c._connected:
            self.drain()
        return 0

    def drain(self):
        # Send queued messages, oldest first: at most drain_burst per call (one call per
        # read cycle, so a backlog never starves keepalive or inbound messages), and
        # QoS 1/2 only into free in-flight slots, one always left for other commands.
        c = self.c
        ob = self.outbox
        s = c.session
        n = c.drain_burst
        while n > 0 and c._connected:
            with c._wlock:
                with c._tlock:
                    off = ob.next_unsent()
                    if off >= 0:
                        qos = ob.qos(off)
                        pid = 0
                        first = 0
                        if qos:
                            lseq = ob.seq(off)
                            i = s.take(_PUBLISH, pid_of(lseq) if lseq else 0, self.spare)
                            if i < 0:
                                return  # the window is full: acks will free it
                            pid = s.pids[i]
                            self.off[i] = off
                            self.lseq[i] = lseq
                            s.accept(i, None, None, qos, ob.retain(off), False)
                            # Logged before this Client: it may have gone out before
                            # a reset, with this pid.
                            first = 8 if lseq and lseq <= self.recovered else 0
                            if first and self.released and lseq in self.released:
                                self.released.remove(lseq)
                                if s.present:
                                    s.ack(_PUBREC, pid)  # PUBREC'd before the reset
                                    first = _PUBREL
                        ob.take()
                if off < 0:
                    # Flash is read in batches: once a quarter of the ring is free.
                    if (
                        self.behind
                        and ob.capacity - ob.used >= ob.capacity >> 2
                        and ob.has_room(self.need_t, self.need_p)
                    ):
                        if self.refill():
                            continue
                    return
                try:
                    if first == _PUBREL:
                        c._write(c._sbuf, encode_ack(c._sbuf, _PUBREL, pid),
                                 c._command_timeout)  # [MQTT-4.4.0-1]  # fmt: skip
                    else:
                        self.write(off, pid, first)
                except Exception as e:
                    # The link failed (closed; the loop reports it). A QoS 1/2 message
                    # is in its slot and resent after the reconnect.
                    c._log(_LOG_WARNING, _T_QUEUED_NOT_SENT, e)
                    if not qos:
                        with c._tlock:
                            ob.done(off)
                    return
            if not qos:
                with c._tlock:
                    ob.done(off)  # QoS 0: sent is done
            n -= 1

    def write(self, off, pid, dup):
        # Caller holds _wlock. The PUBLISH of the outbox record at off, from the ring.
        c = self.c
        ob = self.outbox
        sbuf = c._sbuf
        n = ob.copy_publish(off, sbuf, pid, dup)
        if n >= 0:
            c._write(sbuf, n, c._command_timeout)
            return
        n = ob.copy_header(off, sbuf, pid, dup)
        c._write(sbuf, n, c._command_timeout)
        p = ob.payload_off(off)
        pl = ob.payload_len(off)
        c._write(ob.view[p : p + pl], pl, c._command_timeout)  # one 16 B view

    def resend(self, i, pid, dup):
        # After a CONNACK: slot i's message again, from the ring if it lives there.
        off = self.off[i]
        if off < 0:
            return False
        with self.c._wlock:
            self.write(off, pid, dup)  # the record stays in the ring until acked
        return True

    def acked(self, i, t):
        # Caller holds _tlock. PUBACK, PUBREC or PUBCOMP of slot i: the record leaves
        # the ring on the final ack; returns its flash log seq for logged(), or 0.
        lseq = self.lseq[i]
        if t != _PUBREC:
            off = self.off[i]
            if off >= 0:
                self.outbox.done(off)
            self.off[i] = -1
            self.lseq[i] = 0
        return lseq

    def logged(self, lseq, t):
        # The flash log learns of the ack. At PUBREC: on flash before the PUBREL, so
        # after a reset only the PUBREL is owed (a PUBLISH could arrive as a new message
        # once this one is released).
        try:
            with self.lock:
                if t == _PUBREC:
                    self.store.release(lseq)
                else:
                    self.store.ack(lseq)
        except Exception as e:
            if t != _PUBREC:
                raise
            self.c._log(_LOG_ERR, _T_LOG_RELEASE, lseq, e)

    def refill(self):
        # Messages of the flash log not yet in RAM into the outbox, oldest first, as
        # many as fit. True if any came. Reads flash and allocates what it loads.
        c = self.c
        ob = self.outbox
        store = self.store
        got = False
        with self.lock:
            for rec in store.pending(self.loaded):  # the ones after those loaded
                seq = rec[0]
                topic = rec[1].encode()
                payload = rec[2]
                rel = store.released(seq)
                with c._tlock:
                    if not ob.has_room(len(topic), len(payload)):
                        if ob.count:
                            # Later, once acks made room for it: until then drain()
                            # does not read flash for nothing.
                            self.need_t = len(topic)
                            self.need_p = len(payload)
                            return got
                        # Larger than the whole outbox (logged with a larger one):
                        # it can never be sent from it.
                        c._log(_LOG_ERR, _T_LOG_TOO_BIG, seq)
                        store.ack(seq)
                        self.loaded = seq
                        continue
                    ob.put(topic, payload, rec[3], rec[4], seq)
                    self.need_t = self.need_p = 0
                    self.loaded = seq  # with the put: publish() decides by it
                    if rel:
                        self.released.append(seq)
                got = True
            with c._tlock:
                self.behind = False
        return got

    def sync(self):
        if self.store is not None:
            with self.lock:
                self.store.sync()  # acks and messages still in RAM: before deep sleep

    def pending(self, n):
        # The client's count of unacknowledged messages, with those queued here.
        n += self.outbox.unsent
        if self.store is not None:
            with self.lock:
                logged = len(self.store)
            if logged > n:
                n = logged  # some wait on flash only (the outbox holds a window)
        return n
