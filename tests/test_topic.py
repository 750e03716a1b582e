# Topic names, topic filters and wildcard matching [MQTT-4.7], against the spec's own
# examples (MQTT 3.1.1, 4.7.1.2, 4.7.1.3, 4.7.2, 4.7.3) and UTF-8 rules [1.5.3].
#
# This file also runs on MicroPython: plain test functions and asserts, no pytest, no
# fixtures, no f-strings, no typing.

from umqtt_paho.errors import REASONS
from umqtt_paho.packet import (
    filter_problem,
    matches,
    topic_matches_sub,
    topic_problem,
    utf8_problem,
)


def why_text(why):
    """The words for a reason number of the topic checks (errors.REASONS)."""
    return REASONS[why]


def s2b(s):
    return s.encode("utf-8")


# (filter, topic, matches?)
MATCH_TABLE = (
    # 4.7.1.2 multi-level wildcard
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/tennis/player1/#", "sport/tennis/player2", False),
    ("sport/tennis/player1/#", "sport/tennis", False),
    ("sport/tennis/player1/#", "sport/tennis/player10", False),
    ("sport/#", "sport", True),
    ("sport/#", "sport/", True),
    ("sport/#", "sports", False),
    ("sport/tennis/#", "sport/tennis/player1/ranking", True),
    ("#", "sport", True),
    ("#", "sport/tennis/player1", True),
    ("#", "/", True),
    ("#", "/finance", True),
    # 4.7.1.3 single-level wildcard
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player2", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/tennis/+", "sport/tennis", False),
    ("sport/tennis/+", "sport/tennis/", True),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("sport/+/player1", "sport/tennis/player1", True),
    ("sport/+/player1", "sport/tennis/player2", False),
    ("+/tennis/#", "sport/tennis/player1/ranking", True),
    ("+/tennis/#", "sport/tennis", True),
    ("+/tennis/#", "sport/golf", False),
    ("+", "sport", True),
    ("+", "/finance", False),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("/+", "finance", False),
    ("+", "", True),
    ("+/+", "a", False),
    ("+/+", "a/b/c", False),
    ("+/#", "a", True),
    ("a/+/#", "a/b", True),
    ("a/+/#", "a", False),
    ("a/+/+", "a//", True),
    ("+/+/+", "//", True),
    # 4.7.2 topics beginning with $
    ("#", "$SYS/broker/clients", False),
    ("#", "$SYS", False),
    ("+", "$SYS", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("+/#", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/monitor/Clients", True),
    ("$SYS/#", "$SYS", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("$SYS/monitor/Clients", "$SYS/monitor/Clients", True),
    ("$SYS/+", "$SYS/monitor/Clients", False),
    ("+/monitor/Clients", "SYS/monitor/Clients", True),
    ("#", "a/$SYS", True),  # only a leading $ is special
    ("a/+", "a/$b", True),
    # 4.7.3 topic semantics: case-sensitive, spaces allowed, leading '/' is a level
    ("ACCOUNTS", "Accounts", False),
    ("Accounts", "Accounts", True),
    ("Accounts payable", "Accounts payable", True),
    ("/finance", "finance", False),
    ("finance", "/finance", False),
    ("/finance", "/finance", True),
    # plain filters
    ("a/b", "a/b", True),
    ("a/b", "a/b/", False),
    ("a/b/", "a/b", False),
    ("a/b", "a/bc", False),
    ("a/bc", "a/b", False),
    ("a/b", "a", False),
    ("a", "a/b", False),
    ("a//b", "a/b", False),
    ("a//b", "a//b", True),
    ("a/#", "a", True),
    ("a/#", "a/", True),
    ("a/#", "ab", False),
    ("a/#", "ab/c", False),
    ("a//#", "a/", True),
    ("a//#", "a", False),
    ("a/b/#", "a/b", True),
    ("a/b/#", "a/bc", False),
    ("/#", "/", True),
    ("/#", "a", False),
    # non-ASCII levels
    ("caf\u00e9/+", "caf\u00e9/cr\u00e8me", True),
    ("caf\u00e9/+", "cafe/cr\u00e8me", False),
    ("+/\u6771\u4eac", "\u65e5\u672c/\u6771\u4eac", True),
    ("\U0001f600/#", "\U0001f600/a/b", True),
)


def test_topic_matches_sub_str():
    for f, t, want in MATCH_TABLE:
        got = topic_matches_sub(f, t)
        assert got is want, "%r vs %r: %r" % (f, t, got)


def test_topic_matches_sub_bytes():
    for f, t, want in MATCH_TABLE:
        assert topic_matches_sub(s2b(f), s2b(t)) is want, (f, t)
        # mixed
        assert topic_matches_sub(f, s2b(t)) is want, (f, t)
        assert topic_matches_sub(s2b(f), t) is want, (f, t)


def test_matches_inside_a_buffer():
    # the client matches a topic where it sits in its receive buffer
    for f, t, want in MATCH_TABLE:
        tb = s2b(t)
        buf = b"$#+/x" + tb + b"/#+$"
        mv = memoryview(buf)
        assert matches(s2b(f), mv, 5, 5 + len(tb)) is want, (f, t)
        assert matches(s2b(f), bytearray(buf), 5, 5 + len(tb)) is want, (f, t)


def test_filters_from_the_spec():
    valid = (
        "sport/tennis/player1/#",
        "sport/tennis/#",
        "sport/#",
        "#",
        "+",
        "+/tennis/#",
        "sport/+/player1",
        "+/+",
        "/+",
        "/",
        "//",
        "+/",
        "/#",
        "a//#",
        "$SYS/#",
        "$SYS/monitor/+",
        "Accounts payable",
        "caf\u00e9/+/#",
        "\U0001f600",
    )
    for f in valid:
        assert filter_problem(s2b(f)) is None, f
    invalid = (
        ("sport/tennis#", "MQTT-4.7.1-2"),
        ("sport/tennis/#/ranking", "MQTT-4.7.1-2"),
        ("#/", "MQTT-4.7.1-2"),
        ("##", "MQTT-4.7.1-2"),
        ("a/#/b", "MQTT-4.7.1-2"),
        ("sport+", "MQTT-4.7.1-3"),
        ("a+", "MQTT-4.7.1-3"),
        ("+a", "MQTT-4.7.1-3"),
        ("a/+b", "MQTT-4.7.1-3"),
        ("a/b+/c", "MQTT-4.7.1-3"),
        ("++", "MQTT-4.7.1-3"),
        ("+#", "MQTT-4.7.1"),
        ("", "MQTT-4.7.3-1"),
    )
    for f, rule in invalid:
        why = filter_problem(s2b(f))
        assert why is not None, f
        assert rule in why_text(why), (f, why)
    assert "MQTT-4.7.3-3" in why_text(filter_problem(b"a" * 65536))
    assert filter_problem(b"a" * 65535) is None
    assert "MQTT-1.5.3-2" in why_text(filter_problem(b"a/\x00"))
    assert "MQTT-1.5.3-1" in why_text(filter_problem(b"a/\xc0\xaf"))


def test_topic_problem():
    for t in (
        "a",
        "/",
        "//",
        "a/b",
        "$SYS/x",
        "Accounts payable",
        "caf\u00e9",
        "\U0001f600/x",
        " ",
        "a b/c d",
    ):
        b = s2b(t)
        assert topic_problem(b, 0, len(b)) is None, t
    for t, rule in (
        ("", "MQTT-4.7.3-1"),
        ("+", "MQTT-3.3.2-2"),
        ("#", "MQTT-3.3.2-2"),
        ("a/+", "MQTT-3.3.2-2"),
        ("a/#", "MQTT-3.3.2-2"),
        ("a+b", "MQTT-3.3.2-2"),
    ):
        b = s2b(t)
        why = topic_problem(b, 0, len(b))
        assert why is not None and rule in why_text(why), (t, why)
    assert "MQTT-4.7.3-3" in why_text(topic_problem(b"a" * 65536, 0, 65536))
    assert topic_problem(b"a" * 65535, 0, 65535) is None
    assert "MQTT-1.5.3-2" in why_text(topic_problem(b"a\x00", 0, 2))
    assert "MQTT-1.5.3-1" in why_text(topic_problem(b"\xed\xa0\x80", 0, 3))
    # only t[start:end] is looked at
    buf = b"+#\x00\xffa/b+#\x00\xff"
    assert topic_problem(buf, 4, 7) is None
    assert topic_problem(memoryview(buf), 4, 7) is None
    assert "MQTT-4.7.3-1" in why_text(topic_problem(buf, 4, 4))
    assert "MQTT-3.3.2-2" in why_text(topic_problem(buf, 4, 8))
    assert "MQTT-1.5.3-1" in why_text(topic_problem(buf, 3, 7))


GOOD_UTF8 = (
    b"",
    b"plain ASCII /+#$",
    b"\x01\x1f\x7f",  # control characters are allowed (SHOULD NOT, not MUST NOT)
    b"\xc2\x80",  # U+0080, smallest 2-byte
    b"\xc3\xa9",  # U+00E9
    b"\xdf\xbf",  # U+07FF, largest 2-byte
    b"\xe0\xa0\x80",  # U+0800, smallest 3-byte
    b"\xe2\x82\xac",  # U+20AC
    b"\xed\x9f\xbf",  # U+D7FF, just below the surrogates
    b"\xee\x80\x80",  # U+E000, just above them
    b"\xef\xbb\xbf",  # U+FEFF, must not be stripped [MQTT-1.5.3-3]
    b"\xef\xbf\xbf",  # U+FFFF (a noncharacter, still well-formed)
    b"\xf0\x90\x80\x80",  # U+10000, smallest 4-byte
    b"\xf0\x9f\x98\x80",  # U+1F600
    b"\xf4\x8f\xbf\xbf",  # U+10FFFF, largest
)

BAD_UTF8 = (
    (b"\x00", "MQTT-1.5.3-2"),
    (b"a\x00b", "MQTT-1.5.3-2"),
    (b"\xc0\x80", "MQTT-1.5.3-1"),  # overlong U+0000
    (b"\xc0\xaf", "MQTT-1.5.3-1"),  # overlong "/"
    (b"\xc1\xbf", "MQTT-1.5.3-1"),  # overlong U+007F
    (b"\xe0\x80\xaf", "MQTT-1.5.3-1"),  # overlong 3-byte
    (b"\xe0\x9f\xbf", "MQTT-1.5.3-1"),  # overlong U+07FF
    (b"\xf0\x80\x80\xaf", "MQTT-1.5.3-1"),  # overlong 4-byte
    (b"\xf0\x8f\xbf\xbf", "MQTT-1.5.3-1"),  # overlong U+FFFF
    (b"\xed\xa0\x80", "MQTT-1.5.3-1"),  # U+D800
    (b"\xed\xaf\xbf", "MQTT-1.5.3-1"),  # U+DBFF
    (b"\xed\xb0\x80", "MQTT-1.5.3-1"),  # U+DC00
    (b"\xed\xbf\xbf", "MQTT-1.5.3-1"),  # U+DFFF
    (b"\xed\xa0\xbd\xed\xb8\x80", "MQTT-1.5.3-1"),  # CESU-8 surrogate pair
    (b"\xf4\x90\x80\x80", "MQTT-1.5.3-1"),  # U+110000
    (b"\xf5\x80\x80\x80", "MQTT-1.5.3-1"),
    (b"\xf8\x88\x80\x80\x80", "MQTT-1.5.3-1"),  # 5-byte form
    (b"\xfe", "MQTT-1.5.3-1"),
    (b"\xff", "MQTT-1.5.3-1"),
    (b"\x80", "MQTT-1.5.3-1"),  # lone continuation
    (b"\xbf", "MQTT-1.5.3-1"),
    (b"a\xc3", "MQTT-1.5.3-1"),  # truncated
    (b"\xe2\x82", "MQTT-1.5.3-1"),
    (b"\xf0\x9f\x98", "MQTT-1.5.3-1"),
    (b"\xc3\x41", "MQTT-1.5.3-1"),  # continuation missing
    (b"\xe2\x41\xac", "MQTT-1.5.3-1"),
    (b"\xe2\x82\x41", "MQTT-1.5.3-1"),
    (b"\xf0\x9f\x98\x41", "MQTT-1.5.3-1"),
    (b"\xc3\xc3\xa9", "MQTT-1.5.3-1"),
)


def test_utf8_problem():
    for b in GOOD_UTF8:
        assert utf8_problem(b, 0, len(b)) is None, b
    for b, rule in BAD_UTF8:
        why = utf8_problem(b, 0, len(b))
        assert why is not None and rule in why_text(why), (b, why)


def test_utf8_problem_respects_the_range():
    # a sequence cut by `end` is truncated even if the buffer holds the rest
    b = b"x\xe2\x82\xacy"
    assert utf8_problem(b, 0, 5) is None
    assert utf8_problem(b, 1, 4) is None
    assert "MQTT-1.5.3-1" in why_text(utf8_problem(b, 0, 3))
    assert "MQTT-1.5.3-1" in why_text(utf8_problem(b, 2, 5))  # starts on a continuation byte
    assert utf8_problem(b"\x00abc\x00", 1, 4) is None
    assert utf8_problem(memoryview(b"\xffok\xff"), 1, 3) is None


def test_utf8_problem_agrees_with_the_utf8_codec():
    # every 1- and 2-byte string, and 3-byte strings starting with each lead byte
    def codec_ok(b):
        try:
            b.decode("utf-8")
        except UnicodeError:
            return False
        return True

    if codec_ok(b"\xed\xa0\x80") or codec_ok(b"\xc0\xaf"):
        return  # a lenient decoder (some MicroPython builds): nothing to compare with

    for x in range(256):
        b = bytes([x])
        assert (utf8_problem(b, 0, 1) is None) == (codec_ok(b) and x != 0), b
    for x in range(0xC0, 0x100):
        for y in range(256):
            b = bytes([x, y])
            ok = codec_ok(b) and y != 0
            assert (utf8_problem(b, 0, 2) is None) == ok, b
    for x in (0xE0, 0xE1, 0xED, 0xEE, 0xEF, 0xF0, 0xF4):
        for y in range(0x80, 0xC0):
            b = bytes([x, y, 0x80])
            if x >= 0xF0:
                b += b"\x80"
            assert (utf8_problem(b, 0, len(b)) is None) == codec_ok(b), b
