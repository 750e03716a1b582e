"""umqtt_paho.flashlog: the store-and-forward log on the host filesystem.

Round trips, order, segment rollover, trimming by segment, reopening after close and
after a reset, the full-log policies, batching, and the power-cut simulation: the last
segment cut at every byte, with erased or random garbage after the cut, and every byte
of it flipped, each reopened, checked against what must survive, appended to and
reopened again. A reset is simulated by dropping the FlashLog without close(): what
was only in its RAM buffer is gone, as after a power cut.
"""

import binascii
import os
import random
import shutil
import struct

import pytest

from umqtt_paho import flashlog
from umqtt_paho.flashlog import DROP_OLDEST, REFUSE_NEW, FlashLog

BIG = bytes(range(256)) * 8  # a 2 KB payload, holding 0xA5 bytes (the sync byte)


def pending(log):
    return list(log.pending())


def seg_files(d):
    return sorted(n for n in os.listdir(str(d)) if n.startswith("seg"))


def reset(d, **kw):
    """A new FlashLog on the same directory; the old one is simply dropped."""
    return FlashLog(str(d), **kw)


def parse_clean(data):
    """An independent reader of the documented record format, for a clean segment:
    [(start, end, seq, flags, topic bytes, payload bytes)]."""
    out = []
    p = 0
    while p < len(data):
        assert data[p] == 0xA5, "no sync byte at %d" % p
        (ln,) = struct.unpack_from(">H", data, p + 1)
        flags = data[p + 3]
        (seq,) = struct.unpack_from(">I", data, p + 4)
        (tl,) = struct.unpack_from(">H", data, p + 8)
        end = p + 7 + ln
        topic = data[p + 10:p + 10 + tl]
        payload = data[p + 10 + tl:end - 4]
        (crc,) = struct.unpack_from(">I", data, end - 4)
        assert crc == binascii.crc32(data[p + 1:end - 4]), "bad CRC at %d" % p
        out.append((p, end, seq, flags, topic, payload))
        p = end
    return out


# ---- the record format -------------------------------------------------------------------


def test_record_bytes_are_as_documented(tmp_path):
    log = FlashLog(str(tmp_path))
    assert log.append("a/b", b"hi", qos=1, retain=True) == 1
    body = (
        bytes([0x00, 12])  # L = 7 + T + P = 7 + 3 + 2
        + bytes([0x03])  # flags: qos 1 << 1 | retain
        + bytes([0, 0, 0, 1])  # seq 1
        + bytes([0, 3])  # topic length
        + b"a/b"
        + b"hi"
    )
    record = b"\xa5" + body + struct.pack(">I", binascii.crc32(body))
    assert (tmp_path / "seg00000001.log").read_bytes() == record
    assert len(record) == 14 + 3 + 2

    assert log.ack(1) is True
    log.sync()
    ack_body = bytes([0x00, 11, 0x80, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1])  # ACK 1..1
    ack = b"\xa5" + ack_body + struct.pack(">I", binascii.crc32(ack_body))
    assert (tmp_path / "seg00000001.log").read_bytes() == record + ack
    assert len(ack) == 18


def test_in_order_acks_extend_one_ack_record(tmp_path):
    log = FlashLog(str(tmp_path), sync_records=0)
    for i in range(5):
        log.append("t", b"%d" % i)
    for seq in (1, 2, 3, 4):
        assert log.ack(seq)
    log.sync()
    recs = parse_clean((tmp_path / "seg00000001.log").read_bytes())
    acks = [r for r in recs if r[3] & 0x80]
    assert [(r[2], struct.unpack(">I", r[5])[0]) for r in acks] == [(1, 4)]


# ---- round trips and order ---------------------------------------------------------------


def test_round_trip_every_field(tmp_path):
    log = FlashLog(str(tmp_path))
    msgs = [
        ("home/s1/temp", b'{"c": 21.5}', 1, False),
        ("home/s1/status", b"", 0, True),  # empty payload
        (b"bytes/topic", bytearray(b"\x00\xff\xa5"), 2, True),
        ("caf\u00e9/\u6e29\u5ea6", memoryview(b"view"), 0, False),  # UTF-8 topic
        ("str/payload", "h\u00e9llo", 1, False),
        ("big", BIG, 1, False),  # larger than the buffer: written directly
    ]
    seqs = [log.append(*m) for m in msgs]
    assert seqs == [1, 2, 3, 4, 5, 6]
    expect = [
        (1, "home/s1/temp", b'{"c": 21.5}', 1, False),
        (2, "home/s1/status", b"", 0, True),
        (3, "bytes/topic", b"\x00\xff\xa5", 2, True),
        (4, "caf\u00e9/\u6e29\u5ea6", b"view", 0, False),
        (5, "str/payload", "h\u00e9llo".encode(), 1, False),
        (6, "big", BIG, 1, False),
    ]
    assert pending(log) == expect
    assert len(log) == 6
    log.close()
    again = reset(tmp_path)
    assert pending(again) == expect
    assert again.repaired == 0 and again.discarded == 0
    got = pending(again)
    assert all(isinstance(r[1], str) and isinstance(r[2], bytes) for r in got)


def test_order_is_preserved_across_segments_and_reopens(tmp_path):
    rnd = random.Random(7)
    log = FlashLog(str(tmp_path), segment_size=512, max_segments=1000, sync_records=5)
    expect = []
    for i in range(400):
        payload = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 200)))
        topic = "t/%d" % (i % 7)
        seq = log.append(topic, payload, i % 3, i % 5 == 0)
        expect.append((seq, topic, payload, i % 3, i % 5 == 0))
        if i % 97 == 0:
            log.close()
            log = reset(tmp_path, segment_size=512, max_segments=1000, sync_records=5)
    assert [e[0] for e in expect] == list(range(1, 401))
    assert pending(log) == expect
    log.close()
    assert pending(reset(tmp_path, segment_size=512, max_segments=1000)) == expect


def test_segments_roll_over_at_segment_size(tmp_path):
    log = FlashLog(str(tmp_path), segment_size=256, max_segments=100)
    for i in range(40):
        log.append("t/x", b"p" * 40)  # 57-byte records: 4 per segment
    names = seg_files(tmp_path)
    assert names == ["seg%08d.log" % n for n in range(1, 11)]
    for name in names:
        data = (tmp_path / name).read_bytes()
        assert len(data) <= 256
        assert len(parse_clean(data)) == 4  # whole records only: none straddles
    assert pending(log)[0][0] == 1 and pending(log)[-1][0] == 40


def test_a_record_that_exceeds_a_segment_is_refused_before_anything_is_kept(tmp_path):
    log = FlashLog(str(tmp_path), segment_size=256)
    with pytest.raises(ValueError):
        log.append("t", b"x" * 300)
    assert log.append("t", b"x" * (256 - 14 - 1)) == 1  # exactly a segment
    assert len(log) == 1


def test_bad_arguments(tmp_path):
    log = FlashLog(str(tmp_path))
    for topic in ("", "a/+/b", "a/#", b"\xff"):
        with pytest.raises(ValueError):
            log.append(topic, b"x")
    with pytest.raises(ValueError):
        log.append("t", b"x", qos=3)
    assert len(log) == 0 and pending(log) == []
    with pytest.raises(ValueError):
        FlashLog(str(tmp_path / "x"), max_segments=1)
    with pytest.raises(ValueError):
        FlashLog(str(tmp_path / "y"), segment_size=1024, buffer_size=2048)
    with pytest.raises(ValueError):
        FlashLog(str(tmp_path / "z"), when_full=7)
    log.close()
    log.close()
    with pytest.raises(ValueError):
        log.append("t", b"x")
    assert pending(log) == []


def test_the_directory_is_created_and_other_files_are_left_alone(tmp_path):
    d = tmp_path / "log"
    log = FlashLog(str(d) + "/")
    log.append("t", b"1")
    (d / "notes.txt").write_bytes(b"hello")
    (d / "seg123.log").write_bytes(b"\xa5junk")
    log.close()
    again = FlashLog(str(d))
    assert [r[0] for r in pending(again)] == [1]
    assert (d / "notes.txt").read_bytes() == b"hello"
    assert (d / "seg123.log").exists()


# ---- acks and trimming -------------------------------------------------------------------


def test_a_segment_is_removed_once_all_its_messages_are_acked(tmp_path):
    log = FlashLog(str(tmp_path), segment_size=256, max_segments=100)
    for i in range(12):
        log.append("t/x", b"p" * 40)  # 4 per segment: seqs 1-4, 5-8, 9-12
    assert seg_files(tmp_path) == ["seg00000001.log", "seg00000002.log", "seg00000003.log"]
    for seq in (1, 2, 3):
        assert log.ack(seq)
    assert len(seg_files(tmp_path)) == 3  # seq 4 still pending
    assert log.ack(3) is False  # already acked
    assert log.ack(99) is False  # unknown
    assert log.ack(0) is False
    assert log.ack(4)
    assert seg_files(tmp_path) == ["seg00000002.log", "seg00000003.log"]
    # out of order: segment 2 waits for its oldest message
    for seq in (8, 6, 7):
        log.ack(seq)
    assert len(seg_files(tmp_path)) == 2
    assert [r[0] for r in pending(log)] == [5, 9, 10, 11, 12]
    assert len(log) == 5
    log.ack(5)
    assert seg_files(tmp_path) == ["seg00000003.log"]
    for seq in (9, 10, 11, 12):
        log.ack(seq)
    # the newest segment stays: it carries the numbering
    assert seg_files(tmp_path) == ["seg00000003.log"]
    assert pending(log) == [] and len(log) == 0
    log.close()
    again = reset(tmp_path, segment_size=256, max_segments=100)
    assert pending(again) == []
    assert again.append("t/x", b"next") == 13  # numbering goes on after a reset


def test_acks_survive_a_reset_in_and_out_of_order(tmp_path):
    log = FlashLog(str(tmp_path), segment_size=512, max_segments=100)
    for i in range(30):
        log.append("t", b"m%d" % i, 1)
    for seq in (1, 2, 3, 7, 9, 8, 20, 30, 15, 14):
        assert log.ack(seq)
    log.sync()
    again = reset(tmp_path, segment_size=512, max_segments=100)
    acked = {1, 2, 3, 7, 8, 9, 14, 15, 20, 30}
    assert [r[0] for r in pending(again)] == [s for s in range(1, 31) if s not in acked]
    assert len(again) == 20
    assert again.append("t", b"more") == 31


def test_an_ack_not_yet_written_is_lost_by_a_power_cut_and_the_message_resent(tmp_path):
    log = FlashLog(str(tmp_path))  # sync_records=1: each message is on flash at once
    log.append("t", b"a", 1)
    log.append("t", b"b", 1)
    log.ack(1)  # in the buffer only
    assert [r[0] for r in pending(log)] == [2]
    again = reset(tmp_path)  # power cut
    assert [r[0] for r in pending(again)] == [1, 2]  # at least once: 1 is sent again
    again.ack(1)
    again.append("t", b"c", 1)  # writes the ack with the message
    assert [r[0] for r in pending(reset(tmp_path))] == [2, 3]


def test_acks_arriving_during_pending_trim_segments_safely(tmp_path):
    log = FlashLog(str(tmp_path), segment_size=256, max_segments=100, sync_records=3)
    for i in range(20):
        log.append("t/x", b"p" * 40)
    seen = []
    for rec in log.pending():
        seen.append(rec[0])
        log.ack(rec[0])  # removes each segment as soon as it is done
        if rec[0] == 18:
            log.append("t/x", b"late")  # appended during the iteration: yielded too
    assert seen == list(range(1, 22))
    assert len(log) == 0
    assert len(seg_files(tmp_path)) == 1


# ---- the full log -------------------------------------------------------------------------


def test_drop_oldest_when_full(tmp_path):
    log = FlashLog(str(tmp_path), segment_size=256, max_segments=3, when_full=DROP_OLDEST)
    for i in range(20):
        assert log.append("t/x", b"p" * 40) == i + 1  # 4 per segment
    # 20 messages need 5 segments; 3 are kept: segments 1 and 2 (8 messages) dropped
    assert seg_files(tmp_path) == ["seg00000003.log", "seg00000004.log", "seg00000005.log"]
    assert log.dropped == 8
    assert [r[0] for r in pending(log)] == list(range(9, 21))
    assert len(log) == 12
    log.close()
    again = reset(tmp_path, segment_size=256, max_segments=3)
    assert [r[0] for r in pending(again)] == list(range(9, 21))


def test_drop_oldest_counts_only_unacked_messages(tmp_path):
    log = FlashLog(str(tmp_path), segment_size=256, max_segments=2)
    for i in range(8):
        log.append("t/x", b"p" * 40)
    log.ack(2)
    log.ack(3)  # segment 1: 1 and 4 still pending
    log.append("t/x", b"p" * 40)  # needs segment 3: drops segment 1
    assert log.dropped == 2
    assert [r[0] for r in pending(log)] == [5, 6, 7, 8, 9]


def test_refuse_new_when_full(tmp_path):
    log = FlashLog(str(tmp_path), segment_size=256, max_segments=2, when_full=REFUSE_NEW)
    for i in range(8):
        assert log.append("t/x", b"p" * 40) == i + 1
    assert log.append("t/x", b"p" * 40) == 0
    assert log.append("t/x", b"q" * 40) == 0
    assert log.dropped == 2
    assert [r[0] for r in pending(log)] == list(range(1, 9))
    for seq in (1, 2, 3, 4):
        log.ack(seq)
    assert log.append("t/x", b"p" * 40) == 9  # the acks freed segment 1
    assert seg_files(tmp_path) == ["seg00000002.log", "seg00000003.log"]
    assert [r[0] for r in pending(reset(tmp_path))] == [5, 6, 7, 8, 9]


def test_an_ack_that_does_not_fit_is_kept_and_checkpointed(tmp_path):
    kw = dict(segment_size=128, max_segments=2, when_full=REFUSE_NEW)
    log = FlashLog(str(tmp_path), **kw)
    for i in range(8):
        assert log.append("t", b"p" * 14) == i + 1  # 29-byte records: 4 per segment
    assert log.ack(8)  # no room for its 18-byte ACK record, no segment to spare: RAM only
    log.sync()
    assert [r[0] for r in pending(reset(tmp_path, **kw))] == list(range(1, 9))  # lost
    for seq in (1, 2, 3, 4):
        log.ack(seq)  # frees segment 1
    assert log.append("t", b"new") == 9  # new segment: the acks are re-recorded first
    assert [r[0] for r in pending(log)] == [5, 6, 7, 9]
    assert [r[0] for r in pending(reset(tmp_path, **kw))] == [5, 6, 7, 9]


# ---- batching ----------------------------------------------------------------------------


def test_unsynced_messages_are_lost_by_a_power_cut_and_synced_ones_survive(tmp_path):
    log = FlashLog(str(tmp_path), sync_records=0)  # only when full or on sync()
    log.append("t", b"1")
    log.append("t", b"2")
    assert [r[0] for r in pending(log)] == [1, 2]  # the buffer counts as pending
    assert pending(reset(tmp_path)) == []  # power cut: both lost
    log.sync()
    log.append("t", b"3")
    assert [r[2] for r in pending(reset(tmp_path))] == [b"1", b"2"]
    log.close()  # close() syncs
    assert [r[2] for r in pending(reset(tmp_path))] == [b"1", b"2", b"3"]


def test_sync_records_threshold(tmp_path):
    log = FlashLog(str(tmp_path), sync_records=3)
    log.append("t", b"1")
    log.append("t", b"2")
    assert pending(reset(tmp_path)) == []
    log.append("t", b"3")  # the third: written
    assert len(pending(reset(tmp_path))) == 3


def test_a_full_buffer_is_written(tmp_path):
    log = FlashLog(str(tmp_path), buffer_size=64, sync_records=0)
    log.append("t", b"x" * 20)  # 35 bytes
    assert pending(reset(tmp_path)) == []
    log.append("t", b"y" * 20)  # does not fit: the first is written, this one waits
    assert [r[2] for r in pending(reset(tmp_path))] == [b"x" * 20]


def test_sync_ms_threshold_with_a_fake_clock(tmp_path):
    now = [1000]
    log = FlashLog(str(tmp_path), sync_records=0, sync_ms=5000, clock_ms=lambda: now[0])
    log.append("t", b"1")
    now[0] += 4999
    log.append("t", b"2")
    assert log.sync_if_due() is False
    assert pending(reset(tmp_path)) == []
    now[0] += 1
    assert log.sync_if_due() is True
    assert len(pending(reset(tmp_path))) == 2
    log.append("t", b"3")
    now[0] += 6000
    log.append("t", b"4")  # the oldest waiting one is 6 s old: written by append()
    assert len(pending(reset(tmp_path))) == 4
    assert log.sync_if_due() is False  # nothing waiting


# ---- the power-cut simulation ------------------------------------------------------------

SEG = 4096
FILLERS = 10  # segment 1: ten 300-byte messages (3,170 bytes)


def build_log(d):
    """Segment 1: fillers. Segment 2 (the last): the 2 KB message, an empty payload,
    small and medium messages, an ACK record for fillers 1-2, a last small message.
    Returns (messages, ack record span (start, end) in segment 2, the bytes of both)."""
    log = FlashLog(str(d), segment_size=SEG)
    msgs = []
    for i in range(FILLERS):
        msgs.append((log.append("fill/%d" % i, bytes([i]) * 300, 1, False), "fill/%d" % i,
                     bytes([i]) * 300, 1, False))
    for topic, payload, qos, retain in (
        ("big/one", BIG, 1, False),  # does not fit segment 1: starts segment 2
        ("empty", b"", 0, True),
        ("s", b"21.5", 2, False),
        ("medium/\u00e9", bytes(range(200)) + b"\xa5" * 100, 1, True),
    ):
        msgs.append((log.append(topic, payload, qos, retain), topic, payload, qos, retain))
    log.ack(1)
    log.ack(2)
    msgs.append((log.append("last", b"z", 1, False), "last", b"z", 1, False))
    log.close()
    names = seg_files(d)
    assert names == ["seg00000001.log", "seg00000002.log"]
    seg1 = (d / names[0]).read_bytes()
    seg2 = (d / names[1]).read_bytes()
    recs = parse_clean(seg2)
    assert [r[2] for r in recs] == [11, 12, 13, 14, 1, 15]  # the ACK record has seq 1
    assert recs[4][3] == 0x80
    return msgs, recs, seg1, seg2


def expected_after(msgs, recs, survivors):
    """What pending() must give when exactly the records of segment 2 whose indexes are
    in `survivors` are intact (segment 1 is untouched)."""
    present = set(range(1, FILLERS + 1))
    acked = set()
    for i, r in enumerate(recs):
        if i in survivors:
            if r[3] & 0x80:
                acked.update(range(r[2], struct.unpack(">I", r[5])[0] + 1))
            else:
                present.add(r[2])
    return [m for m in msgs if m[0] in present and m[0] not in acked]


def reopen_and_check(case, seg1, seg2_bytes, expect, label):
    if case.exists():
        shutil.rmtree(str(case))
    case.mkdir()
    (case / "seg00000001.log").write_bytes(seg1)
    (case / "seg00000002.log").write_bytes(seg2_bytes)
    log = FlashLog(str(case), segment_size=SEG)  # must not raise
    got = pending(log)
    assert got == expect, label
    assert len(log) == len(expect), label
    # the damage is gone: later appends are clean and survive a reset
    seq = log.append("after/cut", b"new", 1, False)
    assert seq > max([m[0] for m in expect] + [0]), label
    again = FlashLog(str(case), segment_size=SEG)
    assert again.repaired == 0, label
    assert pending(again) == expect + [(seq, "after/cut", b"new", 1, False)], label
    return log


def test_power_cut_truncation_at_every_byte_of_the_last_segment(tmp_path):
    msgs, recs, seg1, seg2 = build_log(tmp_path / "ref")
    case = tmp_path / "case"
    cases = 0
    for cut in range(len(seg2) + 1):
        survivors = {i for i, r in enumerate(recs) if r[1] <= cut}
        expect = expected_after(msgs, recs, survivors)
        log = reopen_and_check(case, seg1, seg2[:cut], expect, "cut at %d" % cut)
        torn = cut not in [0] + [r[1] for r in recs]
        assert log.repaired == (1 if torn or cut == 0 else 0), cut
        cases += 1
    assert cases == len(seg2) + 1 > 2400


@pytest.mark.parametrize("garbage", ["erased", "random", "fake-start"])
def test_power_cut_with_garbage_after_the_cut(tmp_path, garbage):
    msgs, recs, seg1, seg2 = build_log(tmp_path / "ref")
    rnd = random.Random(garbage)
    case = tmp_path / "case"
    for cut in range(0, len(seg2) + 1, 1 if garbage == "erased" else 3):
        if garbage == "erased":
            tail = b"\xff" * 64  # programmed up to the cut, the rest still erased
        elif garbage == "random":
            tail = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 80)))
        else:  # something that starts like a record and is not one
            tail = b"\xa5\x00\x20\x02\x00\x00\x00\x63\x00\x01t" + bytes(rnd.randrange(256)
                                                                      for _ in range(30))
        survivors = {i for i, r in enumerate(recs) if r[1] <= cut}
        expect = expected_after(msgs, recs, survivors)
        reopen_and_check(case, seg1, seg2[:cut] + tail, expect, "%s after %d" % (garbage, cut))


def test_power_cut_every_byte_of_the_last_segment_flipped(tmp_path):
    msgs, recs, seg1, seg2 = build_log(tmp_path / "ref")
    case = tmp_path / "case"
    for pos in range(len(seg2)):
        damaged = bytearray(seg2)
        damaged[pos] ^= 0xFF
        hit = [i for i, r in enumerate(recs) if r[0] <= pos < r[1]][0]
        survivors = set(range(len(recs))) - {hit}
        expect = expected_after(msgs, recs, survivors)
        log = reopen_and_check(case, seg1, bytes(damaged), expect, "flip at %d" % pos)
        assert log.repaired == 1
        assert log.discarded == recs[hit][1] - recs[hit][0], pos


def test_a_power_cut_in_the_first_write_of_a_new_segment(tmp_path):
    log = FlashLog(str(tmp_path), segment_size=256, max_segments=100)
    for i in range(4):
        log.append("t/x", b"p" * 40)
    log.append("t/x", b"q" * 40)  # segment 2
    data = (tmp_path / "seg00000002.log").read_bytes()
    for cut in range(len(data)):
        (tmp_path / "seg00000002.log").write_bytes(data[:cut])
        again = reset(tmp_path, segment_size=256, max_segments=100)
        assert [r[0] for r in pending(again)] == [1, 2, 3, 4]
        assert again.append("t/x", b"r" * 40) == 5
        assert [r[2] for r in pending(reset(tmp_path, segment_size=256))][-1] == b"r" * 40
        for name in seg_files(tmp_path):
            parse_clean((tmp_path / name).read_bytes())  # clean files only
        for name in seg_files(tmp_path)[2:]:
            os.remove(str(tmp_path / name))


def test_an_empty_and_an_all_garbage_segment(tmp_path):
    (tmp_path / "seg00000001.log").write_bytes(b"")
    (tmp_path / "seg00000002.log").write_bytes(b"\xff" * 4096)
    (tmp_path / "seg00000003.log").write_bytes(os.urandom(999))
    log = FlashLog(str(tmp_path))
    assert pending(log) == [] and len(log) == 0
    assert log.repaired == 3 and log.discarded == 4096 + 999
    assert seg_files(tmp_path) == []
    assert log.append("t", b"x") == 1
    assert seg_files(tmp_path) == ["seg00000004.log"]


def test_a_rewrite_cut_short_is_resolved_at_the_next_open(tmp_path):
    log = FlashLog(str(tmp_path))
    for i in range(3):
        log.append("t", b"%d" % i)
    log.close()
    data = (tmp_path / "seg00000001.log").read_bytes()
    # a .tmp beside its .log: the rewrite was unfinished; the .log is still whole
    (tmp_path / "seg00000001.tmp").write_bytes(data[:10])
    assert [r[0] for r in pending(reset(tmp_path))] == [1, 2, 3]
    assert seg_files(tmp_path) == ["seg00000001.log"]
    # a .tmp alone: written and closed, the old file removed, the rename not done
    os.rename(str(tmp_path / "seg00000001.log"), str(tmp_path / "seg00000001.tmp"))
    assert [r[0] for r in pending(reset(tmp_path))] == [1, 2, 3]
    assert seg_files(tmp_path) == ["seg00000001.log"]


def test_records_lost_in_the_middle_count_as_acked(tmp_path):
    log = FlashLog(str(tmp_path), segment_size=256, max_segments=100)
    for i in range(8):
        log.append("t/x", b"p" * 40)
    log.close()
    path = tmp_path / "seg00000001.log"
    data = bytearray(path.read_bytes())
    data[60 + 30] ^= 1  # inside message 2
    path.write_bytes(bytes(data))
    again = reset(tmp_path, segment_size=256, max_segments=100)
    assert [r[0] for r in pending(again)] == [1, 3, 4, 5, 6, 7, 8]
    for seq in (1, 3, 4):
        again.ack(seq)
    assert seg_files(tmp_path) == ["seg00000002.log"]  # 2 can never be sent: not waited for


def test_damage_after_opening_is_skipped_by_pending(tmp_path):
    with FlashLog(str(tmp_path), segment_size=256, max_segments=100) as log:
        for i in range(8):
            log.append("t/x", b"p" * 40)
        path = tmp_path / "seg00000001.log"
        data = bytearray(path.read_bytes())
        data[57 + 20] ^= 0x10  # bit rot in message 2, while the log is open
        path.write_bytes(bytes(data))
        # the rest of that segment is skipped for now; the next open recovers 3 and 4
        assert [r[0] for r in pending(log)] == [1, 5, 6, 7, 8]
    assert [r[0] for r in pending(reset(tmp_path, segment_size=256))] == [1, 3, 4, 5, 6, 7, 8]


# ---- write errors ------------------------------------------------------------------------


def test_a_failed_write_keeps_the_buffer_and_repairs_the_segment(tmp_path, monkeypatch):
    log = FlashLog(str(tmp_path), sync_records=0)
    log.append("t", b"one")
    log.sync()
    log.append("t", b"two")
    log.append("t", b"three")

    real_open = open

    class HalfWriter:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(bytes(data)[: len(data) // 2])
            raise OSError(28, "No space left on device")

        def flush(self):
            self.f.flush()

        def close(self):
            self.f.close()

    def failing_open(path, mode="r"):
        f = real_open(path, mode)
        return HalfWriter(f) if "a" in mode else f

    monkeypatch.setattr(flashlog, "open", failing_open, raising=False)
    with pytest.raises(OSError):
        log.sync()
    monkeypatch.undo()
    assert [r[2] for r in pending(log)] == [b"one", b"two", b"three"]
    log.sync()  # cuts the torn tail first, then writes
    again = reset(tmp_path)
    assert again.repaired == 0
    assert [r[2] for r in pending(again)] == [b"one", b"two", b"three"]


# ---- random operations against the guarantees ------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_random_operations_keep_the_guarantees(tmp_path, seed):
    """Random appends, acks (in and out of order), syncs, pending() walks that ack as
    they go, closes and power cuts, on a small log. After every step and reopen: order
    and contents hold; no ack that reached flash comes back; a message never acked is
    never missing, except the oldest ones under DROP_OLDEST; seq grows (a power cut
    gives the seqs of the messages it lost to the next ones)."""
    rnd = random.Random(seed)
    kw = dict(
        segment_size=rnd.choice([128, 256, 512]),
        max_segments=rnd.choice([2, 3, 5]),
        sync_records=rnd.choice([0, 1, 3]),
        when_full=REFUSE_NEW if seed % 2 else DROP_OLDEST,
    )
    sent = {}  # seq: (topic, payload, qos, retain) of every message append() accepted
    acked = set()  # every ack made (of messages that still exist)
    durable = set()  # acks the buffer certainly carried to flash
    forgotten = set()  # acks a power cut lost: pending again, unless trimmed meanwhile
    unsynced = []  # messages in the buffer: a power cut loses them

    def opened():
        log = FlashLog(str(tmp_path), **kw)
        write = log._write

        def watched():  # every write of the buffer: what it held is on flash now
            if log._n:
                if not log._unsaved:  # else some acks wait for the next segment
                    durable.update(acked)
                del unsynced[:]
            write()

        log._write = watched
        return log

    log = opened()
    last_seq = 0
    for step in range(600):
        op = rnd.random()
        if op < 0.5:
            payload = bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 60)))
            msg = ("t/%d" % rnd.randrange(3), payload, rnd.randrange(3), rnd.random() < 0.3)
            seq = log.append(*msg)
            if seq:
                assert seq > last_seq
                last_seq = seq
                sent[seq] = msg
                if log._n:
                    unsynced.append(seq)
        elif op < 0.75:
            live = [r[0] for r in log.pending()]
            if live:
                s = live[0] if rnd.random() < 0.6 else rnd.choice(live)
                assert log.ack(s)
                acked.add(s)
        elif op < 0.8:
            for rec in log.pending():
                if rnd.random() < 0.5:
                    assert log.ack(rec[0])
                    acked.add(rec[0])
        elif op < 0.87:
            log.sync()
        else:
            if rnd.random() < 0.5:
                log.close()
            for s in unsynced:  # power cut: the buffer is gone
                sent.pop(s)
                acked.discard(s)
            del unsynced[:]
            forgotten.update(acked - durable)
            acked.intersection_update(durable)
            log = opened()
            assert log.repaired == 0
            last_seq = max(sent) if sent else 0
        recs = list(log.pending())
        got = [r[0] for r in recs]
        assert got == sorted(got) and len(got) == len(log)
        for seq, topic, payload, qos, retain in recs:
            assert sent[seq] == (topic, payload, qos, retain)
            assert seq not in durable
        floor = min(got) if got else last_seq + 1
        missing = [s for s in sent if s not in acked | forgotten and s not in got]
        assert all(s < floor for s in missing), (step, missing, floor)
        if kw["when_full"] == REFUSE_NEW:
            assert missing == [], (step, missing)
        assert len(seg_files(tmp_path)) <= kw["max_segments"]


# ---- the RELEASED mark and pending(after) (moved from test_store_forward.py) -------------


def test_release_survives_on_flash_and_ack_clears_it(tmp_path):
    d = str(tmp_path / "log")
    log = FlashLog(d, sync_records=100)  # even with batching, release() writes at once
    s1 = log.append("a/b", b"x", 2)
    s2 = log.append("a/b", b"y", 2)
    assert log.release(s2) and not log.released(s1) and log.released(s2)
    again = FlashLog(d)  # a power cut now: both messages and the mark are on flash
    assert [r[0] for r in again.pending()] == [s1, s2]
    assert again.released(s2) and not again.released(s1)
    assert again.ack(s2) and not again.released(s2)
    again.sync()
    third = FlashLog(d)
    assert not third.released(s2) and [r[0] for r in third.pending()] == [s1]
    assert not third.release(s2)  # acknowledged: nothing to release
    assert not third.release(99)  # unknown


def test_release_mark_cut_at_every_byte(tmp_path):
    # A power cut while the RELEASED record is written: the message is released after
    # the reopen only if its record is whole; the message itself is never lost.
    src = str(tmp_path / "src")
    log = FlashLog(src)
    s1 = log.append("a/b", b"first", 2)
    s2 = log.append("a/b", b"second", 2)
    seg = os.path.join(src, sorted(os.listdir(src))[-1])
    before = os.path.getsize(seg)
    log.release(s2)
    data = open(seg, "rb").read()
    assert len(data) == before + 18  # one 18-byte record, written at once
    released_at = []
    for cut in range(before, len(data) + 1):
        d = str(tmp_path / ("c%d" % cut))
        shutil.copytree(src, d)
        with open(os.path.join(d, os.path.basename(seg)), "wb") as f:
            f.write(data[:cut])
        again = FlashLog(d)
        assert [r[0] for r in again.pending()] == [s1, s2]
        if again.released(s2):
            released_at.append(cut)
        assert not again.released(s1)
    assert released_at == [len(data)]


@pytest.mark.parametrize("sync_records", [1, 0])
def test_pending_after_skips_older_messages_by_their_header(tmp_path, sync_records):
    # The client resumes reading the log after the last message it loaded: older
    # segments are not read, older records are skipped without reading their bodies.
    log = FlashLog(str(tmp_path / "log"), segment_size=256, max_segments=64,
                   sync_records=sync_records)
    seqs = [log.append("s/%d" % (k % 3), b"p%03d" % k, 1 + k % 2) for k in range(120)]
    for s in seqs[::7]:
        log.ack(s)  # out of order acks: holes
    everything = list(log.pending())
    assert len(everything) == 120 - len(seqs[::7])
    for after in (0, 1, 5, 33, 64, 100, 119, 120, 500):
        assert list(log.pending(after)) == [r for r in everything if r[0] > after]
