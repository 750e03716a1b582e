# Throughput of one MQTT client on the MicroPython unix port against a broker, for
# tools/bench.py (the MicroPython twin of tools/bench/tp_cpython.py: same method).
#
#   MICROPYPATH=<umqtt_paho .mpy tree>:<peers .mpy> micropython tp_micropython.py \
#       CLIENT HOST PORT N0 N1 CAP_S
#
# CLIENT: raw | umqtt_paho | umqtt_paho_cycle | umqtt.simple | umqtt_paho_aio (asyncio:
# the same loop, each publish awaited; plus "alloc": bytes allocated per warm publish,
# QoS 0 and QoS 1, gc.mem_alloc() over 200 with the collector off). Prints one JSON line.
# - QoS 0: N0 publishes, then one QoS 1 publish whose PUBACK is awaited (the broker reads
#   a connection in order: that PUBACK proves the QoS 0 messages were consumed); the
#   clock covers both. QoS 1: N1 publishes, each awaiting its PUBACK.
# - raw: a plain blocking socket (default options) writing the same bytes, one write()
#   per packet (QoS 1: packet id patched in place, then readinto the 4-byte PUBACK).
# - Every client runs the same loop around a closure one(); a run stops after CAP_S
#   seconds ("n" says how many were timed).

import json
import socket
import sys
import time

TOPIC = b"bench/tp/temperature"
PAYLOAD = b"x" * 64
CHECK_EVERY = 256


def burst(one, n, cap_us, every):
    t0 = time.ticks_us()
    done = 0
    while done < n:
        k = every if n - done > every else n - done
        for _ in range(k):
            one()
        done += k
        if time.ticks_diff(time.ticks_us(), t0) > cap_us:
            break
    return done, t0


def measure(pub0, pub1, n0, n1, cap_us):
    out = {}
    done, t0 = burst(pub0, n0, cap_us, CHECK_EVERY)
    pub1()  # every QoS 0 message before this PUBACK was consumed by the broker
    s = time.ticks_diff(time.ticks_us(), t0) / 1e6
    out["qos0"] = {"n": done, "s": s, "rate": done / s}
    done, t0 = burst(pub1, n1, cap_us, 1)
    s = time.ticks_diff(time.ticks_us(), t0) / 1e6
    out["qos1"] = {"n": done, "s": s, "rate": done / s}
    return out


def _str(b):
    return bytes((len(b) >> 8, len(b) & 0xFF)) + b


def _packet(first, body):
    n = len(body)
    rl = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        rl.append(b | 0x80 if n else b)
        if not n:
            break
    return bytes((first,)) + bytes(rl) + body


def run_raw(host, port, n0, n1, cap_us):
    s = socket.socket()
    s.connect(socket.getaddrinfo(host, port)[0][-1])
    buf = bytearray(4)
    s.write(_packet(0x10, _str(b"MQTT") + bytes((4, 2, 0, 60)) + _str(b"bench-raw-mp")))
    if s.readinto(buf, 4) != 4 or buf[0] != 0x20 or buf[3] != 0:
        raise RuntimeError("no CONNACK")
    pkt0 = _packet(0x30, _str(TOPIC) + PAYLOAD)
    pkt1 = bytearray(_packet(0x32, _str(TOPIC) + b"\x00\x01" + PAYLOAD))
    at = len(pkt1) - len(PAYLOAD) - 2
    write = s.write
    readinto = s.readinto
    pid = [0]

    def pub0():
        write(pkt0)

    def pub1():
        p = pid[0] % 65535 + 1
        pid[0] = p
        pkt1[at] = p >> 8
        pkt1[at + 1] = p & 0xFF
        write(pkt1)
        got = readinto(buf, 4)
        if got != 4 or buf[0] != 0x40 or buf[2] != p >> 8 or buf[3] != p & 0xFF:
            raise RuntimeError("expected PUBACK %d, got %r" % (p, bytes(buf)))

    out = measure(pub0, pub1, n0, n1, cap_us)
    s.write(b"\xe0\x00")
    s.close()
    return out


def run_umqtt_paho(host, port, n0, n1, cap_us, start_loop):
    from umqtt_paho import Client

    c = Client("bench-umqtt-paho-mp", command_timeout=10000)
    c.connect(host, 60, port=port, start_loop=start_loop)
    publish = c.publish

    def pub0():
        publish(TOPIC, PAYLOAD)

    def pub1():
        publish(TOPIC, PAYLOAD, 1)

    out = measure(pub0, pub1, n0, n1, cap_us)
    c.disconnect(2000)
    return out


def run_simple(host, port, n0, n1, cap_us):
    from umqtt.simple import MQTTClient

    c = MQTTClient(b"bench-simple-mp", host, port, keepalive=60)
    c.connect()
    publish = c.publish

    def pub0():
        publish(TOPIC, PAYLOAD)

    def pub1():
        publish(TOPIC, PAYLOAD, False, 1)

    out = measure(pub0, pub1, n0, n1, cap_us)
    c.disconnect()
    return out


def run_aio(host, port, n0, n1, cap_us):
    import asyncio
    import gc

    from umqtt_paho.aio import Client

    async def go():
        c = Client("bench-aio-mp", command_timeout=10000)
        await c.connect(host, 60, port=port)
        publish = c.publish
        out = {}
        for q, n in (("qos0", n0), ("qos1", n1)):
            qos = 1 if q == "qos1" else 0
            t0 = time.ticks_us()
            done = 0
            while done < n and time.ticks_diff(time.ticks_us(), t0) <= cap_us:
                await publish(TOPIC, PAYLOAD, qos)
                done += 1
            if not qos:
                await publish(TOPIC, PAYLOAD, 1)  # the broker consumed the QoS 0 burst
            s = time.ticks_diff(time.ticks_us(), t0) / 1e6
            out[q] = {"n": done, "s": s, "rate": done / s}
        alloc = {}
        for qos in (0, 1):
            for _ in range(20):
                await publish(TOPIC, PAYLOAD, qos)  # warm
            gc.collect()
            gc.disable()
            a = gc.mem_alloc()
            for _ in range(200):
                await publish(TOPIC, PAYLOAD, qos)
            alloc["qos%d" % qos] = (gc.mem_alloc() - a) / 200
            gc.enable()
        out["alloc"] = alloc
        await c.disconnect()
        return out

    return asyncio.run(go())


def main(argv):
    client = argv[0]
    host = argv[1]
    port = int(argv[2])
    n0 = int(argv[3])
    n1 = int(argv[4])
    cap_us = int(float(argv[5]) * 1000000)
    if client == "raw":
        out = run_raw(host, port, n0, n1, cap_us)
    elif client == "umqtt_paho":
        out = run_umqtt_paho(host, port, n0, n1, cap_us, True)
    elif client == "umqtt_paho_cycle":
        out = run_umqtt_paho(host, port, n0, n1, cap_us, False)
    elif client == "umqtt.simple":
        out = run_simple(host, port, n0, n1, cap_us)
    elif client == "umqtt_paho_aio":
        out = run_aio(host, port, n0, n1, cap_us)
    else:
        raise SystemExit("unknown client %r" % client)
    out["client"] = client
    out["implementation"] = "%s %s %s" % (
        sys.implementation.name,
        ".".join([str(x) for x in sys.implementation.version[:3]]),
        sys.platform,
    )
    print(json.dumps(out))
    sys.exit(0)  # a loop thread left behind must not keep the process alive


main(sys.argv[1:])
