# The port contract of ports/micropython.py on the real VM, against a scripted TCP
# server that the test runs (one connection per step, in this order):
#   1 "eof":   sends b"abc" after 300 ms, closes 300 ms later
#   2 "stall": accepts and never reads
#   3 "echo":  echoes everything back
# argv: HOST PORT REFUSED_PORT
import errno
import gc
import time

from mpcommon import args, emit
from umqtt_paho.ports import select as select_port

host, port, rest = args()
refused_port = int(rest[0])
P = select_port()
emit("port", name=P.NAME, threads=P.start_thread is not None)


def ms_since(t):
    return time.ticks_diff(time.ticks_ms(), t)


# -- a refused connect raises at once, with the reason
t = time.ticks_ms()
try:
    P.Network().open(host, refused_port, None, 2000)
    emit("refused", raised=None)
except OSError as e:
    emit("refused", raised=e.errno, econnrefused=errno.ECONNREFUSED, ms=ms_since(t))

# -- 1: timeout returns 0; data; EOF raises
net = P.Network()
net.open(host, port, None, 2000)
buf = bytearray(8)
mv = memoryview(buf)
t = time.ticks_ms()
n0 = net.read_into(mv, 8, 100)
t0 = ms_since(t)
n1 = 0
while n1 == 0 and ms_since(t) < 3000:
    n1 = net.read_into(mv, 8, 1000)
data = bytes(buf[:n1])
t = time.ticks_ms()
eof = None
try:
    while ms_since(t) < 3000:
        if net.read_into(mv, 8, 1000):
            eof = "more data"
            break
    else:
        eof = "no EOF"
except OSError as e:
    eof = e.errno
emit(
    "eof",
    timeout_ret=n0,
    timeout_ms=t0,
    data=data.decode(),
    eof_errno=eof,
    eof_ms=ms_since(t),
    econnreset=errno.ECONNRESET,
)
net.close()
try:
    net.read_into(mv, 8, 10)
    after_close = None
except OSError as e:
    after_close = e.errno
net.close()  # idempotent
emit("closed", read_after_close=after_close)

# -- 2: a peer that never reads: partial writes, then ETIMEDOUT within the bound
net = P.Network()
net.open(host, port, None, 2000)
chunk = bytearray(65536)
total = 0
err = None
spent = 0
while total < 256 * 1024 * 1024:
    t = time.ticks_ms()
    try:
        net.write(chunk, len(chunk), 300)
    except OSError as e:
        err = e.errno
        spent = ms_since(t)
        msg = str(e)
        break
    total += len(chunk)
emit("stall", written=total, errno=err, etimedout=errno.ETIMEDOUT, ms=spent, msg=msg)
net.close()

# -- 3: echo; allocation of write and read_into in steady state
net = P.Network()
net.open(host, port, None, 2000)
out = bytearray(b"0123456789abcdef" * 4)
inb = bytearray(64)
inv = memoryview(inb)


def roundtrip(k):
    for _ in range(k):
        net.write(out, 64, 1000)
        got = 0
        while got < 64:
            got += net.read_into(inv[got:] if got else inv, 64 - got, 1000)


def idle(k):
    for _ in range(k):
        net.read_into(inv, 64, 1)


roundtrip(5)
idle(2)
gc.collect()
gc.disable()
a0 = gc.mem_alloc()
roundtrip(200)
a1 = gc.mem_alloc()
idle(50)
a2 = gc.mem_alloc()
gc.enable()
emit("alloc", roundtrip_bytes=a1 - a0, idle_bytes=a2 - a1, echoed=bytes(inb) == bytes(out))
net.close()

# -- the loop thread's Signal on this port (umqtt_paho/threadloop.py: MicroPython ports
#    have none of their own): a wait returns at once after notify(), else after its timeout
from umqtt_paho.threadloop import _PollSignal  # noqa: E402

s = _PollSignal(P)
g = s.gen
t = time.ticks_ms()
s.wait(g, 50)
waited = ms_since(t)
s.notify()
t = time.ticks_ms()
s.wait(g, 1000)
emit("signal", timeout_ms=waited, notified_ms=ms_since(t), gen=s.gen)
emit("end")
