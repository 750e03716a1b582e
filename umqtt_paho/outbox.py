# umqtt_paho Outbox: the RAM half of "store and forward", a byte ring of outgoing
# PUBLISH messages (QoS 0, 1 or 2) kept while the link is down or the in-flight table
# is full. The client takes them in order into its in-flight table and sends them
# straight from the ring; a record leaves the ring once the broker acknowledged it.
#
# Theory of operation
# - One bytearray of `capacity` bytes, allocated in __init__; it never grows. Every
#   record is stored contiguously, so a sender reads it in place (zero copy) by offset.
# - Record (all integers big-endian), RECORD_HEADER = 11 bytes before the topic:
#
#       off+0   off+4  off+5  off+7  off+11        off+11+tlen     off+size
#       +-------+------+------+------+-------------+---------------+
#       | size  | flags| tlen | seq  | topic       | payload       |
#       | u32   | u8   | u16  | u32  | tlen bytes  | plen bytes    |
#       +-------+------+------+------+-------------+---------------+
#       size  = 11 + tlen + plen: the whole record, header included
#       flags = done << 4 | taken << 3 | qos << 1 | retain  (bits 5-7 are 0)
#       seq   = the caller's number for the message (the flash log's seq; 0: none)
#       plen  = size - 11 - tlen
#
# - Taking: records are taken (handed to the in-flight table) in order, oldest first:
#   the records in the ring are a run of taken ones (sent, awaiting acks) followed by
#   the untaken ones. `_next` is the oldest untaken record. done(off) marks a taken
#   record acknowledged; acknowledged records at the head leave the ring. A taken
#   record is never evicted: the broker may hold its packet id.
#
# - Wrapping, without a marker in the ring: records go in order at the write offset
#   (tail). A record that does not fit between the tail and the end of the ring starts
#   at offset 0 instead, if it fits below the oldest record (head); the bytes between
#   the last upper record and the end stay unused, and `_wrap` remembers where the upper
#   records end. So the ring is in one of two shapes:
#
#     not wrapped (_wrap == -1):  records in [head, tail)
#       0          head                      tail           capacity
#       |  free    | r1 | r2 | r3 | ...      |  free        |
#
#     wrapped (_wrap >= 0):       records in [head, _wrap), then in [0, tail)
#       0                  tail    head                _wrap       capacity
#       | r4 | r5 | ...    | free  | r1 | r2 | r3      | unused    |
#
#   Popping the record that ends at _wrap moves head to 0 and unwraps. An empty ring
#   always restarts at offset 0, so any record of at most `capacity` bytes fits an
#   empty ring. The bytes left unused at the end are fewer than the record that went
#   to offset 0 instead (it did not fit there).
# - Full: put() of a record that finds no room applies the policy chosen at
#   construction: DROP_OLDEST evicts the oldest records until it fits, as long as the
#   oldest one is untaken (else it refuses the new record, as DROP_NEWEST: the taken
#   ones leave as their acks come), DROP_NEWEST refuses the new record, RAISE
#   raises MQTTError(ERR_QUEUE_SIZE) before anything changes. `dropped` counts the
#   records the policy discarded (evicted or refused); RAISE discards nothing, the
#   caller keeps the message. A record larger than the whole ring raises ValueError
#   whatever the policy, before anything changes.
# - Memory: put() copies topic and payload in with bytearray slice assignment (0 bytes
#   allocated on MicroPython 1.29, measured by tests/vm/test_vm_outbox.py). Reading
#   never allocates: peek(), after() return offsets, the accessors return ints, and
#   copy_publish() / copy_header() encode the PUBLISH packet into the caller's send
#   buffer with index loops (slicing a memoryview would allocate 16 bytes). A loop
#   costs time per byte (about 0.4 us on the WebAssembly VM, more on a board): for a
#   large payload, or one too large for the send buffer, copy_header() writes the
#   packet's header and the payload can be written from the ring itself (`view` is a
#   memoryview of the ring, payload_off(off) the first payload byte; one slice of it,
#   16 bytes, instead of a copy).
# - A seq of 2**30 or more is not a small int on a 32-bit port: put() and seq() then
#   allocate for it (the flash log's seqs reach that after 2,000 years at one a minute).
# - Validation: put() checks QoS, sizes, seq and the policy's rules, not the topic's
#   content: the client validates a topic (as packet.encode_publish does) before it
#   queues it. Offsets must come from peek() / after() and are valid until the record
#   is popped or the outbox cleared.
# - Threads: no locking inside. The client calls every method under its own lock; an
#   offset read under the lock must not be used after the lock is released if another
#   thread may pop or clear meanwhile.

try:
    from micropython import const
except ImportError:  # CPython: the host port runs the same file
    const = int  # a function here would cost RAM on the board too

from .packet import MQTTError, remaining_length_size, fixed_header

_ERR_QUEUE_SIZE = const(15)

# Drop policies: what put() does when a record finds no room
DROP_OLDEST = const(0)  # evict the oldest records until the new one fits
DROP_NEWEST = const(1)  # refuse the new record (put() returns False)
RAISE = const(2)  # raise MQTTError(ERR_QUEUE_SIZE), store nothing

RECORD_HEADER = const(11)  # size u32, flags u8, topic length u16, seq u32

_HDR = const(11)
_TAKEN = const(0x08)  # flags: handed to the in-flight table
_DONE = const(0x10)  # flags: acknowledged, leaves when it reaches the head
_MAX_CAPACITY = const(0x3FFFFFFF)  # sizes stay small ints on 32-bit MicroPython
_PUBLISH = const(0x30)  # PUBLISH << 4


class Outbox:
    """A FIFO of outgoing messages in one preallocated ring of `capacity` bytes.

    Each message takes RECORD_HEADER (11) + len(topic) + len(payload) bytes. `policy`
    (DROP_OLDEST, DROP_NEWEST or RAISE) says what put() does when the ring has no room.
    Attributes (read only): capacity, policy, count (records), unsent (records not yet
    taken), used (bytes the records take, headers included), dropped (records the
    policy discarded), buf (the ring, a bytearray) and view (a memoryview of it).
    """

    def __init__(self, capacity, policy=DROP_OLDEST):
        if not _HDR <= capacity <= _MAX_CAPACITY:
            raise ValueError(
                "capacity must be %d..%d bytes, not %r" % (_HDR, _MAX_CAPACITY, capacity)
            )
        if policy != DROP_OLDEST and policy != DROP_NEWEST and policy != RAISE:
            raise ValueError(
                "policy must be DROP_OLDEST, DROP_NEWEST or RAISE, not %r" % (policy,)
            )
        self.capacity = capacity
        self.policy = policy
        self.buf = bytearray(capacity)
        self.view = memoryview(self.buf)
        self.count = 0
        self.unsent = 0
        self.used = 0
        self.dropped = 0
        self._next = -1  # offset of the oldest untaken record, -1 if none
        self._head = 0  # offset of the oldest record
        self._tail = 0  # where the next record goes (if it fits there)
        self._wrap = -1  # wrapped: where the records of the upper part end

    def __len__(self):
        return self.count

    def __repr__(self):
        return "<Outbox %d records, %d/%d bytes, dropped %d>" % (
            self.count,
            self.used,
            self.capacity,
            self.dropped,
        )

    # ---- writing ---------------------------------------------------------------------

    def _where(self, size):
        # Offset where a record of `size` bytes goes now, or -1 if there is no room.
        if not self.count:
            return 0
        t = self._tail
        if self._wrap < 0:
            if self.capacity - t >= size:
                return t
            if self._head >= size:
                return 0  # wraps: the rest of the upper part stays unused
            return -1
        if self._head - t >= size:
            return t
        return -1

    def has_room(self, topic_len, payload_len):
        """True if a message of these sizes fits now without evicting anything."""
        size = _HDR + topic_len + payload_len
        return size <= self.capacity and self._where(size) >= 0

    def put(self, topic, payload, qos=1, retain=False, seq=0):
        """Append a message; topic and payload are bytes-like and are copied in.

        Returns True if it was stored, False if DROP_NEWEST refused it. DROP_OLDEST
        evicts as many oldest untaken records as needed; when a taken record (sent,
        awaiting its ack) is the oldest it refuses the new one instead. RAISE raises
        MQTTError(_ERR_QUEUE_SIZE) when there is no room, before changing anything.
        seq: a number kept with the record (0..2**32-1; the client stores the flash
        log's seq there). ValueError (whatever the policy, nothing changed): QoS not 0,
        1 or 2, a topic longer than 65535 bytes, or a record larger than the whole ring. topic and
        payload must not be views of this outbox's own ring (an eviction may overwrite
        them).
        """
        tl = len(topic)
        size = _HDR + tl + len(payload)
        if qos != 0 and qos != 1 and qos != 2:
            raise ValueError("QoS must be 0, 1 or 2, not %r" % (qos,))
        if tl > 65535:
            raise ValueError("topic is longer than 65535 bytes [1.5.3]")
        if not 0 <= seq <= 0xFFFFFFFF:
            raise ValueError("seq must be 0..2**32-1, not %r" % (seq,))
        if size > self.capacity:
            raise ValueError(
                "message needs %d bytes (%d + topic %d + payload %d) but the outbox holds %d"
                % (size, _HDR, tl, size - _HDR - tl, self.capacity)
            )
        at = self._where(size)
        if at < 0:
            policy = self.policy
            if policy == RAISE:
                raise MQTTError(
                    _ERR_QUEUE_SIZE,
                    "outbox full: %d records, %d of %d bytes used, no room for %d"
                    % (self.count, self.used, self.capacity, size),
                )
            if policy == DROP_NEWEST:
                self.dropped += 1
                return False
            while at < 0:  # DROP_OLDEST, never a taken record
                if self._next != self._head:
                    self.dropped += 1
                    return False
                self.pop()
                self.dropped += 1
                at = self._where(size)
        b = self.buf
        b[at] = size >> 24
        b[at + 1] = (size >> 16) & 0xFF
        b[at + 2] = (size >> 8) & 0xFF
        b[at + 3] = size & 0xFF
        b[at + 4] = qos << 1 | (1 if retain else 0)
        b[at + 5] = tl >> 8
        b[at + 6] = tl & 0xFF
        b[at + 7] = (seq >> 24) & 0xFF
        b[at + 8] = (seq >> 16) & 0xFF
        b[at + 9] = (seq >> 8) & 0xFF
        b[at + 10] = seq & 0xFF
        p = at + _HDR
        b[p : p + tl] = topic  # slice assignment: no allocation
        p += tl
        b[p : at + size] = payload
        if at != self._tail:
            self._wrap = self._tail  # started again at 0
        self._tail = at + size
        self.count += 1
        self.unsent += 1
        if self._next < 0:
            self._next = at
        self.used += size
        return True

    # ---- reading ---------------------------------------------------------------------

    def peek(self):
        """Offset of the oldest record, or -1 if the outbox is empty."""
        if self.count:
            return self._head
        return -1

    def after(self, off):
        """Offset of the record after the one at off, or -1 if off is the newest."""
        b = self.buf
        n = off + (b[off] << 24 | b[off + 1] << 16 | b[off + 2] << 8 | b[off + 3])
        if n == self._tail:
            return -1
        if n == self._wrap:
            return 0
        return n

    def size(self, off):
        """Bytes the record at off takes in the ring, header included."""
        b = self.buf
        return b[off] << 24 | b[off + 1] << 16 | b[off + 2] << 8 | b[off + 3]

    def next_unsent(self):
        """Offset of the oldest record not yet taken, or -1."""
        return self._next

    def take(self):
        """Mark the oldest untaken record taken (handed to the in-flight table; it
        stays in the ring until done()) and return its offset, or -1 if none."""
        off = self._next
        if off >= 0:
            self.buf[off + 4] |= _TAKEN
            self._next = self.after(off)
            self.unsent -= 1
        return off

    def done(self, off):
        """The taken record at off was acknowledged (QoS 0: sent). It leaves the ring
        with every acknowledged record before it, once the records older than it have
        left too."""
        b = self.buf
        b[off + 4] |= _DONE
        while self.count and b[self._head + 4] & _DONE:
            self.pop()

    def taken(self, off):
        return (self.buf[off + 4] & _TAKEN) != 0

    def seq(self, off):
        b = self.buf
        return b[off + 7] << 24 | b[off + 8] << 16 | b[off + 9] << 8 | b[off + 10]

    def qos(self, off):
        return (self.buf[off + 4] >> 1) & 3

    def retain(self, off):
        return (self.buf[off + 4] & 1) == 1

    def topic_len(self, off):
        b = self.buf
        return b[off + 5] << 8 | b[off + 6]

    def payload_len(self, off):
        b = self.buf
        return (
            (b[off] << 24 | b[off + 1] << 16 | b[off + 2] << 8 | b[off + 3])
            - _HDR
            - (b[off + 5] << 8 | b[off + 6])
        )

    def topic_off(self, off):
        """Where the topic of the record at off starts in buf / view."""
        return off + _HDR

    def payload_off(self, off):
        """Where the payload of the record at off starts in buf / view."""
        b = self.buf
        return off + _HDR + (b[off + 5] << 8 | b[off + 6])

    def _header(self, off, out, pid, dup, whole):
        # Write the PUBLISH fixed header, topic and packet id of the record at off into
        # out[0:]; returns where the payload goes, or -1 if the header (whole=False) or
        # the whole packet (whole=True) does not fit out. Nothing is written then.
        if off < 0:
            raise ValueError("no record at offset %d (peek() found the outbox empty)" % off)
        b = self.buf
        flags = b[off + 4] & 7
        qos = flags >> 1
        tl = b[off + 5] << 8 | b[off + 6]
        pl = (b[off] << 24 | b[off + 1] << 16 | b[off + 2] << 8 | b[off + 3]) - _HDR - tl
        if qos:
            if not 0 < pid <= 65535:
                raise ValueError("packet id must be 1..65535, not %r [MQTT-2.3.1-1]" % (pid,))
            head = tl + 4
        else:
            if dup:
                raise ValueError("DUP must be 0 for QoS 0 [MQTT-3.3.1-2]")
            head = tl + 2
        rl = head + pl
        need = 1 + remaining_length_size(rl) + (rl if whole else head)
        if need > len(out):
            return -1
        # The codec writes the fixed header (checked above: it fits)
        pos = fixed_header(out, _PUBLISH | flags | (0x08 if dup else 0), rl, 0)
        out[pos] = tl >> 8
        out[pos + 1] = tl & 0xFF
        pos += 2
        d = pos - off - _HDR  # out index - ring index, for the topic bytes
        for i in range(off + _HDR, off + _HDR + tl):
            out[i + d] = b[i]
        pos += tl
        if qos:
            out[pos] = pid >> 8
            out[pos + 1] = pid & 0xFF
            pos += 2
        return pos

    def copy_header(self, off, out, pid=0, dup=False):
        """Encode the PUBLISH header of the record at off (fixed header, topic, packet
        id) into out[0:], as packet.encode_publish would; returns its length, or -1 if
        it does not fit out (nothing written). The payload, payload_len(off) bytes, is
        then sent from view[payload_off(off):]. pid: 1..65535 at QoS 1/2, ignored at
        QoS 0; dup: for a resend (ValueError at QoS 0)."""
        return self._header(off, out, pid, dup, False)

    def copy_publish(self, off, out, pid=0, dup=False):
        """Encode the whole PUBLISH packet of the record at off (header and payload)
        into out[0:], for one write; returns its length, or -1 if it does not fit out
        (nothing written: use copy_header then). Allocates nothing."""
        pos = self._header(off, out, pid, dup, True)
        if pos < 0:
            return -1
        b = self.buf
        p = off + _HDR + (b[off + 5] << 8 | b[off + 6])
        end = off + (b[off] << 24 | b[off + 1] << 16 | b[off + 2] << 8 | b[off + 3])
        d = pos - p
        for i in range(p, end):
            out[i + d] = b[i]
        return pos + end - p

    # ---- removing --------------------------------------------------------------------

    def pop(self):
        """Remove the oldest record (once the client handed it to the in-flight table).
        IndexError if the outbox is empty."""
        if not self.count:
            raise IndexError("pop from an empty Outbox")
        h = self._head
        b = self.buf
        n = b[h] << 24 | b[h + 1] << 16 | b[h + 2] << 8 | b[h + 3]
        if h == self._next:  # popped before it was taken
            self._next = self.after(h)
            self.unsent -= 1
        self.count -= 1
        self.used -= n
        if not self.count:
            self._head = 0
            self._tail = 0
            self._wrap = -1
            self._next = -1
            return
        h += n
        if h == self._wrap:
            h = 0
            self._wrap = -1
        self._head = h

    def clear(self):
        """Remove every record (not counted in dropped)."""
        self.count = 0
        self.unsent = 0
        self._next = -1
        self.used = 0
        self._head = 0
        self._tail = 0
        self._wrap = -1
