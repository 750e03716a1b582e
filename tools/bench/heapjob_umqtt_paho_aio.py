# The telemetry job (tools/bench/heapjob.py) for umqtt_paho.aio, the asyncio driver:
#   MICROPYPATH=<lib> micropython -X heapsize=N heapjob_umqtt_paho_aio.py HOST PORT
# The job of heapjob_umqtt_paho.py, awaited: each QoS 1 reading returns after its
# PUBACK; the command comes back through its subscription's function while the job
# sleeps. MicroPython's asyncio is in <lib> as .mpy (a board has it frozen).
import sys
import asyncio
from umqtt_paho.aio import Client

got = [0]


def on_cmd(client, payload, topic):
    got[0] += 1


async def main(host, port):
    c = Client("heapjob", cycle_timeout=100, command_timeout=5000)
    await c.connect(host, 30, port=port)
    await c.subscribe(b"job/cmd", on_cmd, 1)
    reading = bytearray(64)
    sent = 0
    for i in range(1, 201):
        reading[0] = i & 0xFF
        await c.publish(b"job/telemetry", reading, 1)
        if i % 20 == 0:
            await c.publish(b"job/cmd", b"blink", 1)
            sent += 1
            for _ in range(50):
                if got[0] >= sent:
                    break
                await asyncio.sleep_ms(100)
            if got[0] != sent:
                raise RuntimeError("command %d not received" % sent)
    await c.disconnect()
    print("JOB OK", got[0])


asyncio.run(main(sys.argv[1], int(sys.argv[2])))
