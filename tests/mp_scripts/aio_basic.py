# umqtt_paho.aio on MicroPython's asyncio (tests/test_mp_unix.py, MicroPython 1.29):
# the round trip of tests/test_aio.py, plus the awaited QoS 1 rate and the longest
# extra gap of a 10 ms ticker task. argv: host port. Prints one JSON result line.
import asyncio
import json
import sys
import time

from umqtt_paho.aio import Client

host, port = sys.argv[1], int(sys.argv[2])


async def main():
    got = []

    async def slow(client, payload, topic):
        await asyncio.sleep_ms(50)
        got.append(["coroutine", topic, payload.decode()])

    out = {"event": "result"}
    c = Client("aio-mp", command_timeout=3000)
    await c.connect(host, 10, port=port)
    out["granted"] = [
        await c.subscribe("aio/fn", lambda cl, p, t: got.append(["fn", t, p.decode()]), 1),
        await c.subscribe("aio/coro", slow, 2),
        await c.subscribe("aio/box/#", None, 1),
    ]
    await c.publish("aio/fn", "one", 1)
    await c.publish("aio/coro", b"two", 2)
    await c.publish("aio/box/x", "three", 0)
    async for m in c.messages():
        out["message"] = [m.topic, m.payload.decode(), m.qos, m.retain]
        break
    await asyncio.sleep_ms(200)
    out["got"] = sorted(got)

    gap = [0]
    stop = []

    async def ticker():
        last = time.ticks_ms()
        while not stop:
            await asyncio.sleep_ms(10)
            now = time.ticks_ms()
            gap[0] = max(gap[0], time.ticks_diff(now, last) - 10)
            last = now

    t = asyncio.create_task(ticker())
    t0 = time.ticks_ms()
    reading = bytearray(64)
    for i in range(300):
        reading[0] = i & 0xFF
        await c.publish("aio/rate", reading, 1)
    out["qos1_per_s"] = 300 * 1000 // max(1, time.ticks_diff(time.ticks_ms(), t0))
    stop.append(1)
    await t
    out["ticker_gap_ms"] = gap[0]
    out["pending"] = c.pending()
    # Bytes allocated per warm publish (the collector off): 0 at QoS 0; at QoS 1 only
    # asyncio's own I/O-queue entry for the reader's wait on the PUBACK.
    import gc

    for qos in (0, 1):
        for _ in range(20):
            await c.publish(b"aio/alloc", reading, qos)
        gc.collect()
        gc.disable()
        a = gc.mem_alloc()
        for _ in range(200):
            await c.publish(b"aio/alloc", reading, qos)
        out["alloc_qos%d" % qos] = (gc.mem_alloc() - a) / 200
        gc.enable()
    await c.disconnect()
    out["connected_after"] = c.connected()
    print(json.dumps(out))


asyncio.run(main())
