# The store-and-forward log (umqtt_paho.flashlog) inside the MicroPython VM, on the
# VM's in-memory filesystem (/tmp): binascii.crc32 as the format needs it, the record
# bytes (identical to CPython's), round trips, rollover and trimming, batching, the
# power-cut simulation (the last segment cut at every byte; every byte of its records
# flipped) and the allocation of append().
#
# Runs in MicroPython (tests/test_vm.py loads the .mpy build into the VM) and on CPython
# (pytest collects it as it is): plain test functions and asserts, no pytest import, no
# f-strings, no os.path.

import gc
import os
from binascii import crc32

from umqtt_paho.flashlog import FlashLog, REFUSE_NEW

from fakenet import remove_dir

BASE = "/tmp/vm_flashlog_"
BIG = bytes(range(256)) * 8  # 2 KB, holding 0xA5 bytes (the sync byte)

# ---- helpers --------------------------------------------------------------------------


def fresh(name):
    path = BASE + name
    remove_dir(path)
    return path


def files(path):
    return sorted([n for n in os.listdir(path) if n.startswith("seg")])


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def seqs(log):
    return [r[0] for r in log.pending()]


def u16(b, i):
    return (b[i] << 8) | b[i + 1]


def u32(b, i):
    return (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]


def record_spans(data):
    # (start, end, seq, is_ack, last) of each record of a clean segment.
    out = []
    p = 0
    while p < len(data):
        assert data[p] == 0xA5, p
        end = p + 7 + u16(data, p + 1)
        assert crc32(data[p + 1:end - 4]) == u32(data, end - 4), p
        ack = data[p + 3] == 0x80
        out.append((p, end, u32(data, p + 4), ack, u32(data, p + 10) if ack else 0))
        p = end
    return out


# ---- the format -------------------------------------------------------------------------


def test_crc32_is_the_standard_crc32():
    assert crc32(b"123456789") == 0xCBF43926
    assert crc32(b"") == 0
    assert crc32(b"6789", crc32(b"12345")) == 0xCBF43926
    buf = bytearray(b"xx123456789yy")
    assert crc32(memoryview(buf)[2:11]) == 0xCBF43926


def test_record_bytes_are_those_cpython_writes():
    d = fresh("format")
    log = FlashLog(d)
    assert log.append("a/b", b"hi", 1, True) == 1
    # magic, L=12, flags qos 1 | retain, seq 1, T=3, topic, payload, CRC-32
    assert read(d + "/seg00000001.log") == (
        b"\xa5\x00\x0c\x03\x00\x00\x00\x01\x00\x03a/bhi\xf8\xbb\xa6t"
    )
    log.ack(1)
    log.sync()
    data = read(d + "/seg00000001.log")
    # the ACK record: magic, L=11, flags 0x80, seq 1, T=0, LAST 1, CRC-32
    assert data[19:33] == b"\xa5\x00\x0b\x80\x00\x00\x00\x01\x00\x00\x00\x00\x00\x01"
    assert record_spans(data) == [(0, 19, 1, False, 0), (19, 37, 1, True, 1)]


# ---- round trips ------------------------------------------------------------------------


def test_round_trip_and_reopen():
    d = fresh("roundtrip")
    log = FlashLog(d)
    msgs = [
        ("home/s1/temp", b'{"c": 21.5}', 1, False),
        ("home/s1/status", b"", 0, True),
        (b"bytes/topic", bytearray(b"\x00\xff\xa5"), 2, True),
        ("big", BIG, 1, False),
    ]
    for m in msgs:
        log.append(m[0], m[1], m[2], m[3])
    expect = [
        (1, "home/s1/temp", b'{"c": 21.5}', 1, False),
        (2, "home/s1/status", b"", 0, True),
        (3, "bytes/topic", b"\x00\xff\xa5", 2, True),
        (4, "big", BIG, 1, False),
    ]
    assert list(log.pending()) == expect
    log.close()
    again = FlashLog(d)
    assert list(again.pending()) == expect
    assert again.repaired == 0 and len(again) == 4


def test_rollover_trim_and_numbering():
    d = fresh("trim")
    log = FlashLog(d, segment_size=256, max_segments=100)
    for i in range(12):
        assert log.append("t/x", b"p" * 40) == i + 1  # 57 B: 4 per segment
    assert files(d) == ["seg00000001.log", "seg00000002.log", "seg00000003.log"]
    for s in (2, 1, 4, 3):
        assert log.ack(s)
    assert files(d) == ["seg00000002.log", "seg00000003.log"]
    for s in range(5, 13):
        log.ack(s)
    assert files(d) == ["seg00000003.log"] and len(log) == 0
    log.close()
    again = FlashLog(d, segment_size=256, max_segments=100)
    assert seqs(again) == []
    assert again.append("t/x", b"next") == 13


def test_full_log_policies():
    d = fresh("drop")
    log = FlashLog(d, segment_size=256, max_segments=3)
    for i in range(20):
        log.append("t/x", b"p" * 40)
    assert log.dropped == 8 and seqs(log) == list(range(9, 21))
    d = fresh("refuse")
    log = FlashLog(d, segment_size=256, max_segments=2, when_full=REFUSE_NEW)
    for i in range(8):
        log.append("t/x", b"p" * 40)
    assert log.append("t/x", b"p" * 40) == 0 and log.dropped == 1
    for s in (1, 2, 3, 4):
        log.ack(s)
    assert log.append("t/x", b"p" * 40) == 9


def test_unsynced_records_are_lost_and_synced_ones_survive():
    d = fresh("batch")
    log = FlashLog(d, sync_records=0)
    log.append("t", b"1")
    log.append("t", b"2")
    assert seqs(log) == [1, 2]
    assert seqs(FlashLog(d)) == []  # power cut: the buffer is gone
    log.sync()
    assert seqs(FlashLog(d)) == [1, 2]


# ---- the power-cut simulation -----------------------------------------------------------


def build(d):
    # Segment 1: five fillers; segment 2 (the last): 2 KB, empty payload, small, an ACK
    # record for 1..2, small. Returns (messages, segment 1, segment 2, its records).
    log = FlashLog(d)
    msgs = []
    for i in range(5):
        t = "fill/%d" % i
        msgs.append((log.append(t, bytes([i]) * 600, 1, False), t, bytes([i]) * 600, 1, False))
    for t, p, q, r in (("big", BIG, 1, False), ("empty", b"", 0, True), ("s", b"21.5", 2, False)):
        msgs.append((log.append(t, p, q, r), t, p, q, r))
    log.ack(1)
    log.ack(2)
    msgs.append((log.append("last", b"z", 1, False), "last", b"z", 1, False))
    log.close()
    assert files(d) == ["seg00000001.log", "seg00000002.log"]
    seg2 = read(d + "/seg00000002.log")
    recs = record_spans(seg2)
    assert [(r[2], r[3]) for r in recs] == [(6, 0), (7, 0), (8, 0), (1, 1), (9, 0)]
    return msgs, read(d + "/seg00000001.log"), seg2, recs


def expected(msgs, recs, intact):
    present = [1, 2, 3, 4, 5]
    acked = []
    for i in range(len(recs)):
        if intact[i]:
            r = recs[i]
            if r[3]:
                acked += list(range(r[2], r[4] + 1))
            else:
                present.append(r[2])
    return [m for m in msgs if m[0] in present and m[0] not in acked]


def check(d, seg1, seg2, expect, label):
    remove_dir(d)
    os.mkdir(d)
    write(d + "/seg00000001.log", seg1)
    write(d + "/seg00000002.log", seg2)
    log = FlashLog(d)  # must not raise
    got = list(log.pending())
    assert got == expect, label
    seq = log.append("after", b"new", 1, False)
    again = FlashLog(d)
    assert again.repaired == 0, label
    assert list(again.pending()) == expect + [(seq, "after", b"new", 1, False)], label
    return log


def test_power_cut_truncation_at_every_byte():
    msgs, seg1, seg2, recs = build(fresh("ref"))
    d = BASE + "cut"
    n = 0
    for cut in range(len(seg2) + 1):
        intact = [r[1] <= cut for r in recs]
        log = check(d, seg1, seg2[:cut], expected(msgs, recs, intact), "cut %d" % cut)
        assert log.discarded == cut - max([0] + [r[1] for r in recs if r[1] <= cut])
        n += 1
    assert n == len(seg2) + 1 > 2100
    remove_dir(d)


def test_every_byte_of_the_last_segment_flipped():
    msgs, seg1, seg2, recs = build(fresh("ref"))
    d = BASE + "flip"
    for pos in range(len(seg2)):
        bad = bytearray(seg2)
        bad[pos] ^= 0xFF
        intact = [not (r[0] <= pos < r[1]) for r in recs]
        log = check(d, seg1, bytes(bad), expected(msgs, recs, intact), "flip %d" % pos)
        assert log.repaired == 1
        hit = [r for r in recs if r[0] <= pos < r[1]][0]
        assert log.discarded == hit[1] - hit[0]  # exactly the damaged record
    remove_dir(d)


# ---- allocation -------------------------------------------------------------------------


def _append_workload():
    d = fresh("alloc")
    log = FlashLog(d, segment_size=4096, buffer_size=4096, sync_records=0, max_segments=4)
    topic = "home/sensor-1/temp"
    payload = b'{"t": 21.5, "h": 40.1, "p": 1013.2}'
    log.append(topic, payload, 1)  # warm up: the topic is encoded and checked once
    return log, topic, payload


def test_append_allocates_only_for_the_crc():
    if not hasattr(gc, "mem_alloc"):
        return  # CPython
    log, topic, payload = _append_workload()
    n = 60  # 60 x 54 B records: all in the 4 KB buffer, no write in between
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    for _ in range(n):
        log.append(topic, payload, 1)
    b = gc.mem_alloc()
    gc.enable()
    per = (b - a) / n
    print("append: %g bytes per record" % per)
    # a memoryview of the record (16 B) for crc32, and the CRC itself, a long int on a
    # 32-bit port whenever it is >= 2**30 (3 times in 4: 32 B)
    assert per <= 48, per


def measure_append():
    # Printed by test_vm_alloc: append() in steady state, the writes of full buffers
    # (one per ~75 records), rollover and dropping old segments included.
    log, topic, payload = _append_workload()

    def work():
        log.append(topic, payload, 1)

    for _ in range(100):
        work()
    return work, 1000
