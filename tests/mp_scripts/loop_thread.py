# The background loop thread (start_loop=True) delivers messages while the main thread
# publishes (its acks are read by the loop thread and handed over by the Signal).
# argv: HOST PORT N
import _thread
import time

from mpcommon import Counter, args, emit, wait_until
from umqtt_paho import Client

host, port, rest = args()
n = int(rest[0])
c = Client("mp-loop", command_timeout=10000)
got = Counter(_thread.get_ident)
c.subscribe("mp/loop/#", got, 2)
c.connect(host, 30, port=port)  # start_loop=True is the default
emit("connected", loop_running=c._loop_running)

main = _thread.get_ident()
t0 = time.ticks_ms()
for i in range(n):
    # QoS 1, 2 and 0 in turn, all delivered at the granted QoS of the filter
    c.publish(b"mp/loop/%d" % (i % 3), b"%d" % i, (1, 2, 0)[i % 3])
ok = wait_until(lambda: len(got.seen) >= n, 20000)
wait_until(lambda: False, 300)  # a duplicate would show now
ms = time.ticks_diff(time.ticks_ms(), t0)
emit(
    "result",
    sent=n,
    received=got.count,
    distinct=len(got.seen),
    dups=got.dups,
    all_on_other_thread=main not in got.threads and len(got.threads) == 1,
    loop_running=c._loop_running,
    ms=ms,
)
c.disconnect(timeout=2000)
emit("stopped", loop_running=c._loop_running, connected=c.connected())
