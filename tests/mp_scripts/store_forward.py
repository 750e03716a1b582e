# Store and forward on MicroPython (unix port), cycle() mode as on a board without
# threads: a FlashLog on the unix filesystem, an outage, a reset in the middle of it
# (the Client and its FlashLog are dropped without disconnect() or sync; a new FlashLog
# and a new Client open the same directory), then the backlog goes out.
# argv: HOST PORT LOGDIR N. HOST:PORT is the test's fault proxy; the test starts the
# outage on the "phase1" event and ends it on the "want_online" event.
import gc
import time

from mpcommon import args, cycle_until, emit
from umqtt_paho import Client, MQTTError
from umqtt_paho.flashlog import FlashLog
from umqtt_paho.reconnect import ReconnectPolicy

host, port, rest = args()
logdir = rest[0]
n = int(rest[1])
LIVE = n // 5  # while connected
RESET = n * 3 // 5  # readings before the reset (the rest of them during the outage)
ONLINE = n * 4 // 5  # readings before the outage ends (after the reset, still offline)
TOPIC = b"mp/sf"
state = {"queued": 0, "direct": 0, "raised": 0, "acked": 0}


def on_publish(client, pid):
    state["acked"] += 1


def boot():
    log = FlashLog(logdir)
    c = Client("mp-sf", clean_session=False, store=log, command_timeout=3000, cycle_timeout=50)
    c.on_publish = on_publish
    return c, log


def reading(c, i):
    try:
        pid = c.publish(TOPIC, b"%d" % i, 1, wait=False)
    except (MQTTError, OSError):
        state["raised"] += 1  # must never happen: the log takes every reading
        return
    if pid:
        state["direct"] += 1
    else:
        state["queued"] += 1


def connect(c, timeout_ms):
    # The application's connect, retried every 100 ms while the broker is unreachable.
    deadline = time.ticks_add(time.ticks_ms(), timeout_ms)
    tries = 0
    while True:
        tries += 1
        try:
            c.connect(
                host,
                10,
                port=port,
                start_loop=False,
                loop_failure=ReconnectPolicy(base_ms=50, cap_ms=300, blocking=False),
            )
            return tries
        except (MQTTError, OSError):
            if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                raise
            time.sleep_ms(100)


c, log = boot()
emit("booted", logged=len(log))
connect(c, 5000)
for i in range(LIVE):
    reading(c, i)
    c.cycle(5)
ok = cycle_until(c, lambda: c.pending() == 0, 5000)
emit("phase1", flushed=ok, acked=state["acked"])

# The test starts the outage now: the link is cut, every reconnect is refused.
ok = cycle_until(c, lambda: not c.connected(), 10000)
t_out = time.ticks_ms()
emit("offline", detected=ok)
for i in range(LIVE, RESET):
    reading(c, i)
    c.cycle(10)  # fails (not connected); the policy retries now and then
pending_at_reset = c.pending()

# Reset: no disconnect(), no sync(); the RAM state is gone.
c = log = None
gc.collect()
c, log = boot()
recovered = len(log)
emit("reset", pending=pending_at_reset, recovered=recovered)
for i in range(RESET, ONLINE):
    reading(c, i)
    time.sleep_ms(10)
t_want = time.ticks_ms()
emit("want_online", outage_ms=time.ticks_diff(t_want, t_out))

tries = connect(c, 10000)
t_up = time.ticks_ms()
for i in range(ONLINE, n):
    reading(c, i)
    c.cycle(5)
ok = cycle_until(c, lambda: c.pending() == 0, 20000)
t_done = time.ticks_ms()
emit(
    "result",
    flushed=ok,
    pending=c.pending(),
    logged=len(log),
    recovered=recovered,
    connect_tries=tries,
    connect_ms=time.ticks_diff(t_up, t_want),
    flush_ms=time.ticks_diff(t_done, t_up),
    queued=state["queued"],
    direct=state["direct"],
    raised=state["raised"],
    acked=state["acked"],
)
c.disconnect()
emit("end")
