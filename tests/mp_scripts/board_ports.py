# ports/esp32.py and ports/rp2.py load on the VM and carry a session (their errno tables
# differ; the socket logic is the generic port's). esp32 runs the loop thread (with its
# own stack size), rp2 has no start_thread (cycle() only). argv: HOST PORT
from mpcommon import Counter, args, cycle_until, emit, wait_until
from umqtt_paho import Client, MQTTError
from umqtt_paho.ports import micropython as generic
from umqtt_paho.ports import select

host, port, rest = args()
for name in ("esp32", "rp2"):
    P = select(name)
    threads = P.start_thread is not None
    c = Client("mp-" + name, port=P, command_timeout=5000)
    got = Counter()
    c.subscribe("mp/" + name, got, 1)
    c.connect(host, 30, port=port, start_loop=threads)
    loop_error = None
    if not threads:
        try:
            c.loop()
        except MQTTError as e:
            loop_error = e.code
    for i in range(20):
        c.publish(("mp/" + name).encode(), b"%d" % i, 1 + i % 2)
    if threads:
        wait_until(lambda: len(got.seen) >= 20, 5000)
    else:
        cycle_until(c, lambda: len(got.seen) >= 20, 5000)
    emit(
        name,
        name=P.NAME,
        threads=threads,
        subclass=issubclass(P.Network, generic.Network),
        loop_running=c._loop_running,
        loop_error=loop_error,
        distinct=len(got.seen),
        has_core1=hasattr(P, "start_thread_core1"),
    )
    c.disconnect(timeout=2000)
emit("end")
