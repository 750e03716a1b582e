"""umqtt_paho.aio, the asyncio driver (issue 13, first slice), on CPython's asyncio
against mosquitto; tests/test_mp_unix.py runs tests/mp_scripts/aio_basic.py, the same
program, on MicroPython 1.29's asyncio.

What it must show: the API of umqtt_paho.Client, awaitable; acks wake their waiter at
once (QoS 1 awaited msg/s far above a poll's ~10); other tasks keep running (a 10 ms
ticker's longest gap stays small); every wait bounded by command_timeout.
"""

import asyncio
import time

import pytest

from livehelpers import WAIT, StubServer
from umqtt_paho import errors as E
from umqtt_paho.aio import Client
from umqtt_paho.packet import MQTTError


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 4 * WAIT))


def test_round_trip_functions_coroutines_and_messages(mosquitto):
    async def main():
        got = []

        async def slow(client, payload, topic):
            await asyncio.sleep(0.05)  # its own task: the reader goes on meanwhile
            got.append(("coroutine", topic, payload))

        async with Client("aio-rt", command_timeout=3000) as c:
            await c.connect(mosquitto.host, 10, port=mosquitto.port)
            assert await c.subscribe("aio/fn", lambda cl, p, t: got.append(("fn", t, p)), 1) == 1
            assert await c.subscribe("aio/coro", slow, 2) == 2
            assert await c.subscribe("aio/box/#", None, 1) == 1
            assert await c.publish("aio/fn", "one", 1) is None
            await c.publish("aio/coro", b"two", 2)
            await c.publish("aio/box/x", "three", 0, retain=False)
            msg = None
            async for m in c.messages():
                msg = m
                break
            await asyncio.sleep(0.2)
            assert (msg.topic, msg.payload, msg.qos, msg.retain) == ("aio/box/x", b"three", 0, 0)
            assert sorted(got) == [("coroutine", "aio/coro", b"two"), ("fn", "aio/fn", b"one")]
            assert c.pending() == 0
        assert not c.connected()

    run(main())


def test_acks_wake_at_once_and_other_tasks_keep_running(mosquitto):
    async def main():
        gap = [0.0]
        stop = []

        async def ticker():
            last = time.monotonic()
            while not stop:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gap[0] = max(gap[0], now - last - 0.01)
                last = now

        c = Client("aio-rate", command_timeout=3000)
        await c.connect(mosquitto.host, 10, port=mosquitto.port)
        t = asyncio.create_task(ticker())
        t0 = time.monotonic()
        for _ in range(300):
            await c.publish("aio/rate", b"r" * 64, 1)
        rate = 300 / (time.monotonic() - t0)
        stop.append(1)
        await t
        await c.disconnect()
        return rate, gap[0]

    rate, gap = run(main())
    print("\naio QoS 1 awaited: %d msg/s; longest extra gap of a 10 ms ticker: %.1f ms"
          % (rate, gap * 1000))  # fmt: skip
    assert rate > 500, rate  # an event wakes the waiter; a 100 ms poll gives ~10
    assert gap < 0.1, gap


class Silent(StubServer):
    """Accepts TCP; answers CONNECT with CONNACK if connack, then never anything."""

    def __init__(self, connack):
        super().__init__()
        self.connack = connack

    def handle(self, conn):
        if self.connack:
            conn.settimeout(WAIT)
            conn.recv(1024)
            conn.sendall(b"\x20\x02\x00\x00")


def test_no_connack_is_bounded_by_command_timeout():
    async def main(port):
        c = Client("aio-silent", command_timeout=800)
        t0 = time.monotonic()
        with pytest.raises(MQTTError) as e:
            await c.connect("127.0.0.1", 10, port=port)
        return e.value.code, time.monotonic() - t0, c.connected()

    with Silent(connack=False) as s:
        code, took, up = run(main(s.port))
    assert code == E.ERR_TIMEOUT and 0.7 <= took <= 2.0 and not up, (code, took)


def test_missing_ack_is_bounded_and_the_session_keeps_the_message():
    async def main(port):
        c = Client("aio-noack", command_timeout=700)
        await c.connect("127.0.0.1", 10, port=port)
        t0 = time.monotonic()
        with pytest.raises(MQTTError) as e:
            await c.publish("t", "kept", 1)
        took = time.monotonic() - t0
        pending = c.pending()
        await c.disconnect()
        return e.value.code, took, pending

    with Silent(connack=True) as s:
        code, took, pending = run(main(s.port))
    assert code == E.ERR_TIMEOUT and 0.6 <= took <= 2.0 and pending == 1, (code, took)


def test_link_lost_while_waiting_wakes_the_waiter_at_once():
    async def main(port, server):
        c = Client("aio-lost", command_timeout=5000)
        await c.connect("127.0.0.1", 10, port=port, reconnect=False)
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, lambda: [x.close() for x in server.conns])
        t0 = time.monotonic()
        with pytest.raises(MQTTError) as e:
            await c.publish("t", "x", 1)
        return e.value.code, time.monotonic() - t0, c.connected()

    with Silent(connack=True) as s:
        code, took, up = run(main(s.port, s))
    assert code == E.ERR_CONN_LOST and took < 2.0 and not up, (code, took)


def test_bad_arguments_raise_before_anything_is_sent():
    async def main():
        c = Client("aio-args")
        with pytest.raises(ValueError):
            await c.publish("t", "x", 3)
        with pytest.raises(ValueError):
            await c.subscribe("a/#/b", None, 0)
        with pytest.raises(MQTTError) as e:
            await c.publish("t", "x", 1)
        assert e.value.code == E.ERR_NO_CONN

    run(main())


def test_keepalive_pings_a_client_that_only_receives(mosquitto):
    # keepalive 1 s, a stream of QoS 0 messages in and nothing of ours out: the client
    # must still send PINGREQ (the broker would drop it after 1.5 s otherwise).
    async def main():
        c = Client("aio-ka", command_timeout=3000)
        await c.connect(mosquitto.host, 1, port=mosquitto.port)
        await c.subscribe("aio/ka", None, 0)
        feeder = Client("aio-ka-feed", command_timeout=3000)
        await feeder.connect(mosquitto.host, 10, port=mosquitto.port)
        n = 0
        t_end = time.monotonic() + 3.0
        while time.monotonic() < t_end:
            await feeder.publish("aio/ka", b"%d" % n, 0)
            n += 1
            await asyncio.sleep(0.05)
        up = c.connected()
        await feeder.disconnect()
        await c.disconnect()
        return up

    assert run(main())
    log = mosquitto.log_text()
    assert log.count("Received PINGREQ from aio-ka\n") >= 2, log[-2000:]
    assert "aio-ka has exceeded timeout" not in log


def test_tls_verified_round_trip_wrong_ca_refused_and_insecure_needs_opt_in(mosquitto_tls):
    import ssl

    async def main():
        got = []
        ctx = ssl.create_default_context(cafile=mosquitto_tls.ca_path)
        c = Client("aio-tls", command_timeout=3000)
        await c.connect("localhost", 10, port=mosquitto_tls.port, ssl_ctx=ctx)
        await c.subscribe("aio/tls", lambda cl, p, t: got.append(p), 1)
        await c.publish("aio/tls", b"over TLS", 1)
        for _ in range(50):
            if got:
                break
            await asyncio.sleep(0.02)
        await c.disconnect()
        bad = Client("aio-tls-bad", command_timeout=3000)
        with pytest.raises(OSError) as wrong:  # ssl.SSLCertVerificationError
            await bad.connect("localhost", 10, port=mosquitto_tls.port,
                              ssl_ctx=ssl.create_default_context(cafile=mosquitto_tls.wrong_ca_path))
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        with pytest.raises(MQTTError) as refused:
            await bad.connect("localhost", 10, port=mosquitto_tls.port, ssl_ctx=insecure)
        return got, str(wrong.value), refused.value.code, bad.connected()

    got, wrong, refused, up = run(main())
    assert got == [b"over TLS"]
    assert "certificate verify failed" in wrong
    assert refused == E.ERR_TLS and not up


def test_oversize_dropped_and_acked_a_raising_function_and_unsubscribe(mosquitto):
    # A message larger than max_packet_size is read through, acked and dropped (the
    # broker does not send it again); a function that raises is recorded in last_error
    # and the reader goes on; after unsubscribe() nothing more arrives.
    async def main():
        got = []

        def fn(client, payload, topic):
            if payload == b"boom":
                raise RuntimeError("the application's bug")
            got.append(payload)

        c = Client("aio-big", command_timeout=3000, max_packet_size=128)
        await c.connect(mosquitto.host, 10, port=mosquitto.port)
        await c.subscribe("aio/big", fn, 1)
        pub = Client("aio-big-pub", command_timeout=3000)
        await pub.connect(mosquitto.host, 10, port=mosquitto.port)
        await pub.publish("aio/big", b"x" * 1000, 1)
        await pub.publish("aio/big", b"boom", 1)
        await pub.publish("aio/big", b"small", 1)
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.02)
        err = c.last_error
        await c.unsubscribe("aio/big")
        await pub.publish("aio/big", b"after", 1)
        await asyncio.sleep(0.3)
        await pub.disconnect()
        await c.disconnect()
        return got, c.oversize_dropped, err

    got, dropped, err = run(main())
    assert got == [b"small"] and dropped == 1, (got, dropped)
    assert isinstance(err, RuntimeError)
    log = mosquitto.log_text()
    assert log.count("Sending PUBLISH to aio-big ") == 3, log  # no redelivery of the big one


def test_more_publishers_than_slots_wait_for_a_free_slot(mosquitto):
    async def main():
        c = Client("aio-slots", command_timeout=3000, max_inflight=2)
        await c.connect(mosquitto.host, 10, port=mosquitto.port)

        async def worker(k):
            for i in range(20):
                await c.publish("aio/slots", b"%d-%d" % (k, i), 1 + (i & 1))

        await asyncio.gather(*[worker(k) for k in range(6)])
        pending = c.pending()
        await c.disconnect()
        return pending

    assert run(main()) == 0
    log = mosquitto.log_text()
    assert log.count("Received PUBLISH from aio-slots") == 120
