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


# Why a topic name, topic filter or UTF-8 field is refused (topic.py's reasons)
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

# The texts, by number: (format, kinds). Each kind words the next argument: r a topic
# reason (REASONS), t a packet type, h who raised (_HOOKS), f a field (_FIELDS), c a
# CONNACK code (the code itself follows as the next kind), . as it is; s is a word that
# follows from the packet type before it and takes no argument. The numbers are the _T_*
# constants of the core modules; tests/test_texts.py checks that every one used is here,
# under the same name (the # NAME after it).
TEXTS = {
    1: ("protocol must be MQTTv311 (4) or MQTTv31 (3), not %r", "."),  # PROTOCOL_LEVEL
    2: ("an empty client id needs clean_session=True [MQTT-3.1.3-7]", ""),  # EMPTY_ID
    3: ("MQTT 3.1 needs a non-empty client id (1 to 23 characters)", ""),  # EMPTY_ID_31
    4: ("cycle_timeout and command_timeout must be > 0 ms", ""),  # TIMEOUTS
    5: ("buffer sizes must be >= 16 and table sizes >= 1", ""),  # SIZES
    6: ("will topic %s", "r"),  # WILL_TOPIC
    # QOS is worded in text_of: which QoS (_QOS) decides the words and the rule
    7: ("QoS must be 0, 1 or 2", ".."),  # QOS
    8: ("keepalive must be 0..65535 seconds [3.1.2.10]", ""),  # KEEPALIVE
    9: ("%s (CONNACK %d)", "c."),  # CONN_REFUSED
    10: ("reconnect() before connect()", ""),  # RECONNECT_FIRST
    11: (
        "ssl_ctx does not verify the broker's certificate and host name; "
        "set client.tls_insecure = True to connect anyway",
        "",
    ),  # TLS_INSECURE
    12: ("no CONNACK within command_timeout (%d ms)", "."),  # NO_CONNACK
    13: ("expected CONNACK, got %s [MQTT-3.2.0-1]", "t"),  # NOT_CONNACK
    14: ("this port has no threads: call client.cycle() in your loop", ""),  # NO_THREADS
    15: ("not connected", ""),  # NOT_CONNECTED
    16: ("cycle() while the background loop runs", ""),  # CYCLE_IN_LOOP
    17: ("connection closed", ""),  # CLOSED
    18: ("broker stalled mid-packet: %d of %d bytes in %d ms", "..."),  # STALLED
    19: ("%s of %d bytes is larger than max_packet_size", "t."),  # OVERSIZE
    20: ("the broker sent %s, which it must not [2.2.1]", "t"),  # MUST_NOT_SEND
    21: ("no PINGRESP within the keepalive (%d s): the link is dead", "."),  # NO_PINGRESP
    22: ("all %d in-flight slots are waiting for acks (max_inflight)", "."),  # SLOTS_FULL
    23: ("in-flight table full inside %d nested callbacks (max_inflight)", "."),  # NESTED_FULL
    24: ("connection lost while waiting for %s", "t"),  # LOST_WAITING
    25: ("no %s within command_timeout (%d ms)", "t."),  # ACK_TIMEOUT
    27: (
        "not connected and all %d in-flight slots are in use (max_inflight)",
        ".",
    ),  # OFFLINE_FULL
    28: ("the broker refused the subscription to %r (SUBACK 0x80)", "."),  # SUB_REFUSED
    29: ("topic filter %s", "r"),  # FILTER
    30: ("topic %s", "r"),  # TOPIC
    31: ("%s raised %r", "h."),  # HOOK_RAISED
    32: ("reconnect failed: %r", "."),  # RECONNECT_FAILED
    34: ("DISCONNECT not sent: %r", "."),  # NO_DISCONNECT
    35: ("read loop failure: %r", "."),  # LOOP_FAILURE
    36: ("reconnect: giving up after %d attempts", "."),  # GIVING_UP
    37: ("dropped a PUBLISH of %d bytes: larger than max_packet_size %d", ".."),  # DROPPED
    38: ("%s for unknown packet id %d", "t."),  # UNKNOWN_ACK
    40: (
        "more than max_inflight_in=%d QoS 2 messages awaiting PUBREL",
        ".",
    ),  # INBOUND_FULL
    41: ("forgot stale QoS 2 id %d", "."),  # STALE
    42: ("message on a topic with no function and no on_message", ""),  # NO_FUNCTION
    43: ("PUBLISH %d not sent (%r): resent on reconnect", ".."),  # NOT_SENT
    44: ("link failed while waiting for an ack: %r", "."),  # LINK_FAILED
    45: (
        "message of %d bytes (topic and payload) does not fit the outbox (%d bytes)",
        "..",
    ),  # OUTBOX_FIT
    46: ("flash log full (REFUSE_NEW): message dropped", ""),  # LOG_FULL
    47: ("queued PUBLISH not sent: %r", "."),  # QUEUED_NOT_SENT
    48: ("logged message %d does not fit the outbox", "."),  # LOG_TOO_BIG
    49: ("flash log release(%d) failed: %r", ".."),  # LOG_RELEASE
    50: ("%s needs %d bytes but the buffer has %d", "t.."),  # BUFFER
    51: ("packet id must be 1..65535, not %r [MQTT-2.3.1-1]", "."),  # PID
    52: ("%s is longer than 65535 bytes [1.5.3]", "f"),  # FIELD_LONG
    53: ("%s %s", "fr"),  # FIELD_UTF8
    54: ("a password needs a user name [MQTT-3.1.2-22]", ""),  # PASSWORD
    55: ("DUP must be 0 for QoS 0 [MQTT-3.3.1-2]", ""),  # DUP_QOS0
    56: ("payload length must be >= 0", ""),  # PAYLOAD_LEN
    57: (
        "payload too large: PUBLISH may hold at most 268435455 bytes [2.2.3]",
        "",
    ),  # PAYLOAD_LARGE
    58: ("encode_ack is for PUBACK, PUBREC, PUBREL, PUBCOMP and UNSUBACK", ""),  # ACK_TYPE
    59: ("%s needs at least one topic filter [%s]", "ts"),  # NO_FILTERS
    60: ("PUBLISH with QoS 3 [MQTT-3.3.1-4]", ""),  # QOS3
    61: ("reserved packet type %d [2.2.1]", "."),  # RESERVED_TYPE
    62: ("%s flags must be %s, not %d [MQTT-2.2.2-1]", "ts."),  # FLAGS
    63: ("remaining length longer than 4 bytes [2.2.3]", ""),  # LENGTH_LONG
    64: ("CONNACK remaining length must be 2, not %d [3.2.1]", "."),  # CONNACK_LENGTH
    65: ("CONNACK reserved flag bits set: %d [3.2.2.1]", "."),  # CONNACK_FLAGS
    66: ("CONNACK return code %d is reserved [3.2.2.3]", "."),  # CONNACK_RC
    67: ("CONNACK refused with session present set [MQTT-3.2.2-4]", ""),  # CONNACK_PRESENT
    68: ("%s remaining length must be 2, not %d [%s]", "t.s"),  # ACK_LENGTH
    69: ("%s with packet id 0 [MQTT-2.3.1-1]", "t"),  # PID_ZERO
    70: ("SUBACK without a return code [3.9.3]", ""),  # SUBACK_EMPTY
    71: ("SUBACK return code %d is reserved [MQTT-3.9.3-2]", "."),  # SUBACK_RC
    72: ("PINGRESP remaining length must be 0, not %d [3.13]", "."),  # PINGRESP_LENGTH
    73: ("PUBLISH with DUP set at QoS 0 [MQTT-3.3.1-2]", ""),  # PUBLISH_DUP
    74: ("PUBLISH too short for its topic length [3.3.2]", ""),  # PUBLISH_SHORT
    75: (
        "PUBLISH topic and packet id run past the remaining length [3.3.2]",
        "",
    ),  # PUBLISH_PAST
    76: ("PUBLISH topic %s", "r"),  # PUBLISH_TOPIC
}

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


def text_of(text, *args):
    """The words of text number `text` with its arguments."""
    if isinstance(text, str):
        return text  # an error made with words (an application's, or a layer's)
    entry = TEXTS.get(text)
    if entry is None:
        return "text %r %r" % (text, [x for x in args if x is not None])
    fmt, kinds = entry
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
