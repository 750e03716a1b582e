# ports/stream.py: the application makes the connection itself (as it would on an
# Ethernet, PPP or modem interface) and hands the stream to the client, which carries a
# QoS 1/2 session over it. argv: HOST PORT
import socket

from mpcommon import Counter, args, cycle_until, emit
from umqtt_paho import Client
from umqtt_paho.ports import stream

host, port, rest = args()
made = []


def connect(h, p, timeout_ms):
    s = socket.socket()
    s.connect(socket.getaddrinfo(h, p)[0][-1])
    made.append((h, p, timeout_ms))
    return s


P = stream.make(connect, "modem")
c = Client("mp-stream", port=P, command_timeout=5000)
got = Counter()
c.subscribe("mp/stream", got, 2)
c.connect(host, 30, port=port, start_loop=False)
for i in range(20):
    c.publish(b"mp/stream", b"%d" % i, 1 + i % 2)
cycle_until(c, lambda: len(got.seen) >= 20, 5000)
emit("result", name=P.NAME, opened=len(made), timeout=made[0][2], distinct=len(got.seen))
c.disconnect(timeout=2000)
emit("end")
