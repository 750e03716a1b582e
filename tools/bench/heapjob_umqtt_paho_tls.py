# The telemetry job (tools/bench/heapjob.py) for umqtt_paho over TLS: the job of
# heapjob_umqtt_paho.py against a TLS broker, the broker's certificate verified against
# the CA in ca.der (DER, what MicroPython's ssl loads; put in the library folder, the
# job's current directory).
#   MICROPYPATH=<lib> micropython -X heapsize=N heapjob_umqtt_paho_tls.py HOST PORT
# Run on a MicroPython whose mbedtls allocates from the GC heap, as on the Pico W
# (tools/build_mp_unix.sh m32tls), the figure includes mbedtls' buffers and state.
import sys

try:
    import ssl
except ImportError:  # a firmware without micropython-lib's ssl.py: its C module
    import tls as ssl

from umqtt_paho import Client

got = [0]


def on_cmd(client, payload, topic):
    got[0] += 1


def context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    with open("ca.der", "rb") as f:
        ca = f.read()
    if ssl.__name__ == "tls":
        ctx.load_verify_locations(ca)
    else:
        ctx.load_verify_locations(cadata=ca)
    return ctx


def main(host, port):
    c = Client("heapjob-tls", cycle_timeout=100, command_timeout=5000)
    c.connect(host, 30, port=port, ssl_ctx=context(), start_loop=False)
    c.subscribe(b"job/cmd", on_cmd, 1)
    reading = bytearray(64)
    sent = 0
    for i in range(1, 201):
        reading[0] = i & 0xFF
        c.publish(b"job/telemetry", reading, 1)
        if i % 20 == 0:
            c.publish(b"job/cmd", b"blink", 1)
            sent += 1
            for _ in range(50):
                if got[0] >= sent:
                    break
                c.cycle(100)
            if got[0] != sent:
                raise RuntimeError("command %d not received" % sent)
    c.disconnect()
    print("JOB OK", got[0])


main(sys.argv[1], int(sys.argv[2]))
