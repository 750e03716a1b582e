# umqtt_paho forward: the client's store-and-forward path (docs/store-and-forward.md),
# loaded only by a Client given outbox= or store=, so a client without them does not
# carry its bytecode. Functions of the Client object c, run under its locks:
#
# - publish_stored(): a QoS 1/2 publish (or a QoS 0 with queue_qos0) that goes through
#   the queue: logged on flash first (store), then straight out if nothing older waits
#   and a slot is free, else copied into the outbox ring (or left on flash only).
# - drain(): queued messages out, oldest first, drain_burst per read cycle, into free
#   in-flight slots (one always left free); a slot keeps the record's ring offset.
# - refill(): the flash log's messages after the last loaded one into the ring, in
#   batches (read once a quarter of the ring is free).
# - write_record(): one ring record as a PUBLISH, for drain() and the client's resend.
# Locks: _wlock (writes) before _tlock (slots, outbox); _slock (the log) before _tlock.

try:
    from micropython import const
except ImportError:  # CPython: the host port runs the same file
    def const(x):
        return x

from . import packet as _pk
from .client import LOG_WARNING, LOG_ERR
from .outbox import RECORD_HEADER

# The client's slot states and flag (client.py; tests/test_store_forward.py checks them)
_WAIT_PUBACK = const(1)
_WAIT_PUBREC = const(2)
_WAIT_PUBCOMP = const(3)
_RESERVED = const(7)
_SENT = const(8)
_PUBREL = const(6)


def setup(c, outbox, store):
    # The client's store-and-forward state.
    if store is not None and outbox is None:
        from .outbox import Outbox

        outbox = Outbox(2048)
    c.outbox = outbox  # read: outbox.dropped, outbox.count, outbox.unsent
    c.store = store
    # The flash log: seqs up to _loaded went to the outbox or a slot; _behind: it holds
    # messages after them. Seqs up to _recovered were logged before this Client
    # existed: they may have been sent (DUP) under the pid of their seq.
    c._loaded = 0
    c._released = []  # recovered QoS 2 seqs the broker had PUBREC'd
    c._need_t = 0  # the sizes of the next logged message the outbox must fit
    c._need_p = 0
    c._behind = store is not None and len(store) > 0
    c._spare = 2 if len(c._slot_state) > 1 else 1  # queued sends leave a slot free
    c._recovered = store.last_seq() if store is not None else 0


def pid_of(seq):
    # The packet id of flash log message seq: a pure function of it, so after a reset
    # a message goes out again under the id the broker's session may hold.
    return (seq - 1) % 65535 + 1


def publish_stored(c, topic, payload, plen, qos, retain, wait):
    # With an outbox (and maybe a flash log). Order per topic needs one queue: a
    # message goes straight out only when nothing older waits; otherwise, or when
    # disconnected or no slot is free, it is copied into the outbox and sent from
    # there. Checks come first, so a refused message was never accepted.
    ob = c.outbox
    store = c.store
    tl = len(topic)
    with c._wlock:
        # Encoded only to check it (topic, header size against the send buffer): the
        # packet the drain sends later has the same header but for its id.
        _pk.encode_publish(c._sbuf, topic, plen, qos, retain, False, 1 if qos else 0,
                           topic is c._topic_ok)
    if RECORD_HEADER + tl + plen > ob.capacity:
        raise ValueError(
            "message of %d bytes (topic and payload) does not fit the outbox (%d bytes)"
            % (tl + plen, ob.capacity)
        )
    if isinstance(topic, bytes):
        c._topic_ok = topic
    lseq = 0
    if qos and store is not None:
        with c._slock:
            lseq = store.append(topic, payload, qos, retain)
        if not lseq:
            c._log(LOG_WARNING, "flash log full (REFUSE_NEW): message dropped")
            return 0
    i = -1
    with c._tlock:
        # One decision, under the lock refill() loads the log under: a reading thread's
        # refill() may have taken this very message from the log already.
        fresh = not lseq or lseq > c._loaded
        if fresh and qos and c._connected and not c._behind and not ob.unsent:
            i = c._slot_for(_RESERVED, pid_of(lseq) if lseq else 0, c._spare)
        if not fresh or i >= 0:
            pass  # refill() queued it, or it goes straight out
        elif not lseq:
            ob.put(topic, payload, qos, retain)  # the outbox's policy applies
        elif c._behind or not ob.has_room(tl, plen):
            c._behind = True  # the log holds it: the outbox is a window, never dropping
        else:
            ob.put(topic, payload, qos, retain, lseq)
        if fresh and lseq and not c._behind:
            c._loaded = lseq
    if i >= 0:
        if not isinstance(payload, bytes):
            payload = bytes(payload)  # kept until acked
        deadline = c._port.ticks_add(c._ticks(), c._command_timeout)
        return c._send_in_slot(i, topic, payload, plen, qos, retain, wait, deadline, lseq)
    if c._connected:
        drain(c)
    return 0


def drain(c):
    # Send queued messages, oldest first: at most drain_burst per call (one call per
    # read cycle, so a backlog never starves keepalive or inbound messages), and
    # QoS 1/2 only into free in-flight slots, one always left for other commands.
    ob = c.outbox
    n = c.drain_burst
    while n > 0 and c._connected:
        with c._wlock:
            with c._tlock:
                off = ob.next_unsent()
                if off >= 0:
                    qos = ob.qos(off)
                    pid = 0
                    dup = False
                    if qos:
                        lseq = ob.seq(off)
                        pid = pid_of(lseq) if lseq else 0
                        i = c._slot_for(_RESERVED, pid, c._spare)
                        if i < 0:
                            return  # the window is full: acks will free it
                        pid = c._slot_pid[i]
                        # Logged before this Client: it may have gone out before
                        # a reset, with this pid.
                        dup = lseq != 0 and lseq <= c._recovered
                        st = _WAIT_PUBACK if qos == 1 else _WAIT_PUBREC
                        if dup and c._released and lseq in c._released:
                            c._released.remove(lseq)
                            if c.session_present:
                                st = _WAIT_PUBCOMP  # PUBREC'd before the reset
                        c._slot_off[i] = off
                        c._slot_lseq[i] = lseq
                        c._slot_flags[i] = _SENT | qos << 1 | (1 if ob.retain(off) else 0)
                        c._seq += 1
                        c._slot_seq[i] = c._seq
                        c._slot_waiter[i] = 0
                        c._slot_state[i] = st
                    ob.take()
            if off < 0:
                # Flash is read in batches: once a quarter of the ring is free.
                if (
                    c._behind
                    and ob.capacity - ob.used >= ob.capacity >> 2
                    and ob.has_room(c._need_t, c._need_p)
                ):
                    if refill(c):
                        continue
                return
            try:
                if qos and c._slot_state[i] == _WAIT_PUBCOMP:
                    n = _pk.encode_ack(c._abuf, _PUBREL, pid)  # [MQTT-4.4.0-1]
                    c._write(c._abuf, n, c._command_timeout)
                else:
                    write_record(c, off, pid, dup)
            except Exception as e:
                # The link failed (closed; the loop reports it). A QoS 1/2 message
                # is in its slot and resent after the reconnect.
                c._log(LOG_WARNING, "queued PUBLISH not sent: %r" % (e,))
                if not qos:
                    with c._tlock:
                        ob.done(off)
                return
        if not qos:
            with c._tlock:
                ob.done(off)  # QoS 0: sent is done
        n -= 1

def write_record(c, off, pid, dup):
    # Caller holds _wlock. The PUBLISH of the outbox record at off, from the ring.
    ob = c.outbox
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

def refill(c):
    # Messages of the flash log not yet in RAM into the outbox, oldest first, as
    # many as fit. True if any came. Reads flash and allocates what it loads.
    ob = c.outbox
    store = c.store
    got = False
    with c._slock:
        for rec in store.pending(c._loaded):  # the ones after those loaded
            seq = rec[0]
            topic = rec[1].encode()
            payload = rec[2]
            rel = store.released(seq)
            with c._tlock:
                if not ob.has_room(len(topic), len(payload)):
                    if ob.count:
                        # Later, once acks made room for it: until then _drain
                        # does not read flash for nothing.
                        c._need_t = len(topic)
                        c._need_p = len(payload)
                        return got
                    # Larger than the whole outbox (logged with a larger one):
                    # it can never be sent from it.
                    c._log(LOG_ERR, "logged message %d does not fit the outbox" % seq)
                    store.ack(seq)
                    c._loaded = seq
                    continue
                ob.put(topic, payload, rec[3], rec[4], seq)
                c._need_t = c._need_p = 0
                c._loaded = seq  # with the put: publish_stored() decides by it
                if rel:
                    c._released.append(seq)
            got = True
        with c._tlock:
            c._behind = False
    return got
