"""Throughput of one MQTT client on CPython against a broker, for tools/bench.py.

    python tools/bench/tp_cpython.py CLIENT HOST PORT N0 N1 CAP_S [PEERS_DIR]

CLIENT: raw | umqtt_paho | umqtt_paho_cycle | MiniMQTT | paho-mqtt. Prints one JSON line:
{"client", "qos0": {"n", "s", "rate"}, "qos1": {...}}.

- QoS 0: N0 publishes of a 64-byte payload as fast as the client takes them, then one
  QoS 1 publish whose PUBACK is awaited: the broker reads a connection in order, so the
  PUBACK proves every QoS 0 message before it was consumed. The clock covers both.
- QoS 1: N1 publishes, each awaiting its PUBACK.
- raw: a plain socket (default options) sending the same bytes (PUBLISH packets encoded
  once; the QoS 1 packet id patched in place), one sendall() per packet; QoS 1 reads the
  4-byte PUBACK after each.
- Every client runs the same loop around a closure `one()` (the same call overhead);
  a run stops early after CAP_S seconds (clients that write a PUBLISH in several pieces
  meet Nagle + delayed ACK at QoS 1, ~25 msg/s): "n" says how many were timed.
"""

import json
import os
import socket
import sys
import time
import types

TOPIC = b"bench/tp/temperature"
PAYLOAD = b"x" * 64
CHECK_EVERY = 256  # QoS 0: look at the clock every this many publishes


def burst(one, n, cap, every):
    """Call one() n times (stop early past cap seconds); (count, seconds, start time)."""
    t0 = time.perf_counter()
    done = 0
    while done < n:
        k = every if n - done > every else n - done
        for _ in range(k):
            one()
        done += k
        if time.perf_counter() - t0 > cap:
            break
    return done, t0


def measure(pub0, pub1, n0, n1, cap):
    """pub0(): one QoS 0 publish; pub1(): one QoS 1 publish that waits for its PUBACK."""
    out = {}
    done, t0 = burst(pub0, n0, cap, CHECK_EVERY)
    pub1()  # the broker has consumed everything before this PUBACK
    s = time.perf_counter() - t0
    out["qos0"] = {"n": done, "s": s, "rate": done / s}
    done, t0 = burst(pub1, n1, cap, 1)
    s = time.perf_counter() - t0
    out["qos1"] = {"n": done, "s": s, "rate": done / s}
    return out


# ---- raw socket -----------------------------------------------------------------------


def _rl(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _str(b):
    return len(b).to_bytes(2, "big") + b


def connect_packet(client_id, keepalive=60):
    body = _str(b"MQTT") + bytes((4, 0x02)) + keepalive.to_bytes(2, "big") + _str(client_id)
    return b"\x10" + _rl(len(body)) + body


def publish_packet(topic, payload, qos, pid=1):
    body = _str(topic) + (pid.to_bytes(2, "big") if qos else b"") + payload
    return bytes((0x30 | qos << 1,)) + _rl(len(body)) + body


def _recv_exact(sock, buf, n):
    got = 0
    mv = memoryview(buf)
    while got < n:
        k = sock.recv_into(mv[got:], n - got)
        if not k:
            raise OSError("broker closed the connection")
        got += k


def run_raw(host, port, n0, n1, cap):
    # A default socket (Nagle on): the fastest for the QoS 0 stream, measured; QoS 1 has
    # one write per round trip, where Nagle never waits.
    s = socket.create_connection((host, port), timeout=10)
    buf = bytearray(4)
    s.sendall(connect_packet(b"bench-raw"))
    _recv_exact(s, buf, 4)
    if buf[0] != 0x20 or buf[3] != 0:
        raise RuntimeError("CONNACK refused: %r" % bytes(buf))
    pkt0 = publish_packet(TOPIC, PAYLOAD, 0)
    pkt1 = bytearray(publish_packet(TOPIC, PAYLOAD, 1))
    at = pkt1.index(TOPIC) + len(TOPIC)  # the packet id
    sendall = s.sendall
    pid = [0]

    def pub0():
        sendall(pkt0)

    def pub1():
        p = pid[0] % 65535 + 1
        pid[0] = p
        pkt1[at] = p >> 8
        pkt1[at + 1] = p & 0xFF
        sendall(pkt1)
        _recv_exact(s, buf, 4)
        if buf[0] != 0x40 or buf[2] != p >> 8 or buf[3] != p & 0xFF:
            raise RuntimeError("expected PUBACK %d, got %r" % (p, bytes(buf)))

    out = measure(pub0, pub1, n0, n1, cap)
    s.sendall(b"\xe0\x00")
    s.close()
    return out


# ---- the clients --------------------------------------------------------------------------


def run_umqtt_paho(host, port, n0, n1, cap, start_loop):
    from umqtt_paho import Client

    try:
        import umqtt_paho.ports  # noqa: F401  (installed: setup.cfg maps ports/ there)

        port_obj = None  # the default: chosen by the library
    except ImportError:  # a plain checkout: the same module, from ports/
        from ports import cpython as port_obj
    c = Client("bench-umqtt-paho", command_timeout=10000, port=port_obj)
    c.connect(host, 60, port=port, start_loop=start_loop)
    publish = c.publish

    def pub0():
        publish(TOPIC, PAYLOAD)

    def pub1():
        publish(TOPIC, PAYLOAD, 1)

    out = measure(pub0, pub1, n0, n1, cap)
    c.disconnect(1000)
    return out


def _minimqtt_shims():
    # MiniMQTT imports micropython.const, and adafruit_connection_manager imports
    # circuitpython_typing (a package of type hints) off CircuitPython: stand-ins.
    if "micropython" not in sys.modules:
        m = types.ModuleType("micropython")
        m.const = lambda x: x
        sys.modules["micropython"] = m
    if "circuitpython_typing" not in sys.modules:
        pkg = types.ModuleType("circuitpython_typing")
        sub = types.ModuleType("circuitpython_typing.socket")
        for name in ("CircuitPythonSocketType", "InterfaceType", "SocketpoolModuleType",
                     "SocketType", "SSLContextType"):  # fmt: skip
            setattr(sub, name, object)
        pkg.socket = sub
        sys.modules["circuitpython_typing"] = pkg
        sys.modules["circuitpython_typing.socket"] = sub


def run_minimqtt(host, port, n0, n1, cap):
    _minimqtt_shims()
    from adafruit_minimqtt.adafruit_minimqtt import MQTT

    # socket_pool = the CPython socket module: MiniMQTT's own CPython shim
    c = MQTT(
        broker=host,
        port=port,
        client_id="bench-minimqtt",
        socket_pool=socket,
        use_binary_mode=True,
        connect_retries=1,
    )
    c.connect()
    publish = c.publish
    topic = TOPIC.decode()  # MiniMQTT takes a str topic only

    def pub0():
        publish(topic, PAYLOAD)

    def pub1():
        publish(topic, PAYLOAD, False, 1)

    out = measure(pub0, pub1, n0, n1, cap)
    c.disconnect()
    return out


def run_paho(host, port, n0, n1, cap):
    import paho.mqtt.client as mqtt

    try:
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-paho")
    except AttributeError:  # paho-mqtt 1.x
        c = mqtt.Client(client_id="bench-paho")
    c.connect(host, port, 60)
    c.loop_start()
    deadline = time.monotonic() + 10
    while not c.is_connected():
        if time.monotonic() > deadline:
            raise RuntimeError("paho-mqtt did not connect")
        time.sleep(0.005)
    publish = c.publish
    topic = TOPIC.decode()

    def pub0():
        publish(topic, PAYLOAD, 0)

    def pub1():
        publish(topic, PAYLOAD, 1).wait_for_publish(10)

    out = measure(pub0, pub1, n0, n1, cap)
    c.disconnect()
    c.loop_stop()
    return out


def main(argv):
    client, host, port, n0, n1, cap = argv[:6]
    port, n0, n1, cap = int(port), int(n0), int(n1), float(cap)
    if len(argv) > 6:
        sys.path.insert(0, argv[6])  # the peers' sources (MiniMQTT)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(0, repo)
    if client == "raw":
        out = run_raw(host, port, n0, n1, cap)
    elif client == "umqtt_paho":
        out = run_umqtt_paho(host, port, n0, n1, cap, True)
    elif client == "umqtt_paho_cycle":
        out = run_umqtt_paho(host, port, n0, n1, cap, False)
    elif client == "MiniMQTT":
        out = run_minimqtt(host, port, n0, n1, cap)
    elif client == "paho-mqtt":
        out = run_paho(host, port, n0, n1, cap)
    else:
        raise SystemExit("unknown client %r" % client)
    out["client"] = client
    out["implementation"] = "%s %s" % (sys.implementation.name, sys.version.split()[0])
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
