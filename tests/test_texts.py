"""The core raises and logs with numbers; errors.py words them. These tests hold the
two sides together: every number a module uses has its text, under the same name, and
the shared protocol numbers (error codes, packet types) agree everywhere.

The numbers are `_T_NAME = const(n)` lines (a const with a leading underscore costs no
RAM on MicroPython, but it is private to its module, so each module states the ones it
uses); errors.py holds each text as a line "number NAME kinds|words" (errors.texts()).
"""

import os
import re

from umqtt_paho import errors, servercodec
from umqtt_paho.errors import explain, text_of, texts
from umqtt_paho.packet import ArgError, MQTTError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.path.join(REPO, "umqtt_paho")
CONST = re.compile(r"^_([A-Z][A-Z0-9_]*) = const\((-?\d+)\)", re.M)


def sources():
    for name in sorted(os.listdir(LIB)):
        if name.endswith(".py"):
            with open(os.path.join(LIB, name), encoding="utf-8") as f:
                yield name, f.read()


def consts(prefix):
    """{(module, NAME): number} of the `_<prefix>NAME = const(n)` lines."""
    out = {}
    for mod, src in sources():
        for name, value in CONST.findall(src):
            if name.startswith(prefix):
                out[(mod, name[len(prefix):])] = int(value)
    return out


def test_every_text_number_used_has_its_text_under_the_same_name():
    used = consts("T_")
    assert len(used) > 60
    table = texts()
    names = {n: entry[0] for n, entry in table.items()}
    assert len(set(names.values())) == len(names), "two texts with one NAME"
    by_name = {}
    for (mod, name), n in used.items():
        assert n in table, "%s: _T_%s = %d has no text in errors.py" % (mod, name, n)
        assert names[n] == name, "%s: _T_%s = %d, but text %d is %s" % (
            mod, name, n, n, names[n])  # fmt: skip
        by_name.setdefault(name, set()).add(n)
    for name, ns in by_name.items():
        assert len(ns) == 1, "_T_%s has different numbers: %s" % (name, ns)


def test_every_text_words_its_arguments():
    for n, (_, kinds, fmt) in texts().items():
        args = []
        for kind in kinds:
            args.append({"r": 1, "t": 3, "h": 0, "f": 0, "c": 5, ".": 7, "s": None}[kind])
        args = [a for a in args if a is not None]
        if n == 7:  # QOS: the value, and which QoS
            args = [3, 1]
        words = text_of(n, *args)
        assert words and "%" not in words.replace("%%", ""), (n, words)


def test_error_codes_agree_with_errors_py():
    for (mod, name), n in consts("ERR_").items():
        assert getattr(errors, "ERR_" + name) == n, (mod, name)


def test_packet_types_agree_with_the_server_codec():
    types = ("CONNECT CONNACK PUBLISH PUBACK PUBREC PUBREL PUBCOMP SUBSCRIBE SUBACK "
             "UNSUBSCRIBE UNSUBACK PINGREQ PINGRESP DISCONNECT").split()  # fmt: skip
    seen = 0
    for (mod, name), n in consts("").items():
        if name in types:
            assert getattr(servercodec, name) == n, (mod, name)
            seen += 1
    assert seen > 20


def test_hook_field_and_qos_names_follow_their_numbers():
    for (mod, name), n in consts("W_").items():
        want = {"FUNCTION": "message function", "BRECONNECT": "breconnect_cb",
                "ACONNECT": "aconnect_cb"}.get(name, name.lower())  # fmt: skip
        assert errors._HOOKS[n] == want, (mod, name)
    for (mod, name), n in consts("F_").items():
        assert errors._FIELDS[n].replace(" ", "_").upper().replace("USER_NAME", "USER") == (
            name
        ), (mod, name)
    for (mod, name), n in consts("Q_").items():
        assert errors._QOS[n].split()[0].upper() == name, (mod, name)


def test_errors_are_worded_when_printed_with_their_numbers_kept():
    e = MQTTError(2, 64, 3)  # ERR_PROTOCOL, CONNACK_LENGTH
    assert e.code == 2 and e.args == (2, 64, 3)
    assert str(e) == "CONNACK remaining length must be 2, not 3 [3.2.1]"
    assert repr(e) == "MQTTError(2): " + str(e)
    assert str(MQTTError(7)) == errors.error_string(7)
    assert str(MQTTError(15, "outbox full")) == "outbox full"  # words given directly
    v = ArgError(7, 3, 1)  # QOS, PUBLISH
    assert isinstance(v, ValueError)
    assert str(v) == "PUBLISH QoS must be 0, 1 or 2, not 3 [MQTT-3.3.1-4]"
    assert explain(v, True).startswith("ValueError: ")
    assert "connection lost while waiting for SUBACK" in str(MQTTError(7, 24, 9, 500))
