# QoS 0/1/2 round trip on one client without the loop thread: subscribe, publish N
# numbered messages, read until all came back. argv: HOST PORT QOS N
import sys
import time

from mpcommon import Counter, args, cycle_until, emit
from umqtt_paho import Client

host, port, rest = args()
qos = int(rest[0])
n = int(rest[1])

emit("start", impl=sys.implementation.name, version=list(sys.implementation.version))
c = Client("mp-roundtrip-%d" % qos, command_timeout=10000)
port_name = c._port.NAME
got = Counter()
topic = "mp/rt/%d" % qos
c.subscribe(topic, got, qos)
rc = c.connect(host, 30, port=port, start_loop=False)
emit("connected", rc=rc, port=port_name, granted=c._handlers[0][3])

t0 = time.ticks_ms()
pids = []
tb = topic.encode()
for i in range(n):
    pids.append(c.publish(tb, b"%d" % i, qos))
cycle_until(c, lambda: len(got.seen) >= n, 20000)
# A little longer, so that a duplicate delivery would be seen too.
cycle_until(c, lambda: False, 300)
ms = time.ticks_diff(time.ticks_ms(), t0)
emit(
    "result",
    qos=qos,
    sent=n,
    received=got.count,
    distinct=len(got.seen),
    dups=got.dups,
    missing=[i for i in range(n) if i not in got.seen][:20],
    topics=sorted(got.topics),
    pids_unique=len(set(pids)) if qos else 0,
    ms=ms,
    connected=c.connected(),
)
c.disconnect()
emit("end")
