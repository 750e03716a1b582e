# The fault-injection proof of umqtt_paho.aio on MicroPython's asyncio
# (tests/test_mp_unix.py, MicroPython 1.29): N QoS 1 and N QoS 2 numbered messages from
# TASKS publishing tasks through a faulty proxy to mosquitto, and back to a subscriber
# behind its own faulty proxy (both proxies run in the test). A publish() that raised
# ERR_TIMEOUT or ERR_CONN_LOST was accepted (the session resends it); one that raised
# anything else was not, and is retried. argv: pub_port sub_port n tasks. Prints JSON
# lines: {"event": "up"} once connected (the test then arms the proxies), then the
# result with what the subscriber got.
import asyncio
import json
import sys
import time

from umqtt_paho.aio import Client
from umqtt_paho.packet import MQTTError

pub_port, sub_port, N, TASKS = [int(a) for a in sys.argv[1:5]]
got = {1: {}, 2: {}}
odd = []
accepted = {1: 0, 2: 0}
raised = {}


def on_msg(client, payload, topic):
    qos = 1 if topic == "mp-e2e/q1" else 2
    try:
        prefix, num = payload.split(b"-")
        if prefix != b"q%d" % qos:
            raise ValueError
        n = int(num)
        got[qos][n] = got[qos].get(n, 0) + 1
    except Exception:
        odd.append([topic, payload.decode("utf-8", "replace")])


def make(cid, **kw):
    c = Client(cid, clean_session=False, command_timeout=3000, **kw)
    c.backoff_ms = 50
    c.backoff_cap_ms = 500
    return c


async def connect(c, port):
    for _ in range(100):
        try:
            return await c.connect("127.0.0.1", 5, port=port)
        except (MQTTError, OSError):
            await asyncio.sleep_ms(50)
    raise RuntimeError("could not connect")


async def publisher(pub, k):
    for i in range(k, N, TASKS):
        for qos in (1, 2):
            while True:
                try:
                    await pub.publish(b"mp-e2e/q%d" % qos, b"q%d-%d" % (qos, i), qos)
                except MQTTError as e:
                    key = "%d/%d" % (qos, e.code)
                    raised[key] = raised.get(key, 0) + 1
                    if e.code not in (17, 7):  # ERR_TIMEOUT, ERR_CONN_LOST: accepted
                        await asyncio.sleep_ms(2)
                        continue
                accepted[qos] += 1
                break


async def main():
    sub = make("mp-e2e-sub", max_inflight_in=2048)
    pub = make("mp-e2e-pub")
    await sub.subscribe("mp-e2e/q1", on_msg, 1)
    await sub.subscribe("mp-e2e/q2", on_msg, 2)
    await connect(sub, sub_port)
    await connect(pub, pub_port)
    print(json.dumps({"event": "up"}))
    await asyncio.sleep_ms(300)  # the test arms the proxies
    t0 = time.ticks_ms()
    tasks = [asyncio.create_task(publisher(pub, k)) for k in range(TASKS)]
    for t in tasks:
        await t
    published_ms = time.ticks_diff(time.ticks_ms(), t0)
    for _ in range(600):
        if not pub.pending():
            break
        await asyncio.sleep_ms(50)
    pending = pub.pending()
    for _ in range(600):
        if len(got[1]) >= N and len(got[2]) >= N:
            break
        await asyncio.sleep_ms(50)
    await asyncio.sleep_ms(500)  # late duplicates
    await pub.disconnect()
    await sub.disconnect()
    print(json.dumps({
        "event": "result", "accepted": [accepted[1], accepted[2]], "pending": pending,
        "raised": raised, "published_ms": published_ms, "odd": odd[:5],
        "got1": [[n, v] for n, v in got[1].items()],
        "got2": [[n, v] for n, v in got[2].items()],
    }))


asyncio.run(main())
