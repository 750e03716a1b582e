"""Behavioural parity: the same scenario through the real paho-mqtt and umqtt_paho.paho.

One script of steps (SCENARIO) runs twice against the same mosquitto: once with the
paho-mqtt package from PyPI (its 1.x callbacks: paho-mqtt 2.x is given
CallbackAPIVersion.VERSION1) and once with umqtt_paho.paho, each under its own topic
prefix and client ids. Every callback is recorded in a normalised form: names and key
arguments, topics without the prefix, message ids replaced by the call that returned
them ("m3": the third publish/subscribe/unsubscribe call). After each step the runner
waits for the events that step must cause, then compares the two runs step by step.
Within a step the events are compared as a sorted list: which thread fires a callback
first (e.g. on_publish of a QoS 0 message, or a PUBACK against the delivery of the same
message) is scheduling, not behaviour. The order of steps is preserved.

Where the two must differ, the step is listed in DIFFERENCES with what each does and
why (README section 10 lists the same); the test checks that each side does exactly
that, so a difference can neither hide nor silently go away.
"""

import threading
import time
import warnings

import paho.mqtt.client as real
import pytest

from livehelpers import WAIT

from umqtt_paho import paho as ours


def new_client(impl, client_id, **kw):
    if impl == "paho-mqtt":
        if hasattr(real, "CallbackAPIVersion"):  # paho-mqtt 2.x
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return real.Client(real.CallbackAPIVersion.VERSION1, client_id, **kw)
        return real.Client(client_id, **kw)
    return ours.Client(client_id, **kw)


class Run:
    """One run of the scenario with one implementation."""

    def __init__(self, impl, broker):
        self.impl = impl
        self.broker = broker
        self.p = "par-%s/" % ("paho" if impl == "paho-mqtt" else "umqtt")
        self.ev = []
        self.calls = []  # (kind, mid) of every publish/subscribe/unsubscribe, in order
        self.cond = threading.Condition()
        self.clients = []

    def client(self, name, **kw):
        c = new_client(self.impl, self.p.replace("/", "-") + name, **kw)
        self.clients.append(c)
        c.on_connect = lambda cl, u, flags, rc: self.add(
            "connect", name, flags["session present"], int(rc)
        )
        c.on_disconnect = lambda cl, u, rc: self.add("disconnect", name, int(rc) != 0)
        c.on_subscribe = lambda cl, u, mid, g: self.add(
            "subscribe", name, (name, "subscribe", mid), tuple(g)
        )
        c.on_unsubscribe = lambda cl, u, mid: self.add(
            "unsubscribe", name, (name, "unsubscribe", mid)
        )
        c.on_publish = lambda cl, u, mid: self.add("publish", name, (name, "publish", mid))
        c._parity_name = name
        c.on_message = lambda cl, u, m: self.message("on_message", name, m)
        return c

    def message(self, via, name, m):
        self.add(
            "message",
            name,
            via,
            m.topic[len(self.p) :],
            bytes(m.payload),
            m.qos,
            bool(m.retain),
            m.mid != 0,
        )

    def callback(self, via):
        return lambda cl, u, m: self.message(via, "A", m)

    def add(self, *e):
        with self.cond:
            self.ev.append(e)
            self.cond.notify_all()

    def call(self, c, kind, result):
        rc, mid = result
        self.calls.append((c._parity_name, kind, mid, rc))
        return rc, mid

    # the three calls that return a mid, recorded
    def publish(self, c, topic, payload, qos=0, retain=False):
        return self.call(c, "publish", tuple(c.publish(self.p + topic, payload, qos, retain)))

    def subscribe(self, c, *args):
        return self.call(c, "subscribe", c.subscribe(*args))

    def unsubscribe(self, c, topic):
        return self.call(c, "unsubscribe", c.unsubscribe(topic))

    def wait(self, counts, timeout=WAIT):
        """Wait until the events of this step (counts: {name: n}) have come."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                have = {}
                for e in self.ev:
                    have[e[0]] = have.get(e[0], 0) + 1
                if all(have.get(k, 0) >= n for k, n in counts.items()):
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
        time.sleep(0.1)  # anything extra this step caused

    def take(self):
        """This step's events, normalised and sorted; mids become call labels."""
        with self.cond:
            ev, self.ev = self.ev, []
        # A mid names the latest call of that client and kind that returned it (mids
        # are per client; a later call may reuse one, see README section 10).
        labels = {}
        for i, (name, kind, mid, rc) in enumerate(self.calls):
            if mid is not None:
                labels[(name, kind, mid)] = "m%d" % (i + 1)
        out = []
        for e in ev:
            out.append(tuple(labels.get(x, x) if isinstance(x, tuple) else x for x in e))
        return sorted(out, key=repr)

    def close(self):
        for c in self.clients:
            try:
                c.loop_stop()
            except Exception:
                pass


def t(run, topic):
    return run.p + topic


# ---- the scenario --------------------------------------------------------------------
# (step, action(run, state), events the step waits for)


def s_connect(r, s):
    a = s["A"] = r.client("A")
    assert a.connect(r.broker.host, r.broker.port, 30) == 0
    a.loop_start()


def s_sub_str(r, s):
    assert r.subscribe(s["A"], t(r, "s/one"), 1)[0] == 0


def s_sub_tuple(r, s):
    assert r.subscribe(s["A"], (t(r, "s/two"), 2))[0] == 0


def s_sub_list(r, s):
    rc, mid = r.subscribe(
        s["A"], [(t(r, "s/three"), 0), (t(r, "s/+/four"), 1), (t(r, "will/#"), 2)]
    )
    assert rc == 0


def s_callback_add(r, s):
    s["A"].message_callback_add(t(r, "s/two"), r.callback("callback_two"))
    s["A"].message_callback_add(t(r, "s/+/four"), r.callback("callback_four"))


def s_pub0(r, s):
    r.publish(s["A"], "s/one", "zero", 0)


def s_pub1(r, s):
    r.publish(s["A"], "s/two", "one", 1)


def s_pub2(r, s):
    r.publish(s["A"], "s/three", "two", 2)


def s_pub2_wild(r, s):
    r.publish(s["A"], "s/x/four", b"\x00\x01", 2)


def s_pub_retained(r, s):
    r.publish(s["A"], "r/keep", "kept", 1, True)


def s_sub_retained(r, s):
    r.subscribe(s["A"], t(r, "r/#"), 2)


def s_pub_retained_live(r, s):
    r.publish(s["A"], "r/live", "live", 2, True)


def s_clear_retained(r, s):
    r.publish(s["A"], "r/keep", None, 1, True)  # an empty retained message clears it
    r.publish(s["A"], "r/live", "", 1, True)


def s_unsub(r, s):
    assert r.unsubscribe(s["A"], t(r, "s/one"))[0] == 0


def s_after_unsub(r, s):
    r.publish(s["A"], "s/one", "unheard", 1)
    r.publish(s["A"], "s/three", "marker", 1)


def s_callback_remove(r, s):
    s["A"].message_callback_remove(t(r, "s/two"))
    r.publish(s["A"], "s/two", "to on_message", 1)


def s_unsub_list(r, s):
    r.unsubscribe(s["A"], [t(r, "s/two"), t(r, "s/three"), t(r, "r/#")])


def s_will(r, s):
    w = r.client("W")
    w.will_set(t(r, "will/w"), "gone", 1, False)
    w.connect(r.broker.host, r.broker.port, 30)
    deadline = time.monotonic() + WAIT
    while not any(e[0] == "connect" and e[1] == "W" for e in r.ev):
        assert time.monotonic() < deadline
        w.loop(0.05)
    w.socket().close()  # abrupt: no DISCONNECT, so the broker publishes the will


def s_clean_will_client(r, s):
    w = r.client("V")
    w.will_set(t(r, "will/v"), "never", 1, False)
    w.connect(r.broker.host, r.broker.port, 30)
    w.loop(0.05)
    w.loop(0.05)
    w.disconnect()


def s_disconnect(r, s):
    # (not asserting paho-mqtt's rc: from another thread than its loop's, 2.2 may
    # return MQTT_ERR_NO_CONN when its loop thread wrote the DISCONNECT first)
    s["A"].disconnect()
    s["A"].loop_stop()


def s_offline_publish(r, s):
    b = s["B"] = r.client("B")
    rc, mid = r.publish(b, "s/x/four", "while offline", 1)
    assert rc == 4  # MQTT_ERR_NO_CONN, both
    b.connect_async(r.broker.host, r.broker.port, 30)
    b.loop_start()


def s_offline_done(r, s):
    s["B"].disconnect()
    s["B"].loop_stop()


SCENARIO = [
    ("connect", s_connect, {"connect": 1}),
    ("subscribe str", s_sub_str, {"subscribe": 1}),
    ("subscribe tuple", s_sub_tuple, {"subscribe": 1}),
    ("subscribe list (one SUBSCRIBE)", s_sub_list, {"subscribe": 1}),
    ("message_callback_add", s_callback_add, {}),
    ("publish QoS 0", s_pub0, {"publish": 1, "message": 1}),
    ("publish QoS 1 to a per-topic callback", s_pub1, {"publish": 1, "message": 1}),
    ("publish QoS 2 (granted 0)", s_pub2, {"publish": 1, "message": 1}),
    ("publish QoS 2 on a wildcard (granted 1)", s_pub2_wild, {"publish": 1, "message": 1}),
    ("publish retained, no subscriber", s_pub_retained, {"publish": 1}),
    ("subscribe: the retained message", s_sub_retained, {"subscribe": 1, "message": 1}),
    ("publish retained to a subscriber", s_pub_retained_live, {"publish": 1, "message": 1}),
    ("clear retained", s_clear_retained, {"publish": 2, "message": 2}),
    ("unsubscribe str", s_unsub, {"unsubscribe": 1}),
    ("publish after unsubscribe", s_after_unsub, {"publish": 2, "message": 1}),
    ("message_callback_remove", s_callback_remove, {"publish": 1, "message": 1}),
    ("unsubscribe list (one UNSUBSCRIBE)", s_unsub_list, {"unsubscribe": 1}),
    ("will on abrupt close", s_will, {"connect": 1, "message": 1}),
    ("no will after disconnect()", s_clean_will_client, {"connect": 1, "disconnect": 1}),
    (
        "publish QoS 1 while offline, then connect",
        s_offline_publish,
        {"connect": 1, "publish": 1, "message": 1},
    ),
    ("disconnect the offline publisher", s_offline_done, {"disconnect": 1}),
    ("disconnect", s_disconnect, {"disconnect": 1}),
]

# Steps whose outcomes must differ: (paho-mqtt's events, umqtt_paho's events, reason).
# Also in README section 10.
DIFFERENCES = {}  # none left: a QoS 1/2 publish while offline is kept by both now


@pytest.fixture(scope="module")
def runs():
    from brokers import Mosquitto

    with Mosquitto() as broker:
        results = {}
        for impl in ("paho-mqtt", "umqtt_paho"):
            r = Run(impl, broker)
            state = {}
            steps = []
            try:
                for name, action, expect in SCENARIO:
                    action(r, state)
                    r.wait(expect, timeout=1.0 if name in DIFFERENCES else WAIT)
                    steps.append((name, r.take()))
            finally:
                r.close()
            results[impl] = (steps, r.calls)
        results["log"] = broker.log_text()
        yield results


@pytest.mark.parametrize("index", range(len(SCENARIO)), ids=[s[0] for s in SCENARIO])
def test_step(runs, index):
    name = SCENARIO[index][0]
    theirs = runs["paho-mqtt"][0][index]
    mine = runs["umqtt_paho"][0][index]
    assert theirs[0] == mine[0] == name
    if name in DIFFERENCES:
        want_theirs, want_mine, reason = DIFFERENCES[name]
        assert reason
        assert theirs[1] == sorted(want_theirs, key=repr), "paho-mqtt changed?"
        assert mine[1] == sorted(want_mine, key=repr), "the documented difference changed"
    else:
        assert mine[1] == theirs[1]


def test_call_results_match(runs):
    # the rc of every publish/subscribe/unsubscribe call, in order
    assert [(n, k, rc) for n, k, mid, rc in runs["umqtt_paho"][1]] == [
        (n, k, rc) for n, k, mid, rc in runs["paho-mqtt"][1]
    ]


def test_expected_events_seen(runs):
    # The scenario itself is right: paho-mqtt produced what each step waits for.
    for (name, action, expect), (_, events) in zip(SCENARIO, runs["paho-mqtt"][0]):
        for kind, n in expect.items():
            assert len([e for e in events if e[0] == kind]) == n, (name, events)


def test_one_packet_per_list_call(runs):
    log = runs["log"]
    for prefix in ("par-paho-", "par-umqtt-"):
        cid = prefix + "A"
        assert log.count("Received SUBSCRIBE from " + cid) == 4
        assert log.count("Received UNSUBSCRIBE from " + cid) == 2


# ---- argument checks -----------------------------------------------------------------


def _cases():
    from test_paho_api import value_error_cases

    return value_error_cases()


# Calls where paho-mqtt does not raise and umqtt_paho does: (call, reason).
STRICTER = {
    "connect bind_address": (
        lambda c: c.connect("localhost", 1, 60, "127.0.0.1"),
        "binding to a local address is not supported by the ports",
    ),
    "message_callback_add a/#/b": (
        lambda c: c.message_callback_add("a/#/b", print),
        "a filter MQTT forbids can never match: a mistake to report at once",
    ),
}

# Cases of value_error_cases() where paho-mqtt raises another exception: (paho's, reason)
OTHER_ERROR = {
    "subscribe list int topic": (
        "TypeError",
        "paho calls len() on the topic before its "
        "type check; its documentation promises ValueError",
    ),
}


@pytest.mark.parametrize("what,call", _cases(), ids=[c[0] for c in _cases()])
def test_same_value_errors(what, call):
    assert what not in OTHER_ERROR or OTHER_ERROR[what][1]

    def outcome(impl):
        try:
            call(new_client(impl, "ve"))
        except Exception as e:
            return type(e).__name__
        return "no error"

    assert outcome("paho-mqtt") == OTHER_ERROR.get(what, ("ValueError",))[0]
    assert outcome("umqtt_paho") == "ValueError"


@pytest.mark.parametrize("what", sorted(STRICTER))
def test_stricter_than_paho(what):
    call, reason = STRICTER[what]
    assert reason
    try:
        call(new_client("paho-mqtt", "strict"))
    except ValueError:
        pytest.fail("paho-mqtt raises too now: drop the row")
    except OSError:
        pass  # connect to port 1: refused, but the bind_address was accepted
    with pytest.raises(ValueError):
        call(new_client("umqtt_paho", "strict"))


def test_same_results_when_not_connected():
    def results(impl):
        c = new_client(impl, "nc")
        info = c.publish("a/b", "x", 1)
        return [
            int(info.rc),
            info.mid is not None,
            c.subscribe("a/b") == (4, None),
            c.subscribe([("a/b", 1), ("c", 2)]) == (4, None),
            c.unsubscribe(["a/b"]) == (4, None),
            int(c.disconnect()),
            int(c.loop(0.01)),
            c.want_write(),
            c.socket() is None,
        ]

    assert results("umqtt_paho") == results("paho-mqtt")
