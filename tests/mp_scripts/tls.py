# TLS on MicroPython (run by tests/test_mp_unix.py on a MicroPython with `ssl`, against
# the mosquitto TLS fixture). argv: case host port ca.der client.der client_key.der
# other_ca.der; prints one JSON line {"event": "result", ...}.
#   verified   CA given, publish and receive one QoS 1 message back
#   mutual     as verified, with a client certificate (require_certificate broker)
#   no_client  the same broker, without a client certificate: must fail
#   wrong_ca   the server's certificate checked against another CA: must fail
#   insecure   verify_mode CERT_NONE: refused, then accepted with tls_insecure
#   stall      a peer that accepts TCP and never answers the handshake (port = it)
import json
import ssl
import sys
import time

from umqtt_paho import Client, MQTTError

case, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
ca, cert, key, other_ca = sys.argv[4:8]


def der(path):
    with open(path, "rb") as f:
        return f.read()


def context(ca_path, client=False, verify=True):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=der(ca_path))
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if client:
        ctx.load_cert_chain(der(cert), der(key))
    return ctx


def attempt(ctx, insecure=False, timeout=5000):
    """Connect and publish one QoS 1 message to ourselves: what happened."""
    got = []
    c = Client("tls-" + case, command_timeout=timeout)
    c.tls_insecure = insecure
    t0 = time.ticks_ms()
    try:
        c.connect(host, 30, port=port, ssl_ctx=ctx, start_loop=False)
    except MQTTError as e:
        return {"ok": False, "error": "MQTTError", "code": e.code, "text": str(e),
                "ms": time.ticks_diff(time.ticks_ms(), t0)}
    except OSError as e:
        return {"ok": False, "error": "OSError", "errno": e.errno, "text": str(e),
                "ms": time.ticks_diff(time.ticks_ms(), t0)}
    c.subscribe("tls/echo/" + case, lambda cl, p, t: got.append(p), 1)
    c.publish("tls/echo/" + case, b"over TLS", 1)
    for _ in range(50):
        if got:
            break
        c.cycle(100)
    c.disconnect()
    return {"ok": True, "echo": [p.decode() for p in got]}


out = {"event": "result", "case": case}
if case in ("verified", "wrong_ca"):
    out["result"] = attempt(context(ca if case == "verified" else other_ca))
elif case in ("mutual", "no_client"):
    out["result"] = attempt(context(ca, client=case == "mutual"))
elif case == "insecure":
    out["refused"] = attempt(context(ca, verify=False))
    out["result"] = attempt(context(ca, verify=False), insecure=True)
elif case == "stall":
    out["result"] = attempt(context(ca), timeout=1500)
print(json.dumps(out))
