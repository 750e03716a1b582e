# ports/circuitpython.py on the MicroPython VM, with CircuitPython's modules EMULATED:
# `supervisor` whose ticks_ms() wraps at 2**29 (and starts 1.5 s before the wrap), and a
# socket pool with socketpool's API (getaddrinfo, socket(af, type), settimeout,
# connect, recv_into raising ETIMEDOUT/EAGAIN on timeout, send) built on MicroPython's
# socket. It checks the port's logic, not CircuitPython itself. argv: HOST PORT
import errno
import select
import socket
import sys
import time

from mpcommon import Counter, args, cycle_until, emit

_PERIOD = 1 << 29
_START = _PERIOD - 1500
_base = time.ticks_ms()


class FakeSupervisor:
    @staticmethod
    def ticks_ms():
        return (time.ticks_diff(time.ticks_ms(), _base) + _START) & (_PERIOD - 1)


class FakeSocket:
    def __init__(self, af, kind):
        self._s = socket.socket(af, kind)
        self._timeout = None
        self._p = None

    def settimeout(self, t):
        self._timeout = t

    def connect(self, addr):
        self._s.connect(addr)  # loopback: at once
        self._s.setblocking(False)
        self._p = select.poll()
        self._p.register(self._s, select.POLLIN)

    def recv_into(self, buf, n):
        got = self._s.readinto(buf, n)
        if got is None and self._timeout:
            self._p.poll(int(self._timeout * 1000))
            got = self._s.readinto(buf, n)
        if got is None:
            raise OSError(errno.EAGAIN if not self._timeout else errno.ETIMEDOUT)
        return got

    def send(self, data):
        n = self._s.write(data)
        if n is None:
            raise OSError(errno.EAGAIN)
        return n

    def close(self):
        self._s.close()


class FakePool:
    SOCK_STREAM = socket.SOCK_STREAM

    def getaddrinfo(self, host, port, family=0, kind=0):
        return socket.getaddrinfo(host, port, family, kind)

    def socket(self, af, kind):
        return FakeSocket(af, kind)


sys.modules["supervisor"] = FakeSupervisor

from umqtt_paho import Client, MQTTError  # noqa: E402
from umqtt_paho.ports import circuitpython as cp  # noqa: E402

host, port, rest = args()
T = _PERIOD
emit(
    "ticks",
    start=cp.ticks_ms(),
    diff_across_wrap=cp.ticks_diff(5, T - 5),
    diff_back=cp.ticks_diff(T - 5, 5),
    add_wrap=cp.ticks_add(T - 1, 2),
    add_neg=cp.ticks_add(1, -2),
    threads=cp.start_thread is not None,
)

c = Client("mp-cp", port=cp, command_timeout=5000)
try:
    c.connect(host, 1, port=port, start_loop=False)
    no_pool = None
except RuntimeError as e:
    no_pool = str(e)
cp.configure(FakePool())
got = Counter()
c.subscribe("mp/cp", got, 2)
t0 = cp.ticks_ms()
c.connect(host, 1, port=port, start_loop=False)
try:
    c.loop()
    loop_error = None
except MQTTError as e:
    loop_error = e.code
for i in range(50):
    c.publish(b"mp/cp", b"%d" % i, 1 + i % 2)
cycle_until(c, lambda: len(got.seen) >= 50, 5000)
cycle_until(c, lambda: False, 3000)  # idle across the tick wrap: keepalive 1 s
emit(
    "result",
    no_pool=no_pool,
    loop_error=loop_error,
    distinct=len(got.seen),
    dups=got.dups,
    connected=c.connected(),
    wrapped=cp.ticks_ms() < t0,
    elapsed=cp.ticks_diff(cp.ticks_ms(), t0),
)
c.disconnect()
emit("end")
