# Steady-state heap allocation of the CLIENT on the real VM (reported, not a port
# property): publish with bytes topic and payload at QoS 0 and 1, and an idle cycle().
# argv: HOST PORT
import gc

from mpcommon import args, emit
from umqtt_paho import Client

host, port, rest = args()
c = Client("mp-alloc", command_timeout=5000)
c.connect(host, 60, port=port, start_loop=False)
topic = b"mp/alloc"
payload = b"x" * 64


def measure(fn, k):
    for _ in range(3):
        fn()
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    for _ in range(k):
        fn()
    b = gc.mem_alloc()
    gc.enable()
    return (b - a) // k


q0 = measure(lambda: c.publish(topic, payload, 0), 50)
q1 = measure(lambda: c.publish(topic, payload, 1), 50)
cy = measure(lambda: c.cycle(1), 20)
emit("result", qos0_per_publish=q0, qos1_per_publish=q1, idle_cycle=cy)
c.disconnect()
emit("end")
