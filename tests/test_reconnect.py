# The ready reconnection policy, on the fake broker and clock (tests/fakenet.py):
# backoff bounds, limits, breconnect_cb before each attempt, resubscribe and resend
# after it.
#
# Runs on CPython (pytest collects it) and inside the 32-bit MicroPython VM on the .mpy
# build (tests/test_vm.py): plain test functions and asserts, no pytest, no f-strings.

from umqtt_paho import BREAK_LOOP, RECOVERED, Client, ReconnectPolicy

from fakenet import FakePort, connected_client, raises


def test_delays_grow_exponentially_with_equal_jitter_and_cap():
    p = ReconnectPolicy(base_ms=1000, cap_ms=60000)
    for attempt, full in [(1, 1000), (2, 2000), (3, 4000), (6, 32000), (7, 60000), (20, 60000)]:
        seen = [p.delay_ms(attempt) for _ in range(200)]
        assert all(full // 2 <= d <= full for d in seen), (attempt, min(seen), max(seen))
        assert len(set(seen)) > 20  # jittered, not one value


def test_policy_waits_reconnects_and_restores_the_session():
    port = FakePort()
    calls = []
    c = Client("p", port=port)
    c.subscribe("cmd/#", lambda *a: None, qos=1)
    policy = ReconnectPolicy(base_ms=1000, cap_ms=8000)
    c.connect(
        "h",
        60,
        breconnect_cb=lambda cl: calls.append(port.clock.now),
        loop_failure=policy,
        start_loop=False,
    )
    port.broker.hangup()
    port.broker.unreachable = True  # the broker is down
    t0 = port.clock.now

    # the broker comes back when the 4th attempt is made
    def breconnect(cl):
        calls.append(port.clock.now - t0)
        if len(calls) == 4:
            port.broker.unreachable = False

    c._target = c._target[:3] + (breconnect,) + c._target[4:]  # connect()'s breconnect_cb
    assert c.cycle() == -1  # RECOVERED: the hook reconnected
    assert c.connected() and policy.attempts == 3 and policy.outages == 1
    # attempt k waited within [d/2, d] after the previous one, d = 1, 2, 4, 8 s
    gaps = [calls[0]] + [b - a for a, b in zip(calls, calls[1:])]
    for gap, full in zip(gaps, (1000, 2000, 4000, 8000)):
        assert full // 2 <= gap <= full, gaps
    # no session on the broker: the subscription was renewed
    assert port.broker.types()[-2:] == ["CONNECT", "SUBSCRIBE"]
    assert port.broker.subscriptions("p") == {"cmd/#": 1}


def test_max_attempts_gives_up_with_break_loop():
    c, port = connected_client()
    policy = ReconnectPolicy(base_ms=100, cap_ms=100, max_attempts=3)
    c._loop_failure = policy
    c.on_log = lambda *a: None
    port.broker.unreachable = True  # no route
    port.broker.hangup()
    raises(OSError, c.cycle)
    assert policy.given_up and policy.attempts == 3
    assert len(port.links) == 1 + 3


def test_max_time_gives_up_when_the_outage_lasts():
    c, port = connected_client()
    policy = ReconnectPolicy(base_ms=1000, cap_ms=4000, max_time_ms=20000)
    c._loop_failure = policy
    c.on_log = lambda *a: None
    port.broker.unreachable = True
    port.broker.hangup()
    t0 = port.clock.now
    raises(OSError, c.cycle)
    assert policy.given_up and 20000 <= port.clock.now - t0 <= 20000 + 4000


def test_non_blocking_policy_lets_a_cycle_loop_run_between_attempts():
    c, port = connected_client(cycle_timeout=200)
    policy = ReconnectPolicy(base_ms=1000, cap_ms=1000, blocking=False)
    c._loop_failure = policy
    c.on_log = lambda *a: None
    port.broker.unreachable = True
    port.broker.hangup()
    results = []
    for _ in range(30):  # the application's own main loop
        results.append(c.cycle())
        if len(port.links) == 3:
            port.broker.unreachable = False
        if c.connected():
            break
    assert c.connected()
    assert results.count(-1) > 5  # control came back while waiting
    assert port.clock.now < 30 * 1000  # no call blocked for a backoff delay


def test_disconnect_stops_the_policy():
    c, port = connected_client()
    policy = ReconnectPolicy(base_ms=1000)

    def hook(cl):
        cl.disconnect()  # e.g. the application decided to shut down
        return policy(cl)

    c._loop_failure = hook
    port.broker.hangup()
    raises(OSError, c.cycle)
    assert policy.attempts == 0 and len(port.links) == 1


def test_policy_resends_unacked_messages_after_the_outage():
    c, port = connected_client(clean_session=False)
    c._loop_failure = ReconnectPolicy(base_ms=10, cap_ms=10)
    port.broker.puback = False
    c.publish(b"t", b"m", qos=1, wait=False)
    port.broker.puback = True
    port.broker.hangup()
    assert c.cycle() == -1 and c.session_present  # the broker kept the session
    assert port.link.written[1] == b"\x3a\x06\x00\x01t\x00\x01m"  # DUP, same id
    c.cycle()
    assert c.pending() == 0


def test_reconnect_policy_is_importable_lazily():
    import umqtt_paho

    assert umqtt_paho.ReconnectPolicy is ReconnectPolicy
    assert RECOVERED != BREAK_LOOP
    raises(AttributeError, getattr, umqtt_paho, "NoSuchThing")
