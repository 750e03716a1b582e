# umqtt_paho.aio with TLS on MicroPython's asyncio (tests/test_mp_unix.py, MicroPython
# 1.29 with ssl, against the mosquitto TLS fixture). argv: case host port ca.der
# other_ca.der; prints one JSON line {"event": "result", ...}.
#   verified   CA given: publish and receive one QoS 1 message back
#   wrong_ca   the server's certificate checked against another CA: must fail
#   insecure   verify_mode CERT_NONE: refused, then accepted with tls_insecure
#   stall      a peer that accepts TCP and never answers the handshake (port = it)
import asyncio
import json
import ssl
import sys
import time

from umqtt_paho.aio import Client
from umqtt_paho.packet import MQTTError

case, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
ca, other_ca = sys.argv[4:6]


def context(ca_path, verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.verify_mode = ssl.CERT_REQUIRED
        with open(ca_path, "rb") as f:
            ctx.load_verify_locations(cadata=f.read())
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def attempt(ctx, insecure=False, timeout=5000):
    got = []
    c = Client("aio-tls-" + case, command_timeout=timeout)
    c.tls_insecure = insecure
    t0 = time.ticks_ms()
    try:
        await c.connect(host, 30, port=port, ssl_ctx=ctx, reconnect=False)
    except MQTTError as e:
        return {"ok": False, "error": "MQTTError", "code": e.code, "text": str(e),
                "ms": time.ticks_diff(time.ticks_ms(), t0)}
    except OSError as e:
        return {"ok": False, "error": "OSError", "errno": e.errno, "text": str(e),
                "ms": time.ticks_diff(time.ticks_ms(), t0)}
    await c.subscribe("aio-tls/echo", lambda cl, p, t: got.append(p), 1)
    await c.publish("aio-tls/echo", b"over TLS", 1)
    for _ in range(50):
        if got:
            break
        await asyncio.sleep_ms(100)
    await c.disconnect()
    return {"ok": True, "echo": [p.decode() for p in got]}


async def main():
    out = {"event": "result", "case": case}
    if case in ("verified", "wrong_ca"):
        out["result"] = await attempt(context(ca if case == "verified" else other_ca))
    elif case == "insecure":
        out["refused"] = await attempt(context(ca, verify=False))
        out["result"] = await attempt(context(ca, verify=False), insecure=True)
    elif case == "stall":
        out["result"] = await attempt(context(ca), timeout=1500)
    print(json.dumps(out))


asyncio.run(main())
