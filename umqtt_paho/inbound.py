# Inbound QoS 2, exactly once [MQTT-4.3.3-2]: the ids of messages delivered but not yet
# released (PUBREL), so that a redelivery (DUP) is acked but not delivered twice. A part
# of the session (session.py), loaded by the first QoS 2 PUBLISH that arrives.
#
# - Each id takes 2 bytes, plus the connection (epoch, mod 256) on which the broker last
#   mentioned it: a broker resends every id it holds after each CONNACK.
# - Cleared when a CONNACK finds no session [MQTT-3.1.2-6].
# - When the table is full, an id the broker has not mentioned for _STALE_EPOCHS
#   reconnects is forgotten; with none stale, remember() raises, so the driver closes
#   the link rather than risk a duplicate (after the reconnect the broker resends those
#   PUBRELs and this PUBLISH).

try:
    from micropython import const
except ImportError:  # CPython: the host port runs the same file
    const = int  # a function here would cost RAM on the board too

from .packet import MQTTError

_STALE_EPOCHS = const(4)

_ERR_QUEUE_SIZE = const(15)
_T_INBOUND_FULL = const(40)


class Inbound:
    """The inbound QoS 2 ids of a session: ids (2 bytes each, 0 = free), evicted (ids
    forgotten as stale) and last_evicted (the last one)."""

    def __init__(self, n):
        self.ids = bytearray(2 * n)
        self.epochs = bytearray(n)
        self.evicted = 0
        self.last_evicted = 0

    def remember(self, pid, now):
        """See Session.remember_in; now is the connection's epoch."""
        ids = self.ids
        epochs = self.epochs
        free = -1
        stale = -1
        for k in range(len(epochs)):
            p = ids[2 * k] << 8 | ids[2 * k + 1]
            if p == pid:
                epochs[k] = now  # redelivered: the broker still has it
                return 0
            if p == 0:
                if free < 0:
                    free = k
            elif stale < 0 and (now - epochs[k]) & 0xFF >= _STALE_EPOCHS:
                stale = k
        new = 1
        if free < 0:
            if stale < 0:
                # Forgetting an id the broker may still redeliver could deliver a
                # message twice: the caller closes the link instead.
                raise MQTTError(_ERR_QUEUE_SIZE, _T_INBOUND_FULL, len(epochs))
            free = stale
            self.evicted += 1
            self.last_evicted = ids[2 * free] << 8 | ids[2 * free + 1]
            new = 2
        ids[2 * free] = pid >> 8
        ids[2 * free + 1] = pid & 0xFF
        epochs[free] = now
        return new

    def forget(self, pid):
        """PUBREL arrived for pid: the message is released."""
        ids = self.ids
        for k in range(0, len(ids), 2):
            if ids[k] == pid >> 8 and ids[k + 1] == pid & 0xFF:
                ids[k] = 0
                ids[k + 1] = 0

    def clear(self):
        ids = self.ids
        for k in range(len(ids)):
            ids[k] = 0
