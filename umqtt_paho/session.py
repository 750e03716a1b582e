# The MQTT session of a client: what must outlive one packet and one connection, and
# every transition of it, in one place (h11's "Rule 1"). No I/O, no clock, no driver
# import: it takes what arrived ("a PUBACK for id 7") and answers what to send and what
# completed. The drivers (client.py; store and forward in forward.py) call it under the
# driver's table lock and do the sending themselves.
#
# Theory of operation
# - Slots. Every command that waits for an ack (PUBLISH QoS 1/2, SUBSCRIBE, UNSUBSCRIBE)
#   holds one of a fixed number of slots (max_inflight), allocated here once: its packet
#   id, its state, flags, a result byte and, for a PUBLISH, the topic and payload
#   (kept by reference until acked, for resending).
# - States of a slot:
#     FREE -take()-> RESERVED (a PUBLISH being encoded: invisible to resend_next())
#          -accept()-> WAIT_PUBACK (QoS 1) or WAIT_PUBREC (QoS 2)
#     WAIT_PUBREC -PUBREC-> WAIT_PUBCOMP
#     FREE -take()-> WAIT_SUBACK / WAIT_UNSUBACK
#     WAIT_PUBACK -PUBACK->, WAIT_PUBCOMP -PUBCOMP->, WAIT_(UN)SUBACK -(UN)SUBACK->
#          DONE if a thread waits for it (it reads the result, then free()), else FREE.
#   After a CONNACK, resend_next()/resend() walk the accepted messages in the order
#   first sent [MQTT-4.6.0-1]: PUBLISH again with DUP and the same id, or PUBREL for a
#   QoS 2 message the broker had PUBREC'd and kept [MQTT-4.4.0-1].
# - Packet ids: 1..65535 [MQTT-2.3.1-1], the next one not held by a slot in use.
# - Inbound QoS 2: ids of messages delivered but not yet released (PUBREL), so a
#   redelivery with DUP is acked but not delivered twice [MQTT-4.3.3-2]: inbound.py's
#   table, made by the first QoS 2 PUBLISH that arrives (its rules are there). The
#   session counts connections (epoch) for it, and clears it when a CONNACK finds no
#   session [MQTT-3.1.2-6].

try:
    from micropython import const
except ImportError:  # CPython: the host port runs the same file
    const = int  # a function here would cost RAM on the board too

_FREE = const(0)
_WAIT_PUBACK = const(1)
_WAIT_PUBREC = const(2)
_WAIT_PUBCOMP = const(3)
_WAIT_SUBACK = const(4)
_WAIT_UNSUBACK = const(5)
_DONE = const(6)
_RESERVED = const(7)

# flags[i]: retain 1, qos << 1, and these
_SENT = const(8)  # went out at least once: a resend carries DUP
_WAITER = const(16)  # a thread waits for the ack (else the ack frees the slot)

# Packet types (MQTT 3.1.1 section 2.2.1): what arrives and what to send
_PUBLISH = const(3)
_PUBACK = const(4)
_PUBREC = const(5)
_PUBREL = const(6)
_PUBCOMP = const(7)
_SUBSCRIBE = const(8)
_SUBACK = const(9)
_UNSUBSCRIBE = const(10)
_UNSUBACK = const(11)


class Session:
    """The session state of one client: in-flight slots, packet ids, inbound QoS 2 ids.

    Read-only for drivers: pids, topics, payloads, flags (retain 1, qos << 1) and order
    of each slot i (a PUBLISH's first-sent order; once a command is DONE, the return
    code of its ack, e.g. the QoS a SUBACK granted), and present (the last CONNACK's
    session flag).
    """

    def __init__(self, slots, inbound):
        self.pids = [0] * slots
        self.states = bytearray(slots)
        self.flags = bytearray(slots)
        self.topics = [None] * slots
        self.payloads = [None] * slots
        self.order = [0] * slots
        self._seq = 0
        self._pid = 0
        # Inbound QoS 2 ids (inbound.py): made by the first QoS 2 PUBLISH that arrives
        # (most boards never receive one: its code and 3 bytes per id they keep).
        self.inbound = None
        self._in_n = inbound
        self._epoch = 0
        self.present = False

    # ---- outgoing commands -----------------------------------------------------------

    def take(self, t, pid=0, spare=1):
        """A free slot for a command of packet type t (PUBLISH: reserved until accept()),
        leaving spare - 1 others free, with packet id pid (-1 if a slot in use holds it)
        or, if pid is 0, the next unused id; -1 if none is free."""
        states = self.states
        pids = self.pids
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
                pid = pid + 1 if pid < 65535 else 1
                i = len(states) - 1
                while i >= 0 and (states[i] == _FREE or pids[i] != pid):
                    i -= 1
                if i < 0:
                    break
            self._pid = pid
        pids[free] = pid
        self.order[free] = 0
        self.flags[free] = _WAITER
        if t == _PUBLISH:
            states[free] = _RESERVED
        else:
            states[free] = _WAIT_SUBACK if t == _SUBSCRIBE else _WAIT_UNSUBACK
        return free

    def accept(self, i, topic, payload, qos, retain, waiter, sent=True):
        """The PUBLISH in reserved slot i is the session's now: it is sent (sent=True:
        even a write that fails half way may reach the broker, so a resend has DUP) or
        queued for the next CONNACK (sent=False), and resent until acked."""
        self.topics[i] = topic
        self.payloads[i] = payload
        self.flags[i] = (_SENT if sent else 0) | (_WAITER if waiter else 0) | qos << 1 | (
            1 if retain else 0
        )
        self._seq += 1
        self.order[i] = self._seq
        self.states[i] = _WAIT_PUBACK if qos == 1 else _WAIT_PUBREC

    def ack(self, t, pid, result=0):
        """Packet type t (PUBACK, PUBREC, PUBCOMP, SUBACK, UNSUBACK) arrived for pid: the
        slot it completes (or, for PUBREC, moves on to WAIT_PUBCOMP), -1 if none waits
        (a late ack of a command that timed out, or a broker bug). A completed slot is
        DONE for its waiter, or FREE at once if nobody waits."""
        # the state each ack type completes, by packet type (a constant: no allocation)
        want = b"\0\0\0\0\1\2\0\3\0\4\0\5"[t]
        states = self.states
        for i in range(len(states)):
            if self.pids[i] == pid and states[i] == want:
                if t == _PUBREC:
                    states[i] = _WAIT_PUBCOMP
                elif self.flags[i] & _WAITER:
                    self.order[i] = result  # the waiter reads it there
                    states[i] = _DONE
                else:
                    self.free(i)
                return i
        return -1

    def done(self, i):
        return self.states[i] == _DONE

    def free(self, i):
        self.states[i] = _FREE
        self.topics[i] = None  # let the message go
        self.payloads[i] = None

    def unwait(self, i):
        """The waiter gives up (timeout, link lost): the slot stays in the session, and
        the ack or a resend finishes it."""
        if self.states[i] == _DONE:
            self.free(i)  # the ack came just now
        else:
            self.flags[i] &= ~_WAITER

    def pending(self):
        """Accepted QoS 1/2 messages not yet acknowledged."""
        n = 0
        for st in self.states:
            if _WAIT_PUBACK <= st <= _WAIT_PUBCOMP:
                n += 1
        return n

    # ---- connection ------------------------------------------------------------------

    def connack(self, present):
        """A CONNACK accepted the connection; present: the broker kept the session."""
        self.present = present
        self._epoch = (self._epoch + 1) & 0xFF
        if not present and self.inbound is not None:
            # No session on the broker: our inbound QoS 2 state is void [MQTT-3.1.2-6]
            self.inbound.clear()
        # SUBACK / UNSUBACK of commands nobody waits for, lost with the link: nothing
        # resends those, so their slots would stay taken for good.
        states = self.states
        for i in range(len(states)):
            if (states[i] == _WAIT_SUBACK or states[i] == _WAIT_UNSUBACK) and not (
                self.flags[i] & _WAITER
            ):
                self.free(i)

    def resend_next(self, last):
        """After a CONNACK: the accepted message first sent next after order `last`
        (0 to start), or -1 when there is none left [MQTT-4.6.0-1]."""
        states = self.states
        order = self.order
        i = -1
        for k in range(len(states)):
            if _WAIT_PUBACK <= states[k] <= _WAIT_PUBCOMP and order[k] > last:
                if i < 0 or order[k] < order[i]:
                    i = k
        return i

    def resend(self, i):
        """What to send again for slot i, as the packet's first byte: PUBREL (0x62) for a
        QoS 2 message the broker PUBREC'd and kept [MQTT-4.4.0-1], else PUBLISH with its
        QoS and retain, and DUP (0x08) if it went out before [MQTT-3.3.1-1]. Without a
        session on the broker a PUBREC'd message is published again (the broker may have
        lost it with the session; at worst it arrives twice)."""
        f = self.flags[i]
        if self.states[i] == _WAIT_PUBCOMP and self.present:
            return _PUBREL << 4 | 2
        qos = f >> 1 & 3
        self.states[i] = _WAIT_PUBACK if qos == 1 else _WAIT_PUBREC
        self.flags[i] = f | _SENT
        return _PUBLISH << 4 | (8 if f & _SENT else 0) | f & 7

    # ---- inbound QoS 2 ---------------------------------------------------------------

    def remember_in(self, pid):
        """A QoS 2 PUBLISH arrived: 1 if pid is new (deliver it; now remembered until
        PUBREL), 2 if new but a stale id was forgotten for it, 0 if it is a redelivery
        (only ack it) [MQTT-4.3.3-2]. The table (inbound.py) comes with the first one."""
        t = self.inbound
        if t is None:
            from .inbound import Inbound

            t = self.inbound = Inbound(self._in_n)
        return t.remember(pid, self._epoch)
