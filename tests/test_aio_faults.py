"""umqtt_paho.aio never loses a message: the asyncio driver against real mosquitto
through the fault-injecting proxy of test_faults.py (tests/faultproxy.py), on CPython's
asyncio; tests/mp_scripts/aio_faults.py runs the end-to-end count on MicroPython 1.29.

- test_aio_end_to_end_*: 1,000 QoS 1 and 1,000 QoS 2 numbered messages from ten
  publishing tasks through a proxy that cuts the link dozens of times (the same plans
  and cuts as the synchronous client's proof: mid-packet, truncated, garbage, stalls,
  delays), with an aio subscriber behind its own faulty proxy. A publish() that raised
  ERR_TIMEOUT or ERR_CONN_LOST was accepted (the session resends it: the application
  must not); one that raised anything else was not, and is retried. Required: 0 QoS 1
  lost, 0 QoS 2 lost or duplicated.
- A cut at one exact point of a QoS 1/2 flow, checked in mosquitto's log and in the
  bytes the proxy saw: resend with DUP and the same id, PUBREL resent (never the
  message), a subscriber's QoS 2 redelivery not delivered twice, a subscription renewed
  after a reconnect that found no session.
- The reconnection policy: backoff with jitter against an unreachable broker,
  breconnect_cb / aconnect_cb coroutines, a QoS 1 message published during the outage
  delivered after it, max_attempts; a stalled link found by the keepalive.
"""

import asyncio
import time
from collections import Counter

import pytest

from faultproxy import DOWN, UP, FaultProxy
from test_faults import (
    E2E_SEED,
    PUB_PLAN,
    SUB_PLAN,
    broker_republished_after_pubrel,
    log_publishes,
    parse_publish,
    qos2_duplicates,
)
from umqtt_paho import errors as E
from umqtt_paho import servercodec as pk
from umqtt_paho.aio import Client
from umqtt_paho.packet import MQTTError

pytestmark = pytest.mark.timeout(120)

HOST = "127.0.0.1"
N = 1000  # messages per QoS
TASKS = 10  # publishing tasks at once


def make(client_id, **kw):
    kw.setdefault("command_timeout", 3000)
    c = Client(client_id, **kw)
    c.backoff_ms = 50  # reconnect fast in tests (the default starts at 1 s)
    c.backoff_cap_ms = 500
    return c


async def wait_for(cond, timeout):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.02)
    return True


async def connect_retrying(client, port, keepalive=5, timeout=10.0):
    end = time.monotonic() + timeout
    while True:
        try:
            return await client.connect(HOST, keepalive, port=port)
        except (MQTTError, OSError):
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.05)


def run(coro, timeout=100):
    return asyncio.run(asyncio.wait_for(coro, timeout))


# ======================================================================================
# The end-to-end count
# ======================================================================================


def test_aio_end_to_end_no_message_lost_through_faulty_links(mosquitto):
    t_start = time.monotonic()
    pub_proxy = FaultProxy(
        mosquitto.port, seed=E2E_SEED, plan=PUB_PLAN, armed=False, record=True, name="aio-pub"
    ).start()
    sub_proxy = FaultProxy(
        mosquitto.port, seed=E2E_SEED + 1, plan=SUB_PLAN, armed=False, record=True, name="aio-sub"
    ).start()
    got = {1: Counter(), 2: Counter()}
    odd = []
    accepted = Counter()
    raised = Counter()

    def on_msg(client, payload, topic):
        qos = 1 if topic == "aio-e2e/q1" else 2
        try:
            prefix, num = payload.split(b"-")
            assert prefix == b"q%d" % qos
            got[qos][int(num)] += 1
        except Exception:
            odd.append((topic, payload))

    async def publisher(pub, k):
        for i in range(k, N, TASKS):
            for qos in (1, 2):
                while True:
                    try:
                        await pub.publish(b"aio-e2e/q%d" % qos, b"q%d-%d" % (qos, i), qos)
                    except MQTTError as e:
                        raised[(qos, e.code)] += 1
                        if e.code not in (E.ERR_TIMEOUT, E.ERR_CONN_LOST):
                            await asyncio.sleep(0.002)
                            continue  # not accepted: the application tries again
                    accepted[qos] += 1  # accepted: acked, or the session resends it
                    break

    async def main():
        sub = make("aio-e2e-sub", clean_session=False, max_inflight_in=4096)
        pub = make("aio-e2e-pub", clean_session=False)
        await sub.subscribe("aio-e2e/q1", on_msg, 1)
        await sub.subscribe("aio-e2e/q2", on_msg, 2)
        try:
            await connect_retrying(sub, sub_proxy.port)
            assert [h[3] for h in sub._handlers] == [1, 2]
            await connect_retrying(pub, pub_proxy.port)
            pub_proxy.arm()
            sub_proxy.arm()
            await asyncio.gather(*[publisher(pub, k) for k in range(TASKS)])
            t_published = time.monotonic()
            await wait_for(lambda: pub.pending() == 0, 30)  # faults still on
            pending = pub.pending()
            await wait_for(lambda: len(got[1]) >= N and len(got[2]) >= N, 30)
            await asyncio.sleep(0.5)  # late duplicates
            pub_proxy.disarm()
            sub_proxy.disarm()
            return pending, t_published, pub.last_error, sub.last_error
        finally:
            await pub.disconnect()
            await sub.disconnect()

    try:
        pending, t_published, pub_err, sub_err = run(main(), timeout=110)
    finally:
        pub_proxy.close()
        sub_proxy.close()
    lost = {q: N - len([k for k in got[q] if 0 <= k < N]) for q in (1, 2)}
    dups = {q: sum(v - 1 for v in got[q].values() if v > 1) for q in (1, 2)}
    sent = [
        parse_publish(u) for d, u, _ in pub_proxy.forwarded if d == UP and u[0] >> 4 == pk.PUBLISH
    ]
    sent = [s for s in sent if s is not None]
    dup_sent = sum(1 for s in sent if s[1])
    wrong_qos = [s for s in sent if s[3] != "aio-e2e/q%d" % s[0]]
    # QoS 2 duplicates mosquitto causes itself (a PUBLISH re-sent after its own PUBREL)
    # are not the client's.
    bad_mids = broker_republished_after_pubrel(mosquitto.log_text(), "aio-e2e-sub")
    client_dup2, broker_dup2 = qos2_duplicates(
        got[2], sub_proxy.forwarded, mosquitto.log_text(), "aio-e2e-sub"
    )
    report = "\n".join([
        "aio end-to-end through faulty links (seed %d), %.1f s (publishing %.1f s)"
        % (E2E_SEED, time.monotonic() - t_start, t_published - t_start),
        "  QoS 1: sent %d accepted %d lost %d duplicated %d" % (N, accepted[1], lost[1], dups[1]),
        "  QoS 2: sent %d accepted %d lost %d duplicated %d" % (N, accepted[2], lost[2], dups[2]),
        "  publisher: pending at end %d, raised %s, PUBLISH resent with DUP %d, last error %r"
        % (pending, dict(raised), dup_sent, pub_err),
        "  subscriber: last error %r; QoS 2 duplicates caused by the broker (a PUBLISH "
        "re-sent after its PUBREL, %d ids): %d, left to the client: %d"
        % (sub_err, len(bad_mids), broker_dup2, client_dup2),
        "  " + pub_proxy.summary(),
        "  " + sub_proxy.summary(),
        "  cuts: publisher link %d, subscriber link %d" % (pub_proxy.cuts, sub_proxy.cuts),
    ])
    print("\n" + report)
    problems = []
    if accepted != {1: N, 2: N}:
        problems.append("not every message was accepted: %r" % accepted)
    if pub_proxy.cuts < 20:
        problems.append("too few cuts for the proof: %d" % pub_proxy.cuts)
    if pending:
        problems.append("%d accepted messages never acknowledged" % pending)
    if lost != {1: 0, 2: 0}:
        problems.append("LOST: %r" % lost)
    if client_dup2:
        problems.append("QoS 2 DUPLICATED by the client: %d" % client_dup2)
    if odd:
        problems.append("corrupt payloads delivered: %r" % odd[:5])
    if wrong_qos:
        problems.append("PUBLISHes sent at another QoS than published: %d" % len(wrong_qos))
    assert not problems, "\n".join(problems) + "\n" + report


# ======================================================================================
# One cut at an exact point
# ======================================================================================


@pytest.mark.parametrize("qos", [1, 2])
def test_cut_before_the_ack_resends_with_dup_and_the_same_id(mosquitto, qos):
    topic = "aflt/q%d" % qos
    got = []

    async def main(proxy):
        sub = make("aflt-sub")
        await sub.subscribe(topic, lambda c, p, t: got.append(p), qos)
        await sub.connect(HOST, 10, port=mosquitto.port)
        pub = make("aflt-pub", clean_session=False)
        await pub.connect(HOST, 10, port=proxy.port)
        proxy.cut_when(DOWN, pk.PUBACK if qos == 1 else pk.PUBREC, "cut_before")
        t0 = time.monotonic()
        await pub.publish(topic, b"m-dup", qos)  # completes across the reconnect
        took = time.monotonic() - t0
        await wait_for(lambda: got, 2)
        await asyncio.sleep(0.3)  # a duplicate would come now
        await pub.disconnect()
        await sub.disconnect()
        return took

    with FaultProxy(mosquitto.port, record=True) as proxy:
        took = run(main(proxy))
    sent = log_publishes(mosquitto, "aflt-pub", qos=qos)
    assert [(d, q) for d, q, _, _ in sent] == [(0, qos), (1, qos)], mosquitto.log_text()
    assert sent[0][2] == sent[1][2]  # the same packet id [MQTT-4.4.0-1]
    ups = [u for d, u, _ in proxy.forwarded if d == UP and u[0] >> 4 == pk.PUBLISH]
    assert [u[0] & 0x08 for u in ups] == [0, 0x08] and ups[0][1:] == ups[1][1:]
    assert proxy.events == Counter(rule_cut=1)
    assert took < 2.0, took  # backoff 25-50 ms, then the resend
    if qos == 2:
        assert got == [b"m-dup"]
    else:
        assert got[0] == b"m-dup"


@pytest.mark.parametrize("lost", ["PUBREL", "PUBCOMP"])
def test_cut_after_pubrec_resends_pubrel_not_the_message(mosquitto, lost):
    got = []

    async def main(proxy):
        sub = make("arel-sub")
        await sub.subscribe("arel/q2", lambda c, p, t: got.append(p), 2)
        await sub.connect(HOST, 10, port=mosquitto.port)
        pub = make("arel-pub", clean_session=False)
        await pub.connect(HOST, 10, port=proxy.port)
        if lost == "PUBREL":
            proxy.cut_when(UP, pk.PUBREL, "cut_before")
        else:
            proxy.cut_when(DOWN, pk.PUBCOMP, "cut_before")
        await pub.publish("arel/q2", b"exactly-once", 2)
        await wait_for(lambda: got, 2)
        await asyncio.sleep(0.5)
        await pub.disconnect()
        await sub.disconnect()
        # the proxy forwards the DISCONNECT before it closes
        await wait_for(lambda: "Client arel-pub disconnected" in mosquitto.log_text(), 2)

    with FaultProxy(mosquitto.port, record=True) as proxy:
        run(main(proxy))
    assert [(d, q) for d, q, _, _ in log_publishes(mosquitto, "arel-pub")] == [(0, 2)]
    ups = [u[0] >> 4 for d, u, _ in proxy.forwarded if d == UP and u[0] >> 4 != pk.PINGREQ]
    if lost == "PUBREL":
        assert ups == [pk.CONNECT, pk.PUBLISH, pk.CONNECT, pk.PUBREL, pk.DISCONNECT], ups
    else:
        assert ups == [pk.CONNECT, pk.PUBLISH, pk.PUBREL, pk.CONNECT, pk.PUBREL,
                       pk.DISCONNECT], ups  # fmt: skip
    assert got == [b"exactly-once"]
    assert proxy.events == Counter(rule_cut=1)


def test_subscriber_qos2_redelivery_is_acked_but_not_delivered_twice(mosquitto):
    got = []

    async def main(proxy):
        sub = make("adup-sub", clean_session=False)
        await sub.subscribe("adup/q2", lambda c, p, t: got.append(p), 2)
        await sub.connect(HOST, 10, port=proxy.port)
        proxy.cut_when(UP, pk.PUBREC, "cut_before")
        pub = make("adup-pub")
        await pub.connect(HOST, 10, port=mosquitto.port)
        await pub.publish("adup/q2", b"only-once", 2)
        await wait_for(lambda: "Received PUBCOMP from adup-sub" in mosquitto.log_text(), 5)
        await asyncio.sleep(0.2)
        await pub.disconnect()
        await sub.disconnect()

    with FaultProxy(mosquitto.port) as proxy:
        run(main(proxy))
    to_sub = log_publishes(mosquitto, "adup-sub", direction="Sending")
    assert [(d, q) for d, q, _, _ in to_sub] == [(0, 2), (1, 2)], mosquitto.log_text()
    assert to_sub[0][2] == to_sub[1][2]
    assert got == [b"only-once"]


def test_subscription_renewed_after_a_reconnect_that_found_no_session(mosquitto):
    # The broker restarts without persistence: its session (and the subscription) is
    # gone, and the SUBSCRIBE the client sends on the first reconnect is cut too.
    got = []

    async def main(proxy):
        sub = make("alost-sub", clean_session=False)
        await sub.subscribe("alost/t", lambda c, p, t: got.append(p), 1)
        await sub.connect(HOST, 10, port=proxy.port)
        proxy.cut_when(UP, pk.SUBSCRIBE, "cut_before")
        mosquitto.restart()
        ok = await wait_for(lambda: proxy.connections >= 3 and sub.connected()
                            and sub._handlers[0][3] == 1, 10)  # fmt: skip
        pub = make("alost-pub")
        await pub.connect(HOST, 10, port=mosquitto.port)
        await pub.publish("alost/t", b"are you there", 1)
        await wait_for(lambda: got, 3)
        await pub.disconnect()
        await sub.disconnect()
        return ok

    with FaultProxy(mosquitto.port) as proxy:
        ok = run(main(proxy))
        assert proxy.events == Counter(rule_cut=1)
    assert ok and got == [b"are you there"], (ok, got)


# ======================================================================================
# The reconnection policy
# ======================================================================================


def test_outage_backoff_with_jitter_callbacks_and_a_message_held_meanwhile(mosquitto):
    events = []

    async def before(client):  # a coroutine: e.g. bring WiFi back
        events.append(("breconnect", time.monotonic()))
        await asyncio.sleep(0)

    def after(client):
        events.append(("aconnect", time.monotonic()))

    got = []

    async def main(proxy):
        sub = make("aout-sub")
        await sub.subscribe("aout/t", lambda c, p, t: got.append(p), 1)
        await sub.connect(HOST, 10, port=mosquitto.port)
        c = make("aout-pub", clean_session=False)
        c.backoff_ms, c.backoff_cap_ms = 100, 400
        await c.connect(HOST, 10, port=proxy.port, breconnect_cb=before, aconnect_cb=after)
        t_out = proxy.start_outage(mode="rst")
        assert await wait_for(lambda: not c.connected(), 2)
        # While reconnecting, a QoS 1 message is held by the session and awaited.
        held = asyncio.create_task(c.publish("aout/t", b"held", 1))
        await asyncio.sleep(1.6)
        proxy.end_outage()
        await held  # within command_timeout (3 s): sent after the CONNACK
        t_up = time.monotonic()
        up = c.connected()
        await asyncio.sleep(0.1)
        await c.disconnect()
        await sub.disconnect()
        return t_out, t_up, up

    with FaultProxy(mosquitto.port) as proxy:
        t_out, t_up, up = run(main(proxy))
    tries = [t for k, t in events if k == "breconnect"]
    gaps = [b - a for a, b in zip([t_out] + tries, tries)]
    print("\nreconnect attempts after the outage began (s): %s" % ["%.2f" % g for g in gaps])
    assert up and got == [b"held"]
    assert [k for k, _ in events][-1] == "aconnect" and len(tries) >= 4, events
    # equal jitter: attempt k waits between half and all of min(cap, base << k)
    for k, g in enumerate(gaps[:-1]):
        full = min(0.4, 0.1 * 2**k)
        assert full / 2 - 0.03 <= g <= full + 0.25, (k, g, gaps)
    assert len({round(g, 3) for g in gaps[3:]}) > 1 or len(gaps) < 5, gaps  # jitter


def test_max_attempts_stops_the_client_and_wakes_every_waiter(mosquitto):
    async def main(proxy):
        c = make("amax", command_timeout=5000)
        c.max_attempts = 3
        await c.connect(HOST, 10, port=proxy.port)
        box = c.messages()
        proxy.start_outage(mode="rst")
        t0 = time.monotonic()
        with pytest.raises(MQTTError) as e:
            await c.publish("amax/t", b"x", 1)
        took = time.monotonic() - t0
        ended = [m async for m in box]
        return e.value.code, took, c.pending(), ended, c.connected()

    with FaultProxy(mosquitto.port) as proxy:
        code, took, pending, ended, up = run(main(proxy))
    # 3 attempts: 25-50, 50-100, 100-200 ms of backoff, then it stops
    assert code == E.ERR_CONN_LOST and took < 2.0 and ended == [] and not up, (code, took)
    assert pending == 1  # the session keeps it: a later connect() resends it


def test_keepalive_finds_a_stalled_link_and_reconnects(mosquitto):
    async def main(proxy):
        c = make("astall", command_timeout=5000)
        await c.connect(HOST, 1, port=proxy.port)
        t0 = proxy.stall()
        assert await wait_for(lambda: not c.connected(), 4)
        found = time.monotonic() - t0
        err = c.last_error
        proxy.resume()
        back = await wait_for(c.connected, 3)
        await c.disconnect()
        return found, err, back

    with FaultProxy(mosquitto.port) as proxy:
        found, err, back = run(main(proxy))
    print("\nstalled link found after %.2f s (keepalive 1 s)" % found)
    assert isinstance(err, MQTTError) and err.code == E.ERR_KEEPALIVE, err
    # a PINGREQ after half a keepalive of silence, no PINGRESP within the keepalive, and
    # the ticker's quarter-keepalive steps
    assert found <= 1.5 + 0.25 + 0.3, found
    assert back
