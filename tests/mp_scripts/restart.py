# Broker restart: the loop thread fails, loop_failure reconnects with client.reconnect()
# and returns RECOVERED; then a round trip works again. The test restarts mosquitto
# after the "ready" line. argv: HOST PORT
import time

from mpcommon import Counter, args, emit, wait_until
from umqtt_paho import RECOVERED, Client

host, port, rest = args()
state = {"failures": 0, "reconnected": False, "tries": 0}


def loop_failure(client):
    state["failures"] += 1
    emit("loop_failure", error=repr(client.last_error), connected=client.connected())
    deadline = time.ticks_add(time.ticks_ms(), 20000)
    while time.ticks_diff(deadline, time.ticks_ms()) > 0:
        state["tries"] += 1
        rc = client.reconnect()
        if rc == 0:
            state["reconnected"] = True
            emit("reconnected", rc=rc, tries=state["tries"], returns=RECOVERED)
            return RECOVERED
        time.sleep_ms(100)
    emit("gave_up", tries=state["tries"], error=repr(client.last_error))
    return 0


c = Client("mp-restart", command_timeout=3000, cycle_timeout=200)
got = Counter()
c.subscribe("mp/restart", got, 1)
c.connect(host, 30, port=port, loop_failure=loop_failure)
c.publish(b"mp/restart", b"0", 1)
before = wait_until(lambda: 0 in got.seen, 5000)
emit("ready", delivered_before=before)

ok = wait_until(lambda: state["reconnected"], 30000)
emit("after_restart", reconnected=ok, loop_running=c._loop_running, connected=c.connected())
if ok:
    # The subscription was renewed after the CONNACK (clean session): round trip.
    c.publish(b"mp/restart", b"1", 1)
    ok = wait_until(lambda: 1 in got.seen, 5000)
emit(
    "result",
    delivered_after=ok,
    failures=state["failures"],
    tries=state["tries"],
    loop_running=c._loop_running,
)
c.disconnect(timeout=2000)
emit("end")
