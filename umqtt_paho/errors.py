# umqtt_paho error codes and the words for every error and log line.
#
# The core raises and logs with numbers (MQTTError(code, text, args...), ArgError(text,
# args...), client._log(level, text, args...)): this module, imported only when one of
# them is turned into words (str(e), a traceback, on_log, a printed warning) or by an
# application that wants the names below, holds every text. A board short of flash may
# leave it out: errors then print as their numbers.
#
# The ERR_* numbers 0-16 are paho-mqtt's MQTT_ERR_* values, so code written against
# paho reads the same; 17 and up are this library's own.

from .packet import MQTTError, ArgError  # noqa: F401  (their home is the codec)

ERR_SUCCESS = 0
ERR_NOMEM = 1
ERR_PROTOCOL = 2  # the broker sent something the spec does not allow
ERR_INVAL = 3  # the caller passed a bad argument
ERR_NO_CONN = 4  # not connected
ERR_CONN_REFUSED = 5  # CONNACK with a non-zero return code
ERR_NOT_FOUND = 6
ERR_CONN_LOST = 7  # the link closed or failed
ERR_TLS = 8
ERR_PAYLOAD_SIZE = 9  # a packet does not fit the buffer it must go through
ERR_NOT_SUPPORTED = 10
ERR_AUTH = 11
ERR_ACL_DENIED = 12
ERR_UNKNOWN = 13
ERR_ERRNO = 14
ERR_QUEUE_SIZE = 15  # a fixed table (in-flight, inbound QoS 2, outbox) is full
ERR_KEEPALIVE = 16  # no PINGRESP within the keepalive: the link is dead
ERR_TIMEOUT = 17  # an ack did not arrive within command_timeout
ERR_SUBSCRIBE_REFUSED = 18  # SUBACK return code 0x80


def error_string(code):
    """Text for an ERR_* code (as paho-mqtt's error_string)."""
    texts = (
        "No error.",
        "Out of memory.",
        "A network protocol error occurred when communicating with the broker.",
        "Invalid function arguments provided.",
        "The client is not currently connected.",
        "The connection was refused.",
        "Message not found (internal error).",
        "The connection was lost.",
        "A TLS error occurred.",
        "Payload too large.",
        "This feature is not supported.",
        "Authorisation failed.",
        "Access denied by ACL.",
        "Unknown error.",
        "Error defined by errno.",
        "Message queue full.",
        "Client or broker did not communicate in the keepalive interval.",
        "Timed out waiting for the broker.",
        "The broker refused the subscription.",
    )
    if 0 <= code < len(texts):
        return texts[code]
    return "Unknown error."


def connack_string(rc):
    """Text for a CONNACK return code [MQTT-3.2.2.3]; -1 is a network failure."""
    texts = (
        "Connection Accepted.",
        "Connection Refused: unacceptable protocol version.",
        "Connection Refused: identifier rejected.",
        "Connection Refused: broker unavailable.",
        "Connection Refused: bad user name or password.",
        "Connection Refused: not authorised.",
    )
    if 0 <= rc < len(texts):
        return texts[rc]
    if rc == -1:
        return "Connection failed: no CONNACK (network error or timeout)."
    return "Connection Refused: unknown reason."


def type_name(t):
    """The name of an MQTT packet type [2.2.1]."""
    if 0 < t < 15:
        return (
            "CONNECT CONNACK PUBLISH PUBACK PUBREC PUBREL PUBCOMP SUBSCRIBE SUBACK "
            "UNSUBSCRIBE UNSUBACK PINGREQ PINGRESP DISCONNECT"
        ).split()[t - 1]
    return "reserved type %d" % t


# Why a topic name, topic filter or UTF-8 field is refused (packet.py's topic checks)
REASONS = {
    1: "must be at least one character long [MQTT-4.7.3-1]",
    2: "is longer than 65535 bytes [MQTT-4.7.3-3]",
    3: "must not contain the wildcards + or # [MQTT-3.3.2-2]",
    4: "has '#' other than as the whole last level [MQTT-4.7.1-2]",
    5: "has '+' other than as a whole level [MQTT-4.7.1-3]",
    6: "contains U+0000 [MQTT-1.5.3-2]",
    7: "is not well-formed UTF-8 [MQTT-1.5.3-1]",
    8: "ends inside a UTF-8 sequence [MQTT-1.5.3-1]",
}

# The texts, one a line: "number NAME kinds|words". The numbers are the _T_* constants of
# the core modules (tests/test_texts.py checks that each one used is here, under the
# same NAME). Each kind words the next argument: r a topic reason (REASONS), t a
# packet type, h who raised (_HOOKS), f a field (_FIELDS), c a CONNACK code (the code
# itself follows as the next kind), . as it is; s is a word that follows from the
# packet type before it and takes no argument. One string, not a table of objects: it
# costs its length in RAM and nothing more. QOS (7) is worded in text_of.
_TEXTS = """
1 PROTOCOL_LEVEL .|protocol must be MQTTv311 (4) or MQTTv31 (3), not %r
2 EMPTY_ID |an empty client id needs clean_session=True [MQTT-3.1.3-7]
3 EMPTY_ID_31 |MQTT 3.1 needs a non-empty client id (1 to 23 characters)
4 TIMEOUTS |cycle_timeout and command_timeout must be > 0 ms
5 SIZES |buffer sizes must be >= 16 and table sizes >= 1
6 WILL_TOPIC r|will topic %s
7 QOS ..|QoS must be 0, 1 or 2
8 KEEPALIVE |keepalive must be 0..65535 seconds [3.1.2.10]
9 CONN_REFUSED c.|%s (CONNACK %d)
10 RECONNECT_FIRST |reconnect() before connect()
11 TLS_INSECURE |ssl_ctx does not verify the broker's certificate and host name; set client.tls_insecure = True to connect anyway
12 NO_CONNACK .|no CONNACK within command_timeout (%d ms)
13 NOT_CONNACK t|expected CONNACK, got %s [MQTT-3.2.0-1]
14 NO_THREADS |this port has no threads: call client.cycle() in your loop
15 NOT_CONNECTED |not connected
16 CYCLE_IN_LOOP |cycle() while the background loop runs
17 CLOSED |connection closed
18 STALLED ...|broker stalled mid-packet: %d of %d bytes in %d ms
19 OVERSIZE t.|%s of %d bytes is larger than max_packet_size
20 MUST_NOT_SEND t|the broker sent %s, which it must not [2.2.1]
21 NO_PINGRESP .|no PINGRESP within the keepalive (%d s): the link is dead
22 SLOTS_FULL .|all %d in-flight slots are waiting for acks (max_inflight)
23 NESTED_FULL .|in-flight table full inside %d nested callbacks (max_inflight)
24 LOST_WAITING t|connection lost while waiting for %s
25 ACK_TIMEOUT t.|no %s within command_timeout (%d ms)
27 OFFLINE_FULL .|not connected and all %d in-flight slots are in use (max_inflight)
28 SUB_REFUSED .|the broker refused the subscription to %r (SUBACK 0x80)
29 FILTER r|topic filter %s
30 TOPIC r|topic %s
31 HOOK_RAISED h.|%s raised %r
32 RECONNECT_FAILED .|reconnect failed: %r
34 NO_DISCONNECT .|DISCONNECT not sent: %r
35 LOOP_FAILURE .|read loop failure: %r
36 GIVING_UP .|reconnect: giving up after %d attempts
37 DROPPED ..|dropped a PUBLISH of %d bytes: larger than max_packet_size %d
38 UNKNOWN_ACK t.|%s for unknown packet id %d
40 INBOUND_FULL .|more than max_inflight_in=%d QoS 2 messages awaiting PUBREL
41 STALE .|forgot stale QoS 2 id %d
42 NO_FUNCTION |message on a topic with no function and no on_message
43 NOT_SENT ..|PUBLISH %d not sent (%r): resent on reconnect
44 LINK_FAILED .|link failed while waiting for an ack: %r
45 OUTBOX_FIT ..|message of %d bytes (topic and payload) does not fit the outbox (%d bytes)
46 LOG_FULL |flash log full (REFUSE_NEW): message dropped
47 QUEUED_NOT_SENT .|queued PUBLISH not sent: %r
48 LOG_TOO_BIG .|logged message %d does not fit the outbox
49 LOG_RELEASE ..|flash log release(%d) failed: %r
50 BUFFER t..|%s needs %d bytes but the buffer has %d
51 PID .|packet id must be 1..65535, not %r [MQTT-2.3.1-1]
52 FIELD_LONG f|%s is longer than 65535 bytes [1.5.3]
53 FIELD_UTF8 fr|%s %s
54 PASSWORD |a password needs a user name [MQTT-3.1.2-22]
55 DUP_QOS0 |DUP must be 0 for QoS 0 [MQTT-3.3.1-2]
56 PAYLOAD_LEN |payload length must be >= 0
57 PAYLOAD_LARGE |payload too large: PUBLISH may hold at most 268435455 bytes [2.2.3]
58 ACK_TYPE |encode_ack is for PUBACK, PUBREC, PUBREL, PUBCOMP and UNSUBACK
59 NO_FILTERS ts|%s needs at least one topic filter [%s]
60 QOS3 |PUBLISH with QoS 3 [MQTT-3.3.1-4]
61 RESERVED_TYPE .|reserved packet type %d [2.2.1]
62 FLAGS ts.|%s flags must be %s, not %d [MQTT-2.2.2-1]
63 LENGTH_LONG |remaining length longer than 4 bytes [2.2.3]
64 CONNACK_LENGTH .|CONNACK remaining length must be 2, not %d [3.2.1]
65 CONNACK_FLAGS .|CONNACK reserved flag bits set: %d [3.2.2.1]
66 CONNACK_RC .|CONNACK return code %d is reserved [3.2.2.3]
67 CONNACK_PRESENT |CONNACK refused with session present set [MQTT-3.2.2-4]
68 ACK_LENGTH t.s|%s remaining length must be 2, not %d [%s]
69 PID_ZERO t|%s with packet id 0 [MQTT-2.3.1-1]
70 SUBACK_EMPTY |SUBACK without a return code [3.9.3]
71 SUBACK_RC .|SUBACK return code %d is reserved [MQTT-3.9.3-2]
72 PINGRESP_LENGTH .|PINGRESP remaining length must be 0, not %d [3.13]
73 PUBLISH_DUP |PUBLISH with DUP set at QoS 0 [MQTT-3.3.1-2]
74 PUBLISH_SHORT |PUBLISH too short for its topic length [3.3.2]
75 PUBLISH_PAST |PUBLISH topic and packet id run past the remaining length [3.3.2]
76 PUBLISH_TOPIC r|PUBLISH topic %s
77 TLS_FAILED ..|TLS handshake with %s failed: %s
78 STALLED_FOR .|the link stalled: no progress for %d ms (command_timeout)
"""

_HOOKS = (
    "breconnect_cb",
    "aconnect_cb",
    "on_subscribe",
    "on_unsubscribe",
    "on_publish",
    "message function",
    "loop_failure",
)
_FIELDS = ("client id", "user name", "password", "will payload")
_QOS = ("", "PUBLISH [MQTT-3.3.1-4]", "will [MQTT-3.1.2-14]", "subscription [MQTT-3.8.3-4]")


def _derived(text, t):
    # Kind s: a word that follows from the packet type t.
    if text == 59:  # NO_FILTERS: the rule
        return "MQTT-3.8.3-3" if t == 8 else "MQTT-3.10.3-2"
    if text == 62:  # FLAGS: what they must be
        return "0010" if t in (6, 8, 10) else "0000"
    return "3.11.1" if t == 11 else "3.%d.1" % t  # ACK_LENGTH: PUBACK 3.4.1 .. PUBCOMP 3.7.1


def _entry(n):
    # (NAME, kinds, words) of text number n, or None
    i = _TEXTS.find("\n%d " % n)
    if i < 0:
        return None
    line = _TEXTS[i + 1 : _TEXTS.find("\n", i + 1)]
    head, words = line.split("|", 1)
    parts = head.split(" ")
    return parts[1], parts[2], words


def texts():
    """{number: (NAME, kinds, words)} of every text (for tests and tools)."""
    out = {}
    for line in _TEXTS.strip().split("\n"):
        n = int(line.split(" ", 1)[0])
        out[n] = _entry(n)
    return out


def text_of(text, *args):
    """The words of text number `text` with its arguments."""
    if isinstance(text, str):
        return text  # an error made with words (an application's, or a layer's)
    entry = _entry(text)
    if entry is None:
        return "text %r %r" % (text, [x for x in args if x is not None])
    _, kinds, fmt = entry
    if text == 7:  # QOS: which one, and the rule it breaks
        what = _QOS[args[1]] if len(args) > 1 and args[1] else ""
        if not what:
            return "qos must be 0, 1 or 2, not %r" % (args[0],)
        what, rule = what.split(" ")
        return "%s QoS must be 0, 1 or 2, not %r %s" % (what, args[0], rule)
    out = []
    t = None
    k = 0
    for kind in kinds:
        if kind == "s":
            out.append(_derived(text, t))
            continue
        v = args[k] if k < len(args) else None
        if kind == "c":
            out.append(connack_string(v))  # and the code itself, next
            continue
        k += 1
        if kind == "r":
            v = REASONS.get(v or 0, "is not valid")
        elif kind == "t":
            t = v
            v = type_name(v)
        elif kind == "h" and isinstance(v, int):
            v = _HOOKS[v]
        elif kind == "f" and isinstance(v, int):
            v = _FIELDS[v]
        out.append(v)
    return fmt % tuple(out)


def explain(e, with_name=False):
    """The words for a MQTTError or ArgError (with_name: for a traceback or repr)."""
    args = e.args
    if isinstance(e, MQTTError):
        code = args[0] if args else ERR_UNKNOWN
        words = text_of(*args[1:]) if len(args) > 1 else error_string(code)
        if with_name:
            return "MQTTError(%d): %s" % (code, words)
        return words
    words = text_of(*args) if args else ""
    return "ValueError: " + words if with_name else words
