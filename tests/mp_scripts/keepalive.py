# keepalive=1, then 3.5 s with no application traffic; the client must send PINGREQs
# (the loop thread, or cycle() calls) and still be connected. argv: HOST PORT MODE
# with MODE "loop" (background thread) or "cycle" (main loop calling cycle()).
import time

from mpcommon import Counter, args, cycle_until, emit, wait_until
from umqtt_paho import Client

host, port, rest = args()
mode = rest[0]
cid = "mp-keepalive-" + mode
c = Client(cid, command_timeout=5000)
got = Counter()
c.subscribe("mp/ka", got, 1)
c.connect(host, 1, port=port, start_loop=(mode == "loop"))
emit("connected", client_id=cid)

t0 = time.ticks_ms()
if mode == "loop":
    time.sleep_ms(3500)  # idle: only the loop thread works
else:
    cycle_until(c, lambda: False, 3500)
emit(
    "idle_done",
    ms=time.ticks_diff(time.ticks_ms(), t0),
    connected=c.connected(),
    last_error=repr(c.last_error),
)

# Still usable: a QoS 1 round trip.
c.publish(b"mp/ka", b"1", 1)
if mode == "loop":
    ok = wait_until(lambda: got.count >= 1, 5000)
else:
    ok = cycle_until(c, lambda: got.count >= 1, 5000)
emit("result", connected=c.connected(), delivered=ok)
c.disconnect(timeout=2000)
emit("end")
