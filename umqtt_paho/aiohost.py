# umqtt_paho.aiohost: what umqtt_paho.aio needs on CPython, where asyncio has no task
# queue to park a task on and no raw non-blocking socket under its streams. Loaded by
# aio.py on CPython only, so none of it is loaded on a board.

import asyncio
import time

_READ = -1  # aio.py's park kinds
_IDLE = -3


def ticks():
    return time.monotonic_ns() // 1000000


def ticks_diff(a, b):
    return a - b


def ticks_add(a, b):
    return a + b


def sleep_ms(ms):
    return asyncio.sleep(ms / 1000)


class Park:
    """aio.py's MicroPython _Park over a future: `await` it. _READ: until the link has
    bytes; _IDLE: until wake() or the deadline; slot i >= 0: until wake() or the
    deadline, then c._acked(i, deadline) decides (done, sleep on, or it raises)."""

    def __init__(self, c, i):
        self.c = c
        self.i = i
        self.fut = None
        self.deadline = 0

    def __await__(self):
        return self.wait().__await__()

    async def wait(self):
        if self.i == _READ:
            await self.c._net.fill()
            return
        loop = asyncio.get_running_loop()
        while True:
            f = self.fut = loop.create_future()
            h = loop.call_later(max(0, self.deadline - ticks()) / 1000, self.wake)
            try:
                await f
            finally:
                h.cancel()
                self.fut = None
            if self.i < 0 or self.c._acked(self.i, self.deadline):
                return

    def wake(self):
        f = self.fut
        if f is not None and not f.done():
            f.set_result(None)


class StreamNet:
    """An asyncio stream pair with the calls aio.py makes on MicroPython's non-blocking
    socket: readinto(buf, n) and write(buf, n); readinto gives None when nothing is
    there yet (then `await fill()`), 0 at the end."""

    def __init__(self, reader, writer):
        self.r = reader
        self.w = writer
        self.buf = b""
        self.off = 0

    def readinto(self, buf, n):
        b = self.buf
        if b is None:
            return 0
        k = min(n, len(b) - self.off)
        if k <= 0:
            return None
        buf[:k] = b[self.off : self.off + k]
        self.off += k
        return k

    async def fill(self):
        data = await self.r.read(4096)
        self.buf = data or None
        self.off = 0

    def write(self, buf, n):
        self.w.write(bytes(buf[:n]))
        return n

    def close(self):
        self.w.close()


async def open_link(c, host, port, ctx):
    """Open c's link (TLS with ctx) within command_timeout: c._net."""
    try:
        r, w = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ctx), c._command_timeout / 1000
        )
    except asyncio.TimeoutError:
        raise OSError(110, "connect to %s:%d timed out" % (host, port))  # ETIMEDOUT
    try:
        w.get_extra_info("socket").setsockopt(6, 1, 1)  # TCP_NODELAY: a PUBLISH, a segment
    except Exception:
        pass
    c._net = StreamNet(r, w)
