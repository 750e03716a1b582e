# umqtt_paho.flashlog: an append-only log of MQTT messages on the board's filesystem,
# the persistence half of "store and forward" (docs/store-and-forward.md). Telemetry
# appended here survives link outages, resets, power cuts and deep sleep; the client
# publishes what pending() returns and acknowledges each message with ack(seq).
#
#     from umqtt_paho.flashlog import FlashLog
#     log = FlashLog("/telemetry")                  # recovers what is on flash
#     seq = log.append("home/s1/temp", b"21.5", 1)  # 0: refused (log full, REFUSE_NEW)
#     for seq, topic, payload, qos, retain in log.pending():
#         ...publish; when the broker acknowledged it: log.ack(seq)
#     log.sync()                                    # before deep sleep
#
# Record format (one definition; docs/store-and-forward.md repeats it):
#
#     offset  size  field
#     0       1     MAGIC 0xA5 (sync byte; not covered by the CRC)
#     1       2     L, u16 big-endian: bytes from flags to the end of the payload (7+T+P)
#     3       1     flags: bit 7 ACK record, bits 6..3 zero, bits 2..1 qos, bit 0 retain
#     4       4     seq, u32 big-endian
#     8       2     T, u16 big-endian: topic length
#     10      T     topic, UTF-8
#     10+T    P     payload, P = L - 7 - T
#     3+L     4     CRC-32 (binascii.crc32) of bytes 1 .. 3+L-1, u32 big-endian
#
#     +----+-------+-------+-------+-------+-------------+---------------+-------+
#     | A5 |   L   | flags |  seq  |   T   | topic (T B) | payload (P B) | CRC32 |
#     +----+-------+-------+-------+-------+-------------+---------------+-------+
#       1      2       1       4       2                                    4
#                  |<------------------ L bytes ---------------------->|
#          |<------------------------ CRC-32 covers -------------------->|
#
#   A record is L + 7 bytes (14 + topic + payload for a message). A data record's seq is
#   the message's id: 1, 2, 3 ... one per appended message, increasing across segments,
#   resets and trims (a power cut gives the seqs of the messages it lost with the buffer
#   to the next ones: nothing on flash names them). An ACK record (flags 0x80, T = 0,
#   a 4-byte payload LAST) says that messages seq .. LAST are acknowledged: 18 bytes.
#   A RELEASED record (flags 0xC0, otherwise as an ACK record) says that the broker
#   PUBREC'd QoS 2 messages seq .. LAST: after a reset only their PUBREL is owed.
#
# Theory of operation
# - Segments: records go into files seg00000001.log, seg00000002.log ... in the log's
#   directory; a record never straddles two files, and a new segment starts when the
#   record would make the current one exceed segment_size (4096: a NOR erase block,
#   and one littlefs block). All segments but the newest are never written again.
# - Batching: append() copies the record into a bytearray allocated once (buffer_size)
#   and writes the buffer to the current segment (one open/write/close) when it is
#   full, when sync_records records are waiting, when the oldest waiting one is
#   sync_ms old (checked in append() and sync_if_due()), on sync() and on close(). A
#   record larger than the buffer is written at once, straight from the caller's
#   objects. Each write costs about one flash erase (littlefs copies the file's last
#   block on an append after a sync); a power cut loses what is still in the buffer.
#   The default (sync_records=1) writes every record: see the arithmetic in the docs.
# - Acks: ack(seq) marks a message acknowledged in RAM (all seq below a watermark, plus
#   a list of ranges above it: empty while acks come in order) and appends an ACK record
#   to the buffer; in-order acks extend the ACK record still in the buffer, so a batch
#   of acks costs 18 bytes. Acks are written with the buffer: an ack lost to a power
#   cut means one duplicate publish (MQTT's at-least-once), never a lost message.
# - Trimming, by segment: once every message in the oldest segment is acknowledged its
#   file is removed (the removal persists those acks). Only the oldest segments go, in
#   order (an ACK record may be about older segments), and never the newest one that is
#   on flash, so the highest seq survives and numbering goes on after a reset.
# - Full log: at most max_segments segments. A message that needs one more either drops
#   the oldest segment (DROP_OLDEST: its unacknowledged messages are counted in dropped)
#   or is refused (REFUSE_NEW: append returns 0, counted in dropped). An ack never drops
#   anything: if it does not fit, it is kept in RAM and all acks are re-recorded at the
#   start of the next segment (a checkpoint).
# - Recovery (the constructor): every segment is read whole and parsed; a record counts
#   only if its magic, lengths, flags and CRC hold and its seq is above the one before.
#   After a bad byte the parser moves to the next 0xA5 and tries again, so a torn tail
#   (power cut mid-write), garbage, an erased (0xFF) or an empty file, and a corrupted
#   record in the middle (bit rot) cost exactly the damaged records. MicroPython has no
#   truncate: a damaged segment is rewritten with its valid records only, into
#   segNNNNNNNN.tmp, then the old file is removed and the .tmp renamed (a power cut in
#   between is resolved at the next open: a .tmp beside its .log is unfinished and
#   removed; a .tmp alone is complete and renamed). A segment without one valid record
#   is removed. Nothing is raised for damaged content. Messages whose records were lost
#   count as acknowledged (they can never be sent).
# - Memory: the write buffer, a 10-byte header scratch and a 4-byte CRC scratch are
#   allocated once. append() copies topic and payload into the buffer and allocates
#   only for the CRC: a memoryview of the record and, on a 32-bit port, the CRC itself
#   when it exceeds a small int (~48 B; tests/vm/test_vm_flashlog.py measures it). A str
#   topic is encoded and checked once and cached by identity (keep your topic in a
#   variable); a str payload is encoded on every call (pass bytes). Recovery borrows a
#   segment-sized bytearray (the write buffer if it is as large) while the constructor
#   runs; pending() allocates what it returns.
# - One thread: calls are not locked. pending() is a generator that reads one segment
#   at a time and holds no file open while it yields, so ack(), append() and sync()
#   may be called between its steps (records appended meanwhile are yielded too).

try:
    from micropython import const
except ImportError:  # CPython: the host port runs the same file
    const = int  # a function here would cost RAM on the board too

import os
import struct
import time
from binascii import crc32

from .packet import ArgError, topic_problem

_T_TOPIC = const(30)

DROP_OLDEST = const(0)  # when_full: a new segment removes the oldest one
REFUSE_NEW = const(1)  # when_full: append() returns 0 until acks free a segment

_MAGIC = const(0xA5)
_MAGIC_B = b"\xa5"
_HDR = const(10)  # magic, L, flags, seq, T
_CRC = const(4)
_MIN_L = const(7)  # flags + seq + T
_ACK = const(0x80)
_REL = const(0xC0)  # a RELEASED record: PUBREC came for these QoS 2 messages
_ACK_L = const(11)  # an ACK record: L = 7 + 4-byte LAST
_ACK_SIZE = const(18)
_MAX_L = const(65535)
_CHUNK = const(8)  # records parsed per read: bounds what pending() holds at once


def _seg_number(name, ext):
    # seg00000042.log -> 42; -1 for any other name.
    if len(name) != 15 or name[:3] != "seg" or name[11:] != ext:
        return -1
    digits = name[3:11]
    if not digits.isdigit():
        return -1
    return int(digits)


def _write_all(f, data):
    # A file's write() may take part of the data (MicroPython returns the count).
    n = len(data)
    w = f.write(data)
    if w is None or w == n:
        return
    mv = memoryview(data)
    while w < n:
        k = f.write(mv[w:])
        if not k:
            raise OSError(5, "short write")  # EIO
        w += k


def _sub(a, b):
    return a - b


def _host_ms():
    return int(time.monotonic() * 1000)


def _u32(b, i):
    return (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]


class FlashLog:
    """An append-only, crash-safe log of MQTT messages in `directory`.

    segment_size: bytes per segment file (a record must fit in one; default 4096).
    max_segments: the most segment files kept (>= 2); when_full says what happens
      then: DROP_OLDEST (default) or REFUSE_NEW. Both count lost messages in dropped.
    buffer_size: the RAM write buffer (32 .. segment_size; default 1024, or
      segment_size if smaller).
    sync_records: write the buffer once this many messages wait in it (default 1: every
      append() reaches flash before it returns; 0: no count threshold).
    sync_ms: write the buffer once its oldest entry is this old (checked by append() and
      sync_if_due(); 0: no time threshold).
    clock_ms: a function returning milliseconds (default time.ticks_ms, or a monotonic
      clock on CPython).

    Opening recovers the directory's log after any power cut, without raising for
    damaged content; `repaired` counts the segments it rewrote or removed, `discarded`
    the bytes it cut. OSError from the filesystem (no space, no such parent directory)
    propagates.
    """

    def __init__(
        self,
        directory,
        segment_size=4096,
        max_segments=16,
        buffer_size=None,
        sync_records=1,
        sync_ms=0,
        when_full=DROP_OLDEST,
        clock_ms=None,
    ):
        if segment_size < 64:
            raise ValueError("segment_size must be at least 64")
        if max_segments < 2:
            raise ValueError("max_segments must be at least 2")
        if buffer_size is None:
            buffer_size = 1024 if segment_size > 1024 else segment_size
        if buffer_size < 32 or buffer_size > segment_size:
            raise ValueError("buffer_size must be from 32 to segment_size")
        if when_full != DROP_OLDEST and when_full != REFUSE_NEW:
            raise ValueError("when_full must be DROP_OLDEST or REFUSE_NEW")
        if sync_records < 0 or sync_ms < 0:
            raise ValueError("sync_records and sync_ms must be >= 0")
        self.directory = directory
        self._prefix = directory if directory.endswith("/") else directory + "/"
        self._segsize = segment_size
        self._max = max_segments
        self._policy = when_full
        self._sync_records = sync_records
        self._sync_ms = sync_ms
        self._clock = clock_ms or getattr(time, "ticks_ms", None) or _host_ms
        self._diff = getattr(time, "ticks_diff", None) or _sub
        self.dropped = 0  # messages lost to the full-log policy
        self.repaired = 0  # segments rewritten or removed by recovery
        self.discarded = 0  # bytes cut by recovery

        self._buf = bytearray(buffer_size)
        self._mv = memoryview(self._buf)
        self._hdr = bytearray(_HDR)
        self._hmv = memoryview(self._hdr)
        self._hcrc = self._hmv[1:]  # the header bytes the CRC covers
        self._crcb = bytearray(_CRC)
        self._n = 0  # bytes in the buffer
        self._nrec = 0  # messages in the buffer
        self._t0 = 0  # clock when the buffer became non-empty
        self._ack_pos = -1  # offset of the ACK record ending the buffer, or -1
        self._ack_end = 0  # its LAST
        self._topic = None  # the last topic object appended, and its checked bytes
        self._topic_b = b""

        # Segments, oldest first: numbers and the seq of each one's first message (a
        # segment holds the messages from its start up to the next one's start).
        self._nums = []
        self._starts = []
        self._last_num = 0
        self._fill = 0  # bytes of the current (newest) segment, on flash and buffered
        self._synced = 0  # bytes of the current segment on flash
        self._next = 1  # seq of the next message
        self._low = 1  # every seq below is acknowledged (or gone)
        self._ranges = []  # acknowledged seqs above _low: [a0, b0, a1, b1 ...], sorted
        self._rels = []  # QoS 2 messages the broker PUBREC'd, not yet acknowledged
        self._unsaved = False  # an ack is in RAM only: checkpoint at the next segment
        self._broken = False  # a write failed: the current file may have a torn tail
        self._closed = False
        self._recover()

    # ---- public ------------------------------------------------------------------------

    def append(self, topic, payload, qos=0, retain=False):
        """Log a message; returns its seq (> 0), or 0 if the log is full and when_full
        is REFUSE_NEW. ValueError (bad topic, qos, too large) before anything is kept.
        topic: str or bytes; payload: bytes-like or str."""
        if self._closed:
            raise ValueError("FlashLog is closed")
        if topic is self._topic:
            tb = self._topic_b
        else:
            tb = topic.encode() if isinstance(topic, str) else topic
            why = topic_problem(tb, 0, len(tb))
            if why:
                raise ArgError(_T_TOPIC, why)
            if isinstance(topic, str) or isinstance(topic, bytes):
                self._topic = topic  # immutable: checked once
                self._topic_b = tb
        if payload is None:
            payload = b""
        elif isinstance(payload, str):
            payload = payload.encode()
        if qos != 0 and qos != 1 and qos != 2:
            raise ValueError("qos must be 0, 1 or 2")
        tl = len(tb)
        pl = len(payload)
        ln = _MIN_L + tl + pl
        size = ln + 7
        if ln > _MAX_L or size > self._segsize:
            raise ValueError("a record of %d bytes does not fit a segment" % size)
        if not self._nums or self._fill + size > self._segsize:
            if not self._roll(size, True):
                self.dropped += 1
                return 0
        seq = self._next
        flags = (qos << 1) | (1 if retain else 0)
        buf = self._buf
        if self._n + size > len(buf):
            self._write()
            if size > len(buf):
                self._write_direct(seq, flags, tb, payload, ln)
                self._next = seq + 1
                return seq
        p = self._n
        if p == 0:
            self._t0 = self._clock()
        buf[p] = _MAGIC
        buf[p + 1] = ln >> 8
        buf[p + 2] = ln & 0xFF
        buf[p + 3] = flags
        buf[p + 4] = (seq >> 24) & 0xFF
        buf[p + 5] = (seq >> 16) & 0xFF
        buf[p + 6] = (seq >> 8) & 0xFF
        buf[p + 7] = seq & 0xFF
        buf[p + 8] = tl >> 8
        buf[p + 9] = tl & 0xFF
        q = p + _HDR + tl
        buf[p + _HDR:q] = tb
        e = q + pl
        buf[q:e] = payload
        struct.pack_into(">I", buf, e, crc32(self._mv[p + 1:e]))
        self._n = e + _CRC
        self._fill += size
        self._next = seq + 1
        self._ack_pos = -1
        self._nrec += 1
        if (self._sync_records and self._nrec >= self._sync_records) or (
            self._sync_ms and self._diff(self._clock(), self._t0) >= self._sync_ms
        ):
            self._write()
        return seq

    def ack(self, seq):
        """The broker acknowledged message seq (QoS 0: it was sent). True if it was
        pending, False if unknown or already acknowledged. Segments whose messages are
        all acknowledged are removed."""
        if self._closed:
            raise ValueError("FlashLog is closed")
        if seq < self._low or seq >= self._next or self._in_ranges(seq):
            return False
        if self._ack_pos >= 0 and seq == self._ack_end + 1:
            p = self._ack_pos  # in-order: extend the ACK record ending the buffer
            struct.pack_into(">I", self._buf, p + _HDR, seq)
            struct.pack_into(">I", self._buf, p + 14, crc32(self._mv[p + 1:p + 14]))
            self._ack_end = seq
        else:
            self._save_ack(seq, seq)
        self._mark(seq, seq)
        if seq in self._rels:
            self._rels.remove(seq)
        self._trim()
        return True

    def release(self, seq):
        """The broker PUBREC'd QoS 2 message seq: record it, on flash before this
        returns (the client sends PUBREL only after it), so that after a reset the
        message is released (PUBREL) rather than published again, which the broker
        would take for a new message once it had released the first. False if seq is
        not pending. One flash write per QoS 2 message."""
        if self._closed:
            raise ValueError("FlashLog is closed")
        if seq < self._low or seq >= self._next or self._in_ranges(seq):
            return False
        if seq not in self._rels:
            self._save_ack(seq, seq, _REL)
            self._rels.append(seq)
            self._write()
        return True

    def released(self, seq):
        """True if release(seq) was recorded and seq is not yet acknowledged."""
        return seq in self._rels

    def pending(self, after=0):
        """Yields (seq, topic str, payload bytes, qos, retain) of every message not yet
        acknowledged, oldest first, from flash and from the buffer; only those with a
        seq above `after` (the client resumes there: older segments are not read, older
        records in a segment are skipped by their header)."""
        num = -1
        off = 0
        starts = self._starts
        k = 0
        while k + 1 < len(starts) and starts[k + 1] <= after + 1:
            k += 1  # every message of segment k is at or below `after`
        if k < len(self._nums):
            num = self._nums[k]
        while not self._closed:
            nums = self._nums
            i = 0
            while i < len(nums) and nums[i] < num:
                i += 1
            if i == len(nums):
                return
            if nums[i] != num:
                num = nums[i]
                off = 0
            current = i == len(nums) - 1
            recs, end = self._read(num, off, current, after)
            for rec in recs:
                if not self._is_acked(rec[0]):
                    yield rec
            if end == off:  # nothing more in this segment
                if current:
                    return
                num += 1
                off = 0
            else:
                off = end

    def last_seq(self):
        """The seq of the newest message appended (0: none yet)."""
        return self._next - 1

    def __len__(self):
        """The number of messages not yet acknowledged."""
        n = self._next - self._low
        r = self._ranges
        i = 0
        while i < len(r):
            n -= r[i + 1] - r[i] + 1
            i += 2
        return n

    def sync(self):
        """Write the buffer (messages and acks) to flash now."""
        if not self._closed:
            self._write()

    def sync_if_due(self):
        """Write the buffer if its oldest entry is sync_ms old; True if it wrote."""
        if self._closed or not self._n or not self._sync_ms:
            return False
        if self._diff(self._clock(), self._t0) < self._sync_ms:
            return False
        self._write()
        return True

    def close(self):
        """sync(), then refuse further use. Safe to call twice."""
        if not self._closed:
            try:
                self._write()
            finally:
                self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    # ---- acknowledged seqs: _low and _ranges ------------------------------------------

    def _in_ranges(self, s):
        r = self._ranges
        i = 0
        while i < len(r):
            if s < r[i]:
                return False
            if s <= r[i + 1]:
                return True
            i += 2
        return False

    def _is_acked(self, s):
        return s < self._low or self._in_ranges(s)

    def _mark(self, a, b):
        # Record seqs a..b as acknowledged.
        if b < self._low:
            return
        if a <= self._low:
            self._low = b + 1  # in order: the watermark moves, nothing is allocated
            self._normalize()
            return
        r = self._ranges
        n = len(r)
        i = 0
        while i < n and r[i + 1] < a - 1:
            i += 2
        j = i
        while j < n and r[j] <= b + 1:
            if r[j] < a:
                a = r[j]
            if r[j + 1] > b:
                b = r[j + 1]
            j += 2
        r[i:j] = [a, b]

    def _normalize(self):
        # Fold ranges that reach the watermark into it; forget those below it.
        r = self._ranges
        low = self._low
        while r and r[0] <= low:
            if r[1] >= low:
                low = r[1] + 1
            r.pop(0)
            r.pop(0)
        self._low = low

    def _unacked(self, a, b):
        # How many seqs in a..b-1 are not acknowledged.
        if a < self._low:
            a = self._low
        if b <= a:
            return 0
        n = b - a
        r = self._ranges
        i = 0
        while i < len(r):
            lo = r[i] if r[i] > a else a
            hi = r[i + 1] + 1 if r[i + 1] + 1 < b else b
            if hi > lo:
                n -= hi - lo
            i += 2
        return n

    # ---- writing ----------------------------------------------------------------------

    def _path(self, num, ext=".log"):
        return "%sseg%08d%s" % (self._prefix, num, ext)

    def _write(self):
        # The buffer to the end of the current segment: one open, write, close.
        n = self._n
        if n == 0:
            return
        if self._broken:
            self._repair()
        try:
            f = open(self._path(self._nums[-1]), "ab")
            try:
                _write_all(f, self._mv[0:n])
                f.flush()
            finally:
                f.close()
        except OSError:
            self._broken = True  # the buffer is kept; the next write repairs first
            raise
        self._synced += n
        self._n = 0
        self._nrec = 0
        self._ack_pos = -1
        self._trim()

    def _write_direct(self, seq, flags, tb, payload, ln):
        # A record larger than the buffer (which is empty now), from the caller's objects.
        h = self._hdr
        h[0] = _MAGIC
        h[1] = ln >> 8
        h[2] = ln & 0xFF
        h[3] = flags
        struct.pack_into(">I", h, 4, seq)
        h[8] = len(tb) >> 8
        h[9] = len(tb) & 0xFF
        crc = crc32(payload, crc32(tb, crc32(self._hcrc)))
        struct.pack_into(">I", self._crcb, 0, crc)
        if self._broken:
            self._repair()
        try:
            f = open(self._path(self._nums[-1]), "ab")
            try:
                _write_all(f, h)
                _write_all(f, tb)
                _write_all(f, payload)
                _write_all(f, self._crcb)
                f.flush()
            finally:
                f.close()
        except OSError:
            self._broken = True
            raise
        self._synced += ln + 7
        self._fill += ln + 7
        self._trim()

    def _repair(self):
        # After a failed write: cut the current segment back to what is known good.
        path = self._path(self._nums[-1])
        try:
            size = os.stat(path)[6]
        except OSError:
            size = 0
        good = self._synced
        if size != good:
            if good == 0:
                os.remove(path)
            else:
                tmp = bytearray(good)
                if _read_into(path, memoryview(tmp), good) != good:
                    raise OSError(5, "segment shorter than written")
                self._rewrite(self._nums[-1], [0, good], memoryview(tmp))
        self._broken = False

    def _save_ack(self, a, b, flags=_ACK):
        # An ACK (or RELEASED) record for a..b into the buffer, in the current segment
        # if it fits.
        if not self._nums or self._fill + _ACK_SIZE > self._segsize:
            if not self._roll(_ACK_SIZE, False):
                self._unsaved = True
                return
        if self._n + _ACK_SIZE > len(self._buf):
            self._write()
        p = self._n
        if p == 0:
            self._t0 = self._clock()
        buf = self._buf
        buf[p] = _MAGIC
        buf[p + 1] = 0
        buf[p + 2] = _ACK_L
        buf[p + 3] = flags
        struct.pack_into(">I", buf, p + 4, a)
        buf[p + 8] = 0
        buf[p + 9] = 0
        struct.pack_into(">I", buf, p + _HDR, b)
        struct.pack_into(">I", buf, p + 14, crc32(self._mv[p + 1:p + 14]))
        self._n = p + _ACK_SIZE
        self._fill += _ACK_SIZE
        if flags == _ACK:
            self._ack_pos = p
            self._ack_end = b
        else:
            self._ack_pos = -1

    def _roll(self, need, for_message):
        # Start a new segment for a record of `need` bytes; False if the log is full and
        # a message may not drop the oldest segment (or this is an ack).
        self._write()
        nums = self._nums
        if len(nums) >= self._max:
            self._trim()
        while len(nums) >= self._max:
            if not for_message or self._policy == REFUSE_NEW:
                return False
            self._drop_oldest()
        num = (nums[-1] if nums else self._last_num) + 1
        self._last_num = num
        nums.append(num)
        self._starts.append(self._next)
        self._fill = 0
        self._synced = 0
        self._broken = False
        if self._unsaved:
            self._checkpoint(need)
        return True

    def _checkpoint(self, need):
        # Re-record every ack (some were kept in RAM only) at the start of a new segment,
        # if that leaves room for the record that follows; else at the next segment.
        r = self._ranges
        k = len(r) // 2 + (1 if self._low > self._starts[0] else 0)
        if k * _ACK_SIZE + need > self._segsize:
            return
        self._unsaved = False
        if self._low > self._starts[0]:
            self._save_ack(self._starts[0], self._low - 1)
        i = 0
        while i < len(r):
            self._save_ack(r[i], r[i + 1])
            i += 2

    def _trim(self):
        # Remove the oldest segments while all their messages are acknowledged; never
        # the newest segment that is on flash.
        nums = self._nums
        starts = self._starts
        while len(nums) >= 2 and starts[1] <= self._low:
            if len(nums) == 2 and self._synced == 0:
                return
            self._remove(nums[0])
            nums.pop(0)
            starts.pop(0)

    def _drop_oldest(self):
        nums = self._nums
        end = self._starts[1] if len(nums) > 1 else self._next
        self.dropped += self._unacked(self._starts[0], end)
        self._remove(nums[0])
        nums.pop(0)
        self._starts.pop(0)
        if self._low < end:
            self._low = end
            self._normalize()

    def _remove(self, num):
        try:
            os.remove(self._path(num))
        except OSError:
            pass  # already gone; if it stays, a reset resends its messages (at least once)

    def _rewrite(self, num, spans, mv):
        # Replace segment num by the byte ranges spans ([s0, e0, s1, e1 ...]) of mv.
        path = self._path(num)
        tmp = self._path(num, ".tmp")
        f = open(tmp, "wb")
        try:
            i = 0
            while i < len(spans):
                _write_all(f, mv[spans[i]:spans[i + 1]])
                i += 2
            f.flush()
        finally:
            f.close()
        os.remove(path)
        os.rename(tmp, path)

    # ---- reading ----------------------------------------------------------------------

    def _read(self, num, off, current, after):
        # The records of segment num from offset off, at most _CHUNK of them, messages
        # with seq <= after skipped: ([(seq, topic, payload, qos, retain) ...], the
        # offset after the last record read).
        recs = []
        synced = self._synced if current else -1
        if synced < 0 or off < synced:
            try:
                f = open(self._path(num), "rb")
            except OSError:
                return recs, (synced if current else off)
            try:
                if off:
                    f.seek(off)
                while (synced < 0 or off < synced) and len(recs) < _CHUNK:
                    size = self._read_one(f, recs, after)
                    if size <= 0:
                        if current:
                            off = synced  # damaged since opening: skip to the buffer
                        break
                    off += size
            finally:
                f.close()
        if current:
            buf = self._buf
            p = off - synced
            while p < self._n and len(recs) < _CHUNK:
                ln = (buf[p + 1] << 8) | buf[p + 2]
                if not buf[p + 3] & _ACK and _u32(buf, p + 4) > after:
                    tl = (buf[p + 8] << 8) | buf[p + 9]
                    q = p + _HDR + tl
                    e = p + 3 + ln
                    topic = _decode(buf[p + _HDR:q])
                    if topic is not None:
                        recs.append(
                            (_u32(buf, p + 4), topic, bytes(buf[q:e]),
                             (buf[p + 3] >> 1) & 3, bool(buf[p + 3] & 1))
                        )
                p += ln + 7
                off += ln + 7
        return recs, off

    def _read_one(self, f, recs, after):
        # One record from the file f (clean since recovery); its size, 0 at the end,
        # -1 if damaged (bit rot after opening). A message with a seq above `after` is
        # appended to recs; others are skipped unread (checked at recovery).
        h = self._hdr
        k = f.readinto(self._hmv)
        if not k:
            return 0
        if k != _HDR or h[0] != _MAGIC:
            return -1
        ln = (h[1] << 8) | h[2]
        tl = (h[8] << 8) | h[9]
        if ln < _MIN_L or tl > ln - _MIN_L:
            return -1
        if h[3] & _ACK or _u32(h, 4) <= after:
            f.seek(ln - _MIN_L + _CRC, 1)  # nothing to return: no allocation
            return ln + 7
        tb = f.read(tl) if tl else b""
        payload = f.read(ln - _MIN_L - tl)
        c = f.read(_CRC)
        if len(tb) != tl or len(payload) != ln - _MIN_L - tl or len(c) != _CRC:
            return -1
        if crc32(payload, crc32(tb, crc32(self._hcrc))) != _u32(c, 0):
            return -1
        flags = h[3]
        if not flags & _ACK:
            topic = _decode(tb)
            if topic is not None:
                recs.append((_u32(h, 4), topic, payload, (flags >> 1) & 3, bool(flags & 1)))
        return ln + 7

    # ---- recovery ---------------------------------------------------------------------

    def _recover(self):
        d = self.directory
        try:
            names = os.listdir(d)
        except OSError:
            os.mkdir(d)  # a missing parent raises: that is a configuration error
            names = []
        nums = []
        tmps = []
        for name in names:
            n = _seg_number(name, ".log")
            if n >= 0:
                nums.append(n)
            else:
                n = _seg_number(name, ".tmp")
                if n >= 0:
                    tmps.append(n)
        for n in tmps:
            try:
                if n in nums:
                    os.remove(self._path(n, ".tmp"))  # an unfinished rewrite
                else:
                    os.rename(self._path(n, ".tmp"), self._path(n))  # finished but the rename
                    nums.append(n)
            except OSError:
                pass
        nums.sort()
        if nums:
            self._last_num = nums[-1]

        sizes = []
        big = self._segsize
        for n in nums:
            try:
                s = os.stat(self._path(n))[6]
            except OSError:
                s = 0
            sizes.append(s)
            if s > big:
                big = s
        scan = self._buf if len(self._buf) >= big else bytearray(big)
        mv = memoryview(scan)

        self._low = 0  # while parsing, ranges collect every ack found
        self._prev = 0  # the last message seq seen
        self._max_ack = 0
        firsts = []
        keep = []
        last_size = 0
        for k in range(len(nums)):
            num = nums[k]
            size = sizes[k]
            got = _read_into(self._path(num), mv, size) if size else 0
            spans, first = self._parse(scan, mv, got)
            kept = 0
            i = 0
            while i < len(spans):
                kept += spans[i + 1] - spans[i]
                i += 2
            if kept != size or kept == 0:  # damaged, or empty: nothing to keep
                self.repaired += 1
                self.discarded += size - kept
                try:
                    if kept == 0:
                        os.remove(self._path(num))
                    else:
                        self._rewrite(num, spans, mv)
                except OSError:
                    try:  # could not rewrite: keep it as it is, append elsewhere
                        os.remove(self._path(num, ".tmp"))
                    except OSError:
                        pass
                    if kept:
                        keep.append(num)
                        firsts.append(first)
                        last_size = self._segsize  # forces a new segment
                    continue
            if kept:
                keep.append(num)
                firsts.append(first)
                last_size = kept
        scan = mv = None

        nxt = (self._prev if self._prev > self._max_ack else self._max_ack) + 1
        starts = [0] * len(keep)
        k = len(keep) - 1
        start = nxt
        while k >= 0:
            if firsts[k]:
                start = firsts[k]
            starts[k] = start
            k -= 1
        self._nums = keep
        self._starts = starts
        self._next = nxt
        self._low = starts[0] if keep else nxt
        self._normalize()
        self._fill = self._synced = last_size if keep else 0
        self._rels = [s for s in self._rels if not self._is_acked(s)]
        del self._prev
        del self._max_ack

    def _parse(self, b, mv, n):
        # The valid records of a segment's bytes b[0:n] (mv: a view of b): their byte
        # ranges, merged ([s0, e0, ...]), and the first message seq (0: none). Records
        # the acks and the gaps it finds.
        spans = []
        first = 0
        p = 0
        while 0 <= p < n:
            end = _check(b, mv, p, n)
            if end:
                seq = _u32(b, p + 4)
                if b[p + 3] == _REL:
                    last = _u32(b, p + _HDR)
                    if self._max_ack < last:
                        self._max_ack = last
                    if last - seq < 1024:  # release() writes one seq a record
                        for s in range(seq, last + 1):
                            if s not in self._rels:
                                self._rels.append(s)
                elif b[p + 3] & _ACK:
                    last = _u32(b, p + _HDR)
                    if self._max_ack < last:
                        self._max_ack = last
                    self._mark(seq, last)
                elif seq > self._prev:
                    if self._prev and seq > self._prev + 1:
                        self._mark(self._prev + 1, seq - 1)  # lost records: never sent
                    self._prev = seq
                    if not first:
                        first = seq
                else:
                    end = 0  # not after the message before it: not this log's record
            if end:
                if spans and spans[-1] == p:
                    spans[-1] = end
                else:
                    spans.append(p)
                    spans.append(end)
                p = end
            else:
                p = b.find(_MAGIC_B, p + 1, n)  # resynchronise at the next sync byte
        return spans, first


def _check(b, mv, p, n):
    # The end offset of a valid record at b[p], or 0.
    if b[p] != _MAGIC or p + _HDR + _CRC > n:
        return 0
    ln = (b[p + 1] << 8) | b[p + 2]
    end = p + 7 + ln
    if ln < _MIN_L or end > n:
        return 0
    flags = b[p + 3]
    tl = (b[p + 8] << 8) | b[p + 9]
    if flags & _ACK:
        if (flags != _ACK and flags != _REL) or tl != 0 or ln != _ACK_L:
            return 0
    elif flags & 0xF8 or (flags & 6) == 6 or tl == 0 or tl > ln - _MIN_L:
        return 0
    if crc32(mv[p + 1:end - _CRC]) != _u32(b, end - _CRC):
        return 0
    if flags & _ACK and (_u32(b, p + 4) == 0 or _u32(b, p + _HDR) < _u32(b, p + 4)):
        return 0
    return end


def _read_into(path, mv, size):
    # Up to size bytes of the file into mv; the count read.
    try:
        f = open(path, "rb")
    except OSError:
        return 0
    got = 0
    try:
        while got < size:
            k = f.readinto(mv[got:size])
            if not k:
                break
            got += k
    except OSError:
        pass
    finally:
        f.close()
    return got


def _decode(b):
    try:
        return str(b, "utf-8")
    except ValueError:  # UnicodeError: not written by append(), which checks topics
        return None
