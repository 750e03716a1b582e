# The CircuitPython port. CircuitPython has no `socket` module: sockets come from a
# socketpool.SocketPool that the board code makes after WiFi is up, and TLS from an
# ssl.SSLContext. Give them to this port once, before connect():
#
#     import socketpool, ssl, wifi
#     from umqtt_paho.ports import circuitpython as port
#     port.configure(socketpool.SocketPool(wifi.radio), ssl.create_default_context())
#     client = Client("id", port=port)   # or port=None: chosen automatically
#     client.connect(host, 60, port=8883, ssl_ctx=True, start_loop=False)
#
# ssl_ctx in connect(): an SSLContext is used as given; True means the context given to
# configure() (a default context if none was); None means plain TCP.
#
# The contract is the one in ports/cpython.py. CircuitPython specifics:
# - socketpool sockets mirror CPython's: settimeout(s), recv_into(buf, n) (returns what
#   is there, 0 at end of stream), send(buf) -> count. A timeout raises OSError
#   ETIMEDOUT (or EAGAIN with timeout 0): read_into returns 0 for it, and raises at EOF.
# - TLS: wrap_socket() goes BEFORE connect(); the SSLSocket's connect() does the TCP
#   connect and the handshake, under the socket timeout (the time left).
# - No threads: start_thread is None; drive the client with client.cycle().
# - supervisor.ticks_ms() wraps at 2**29: ticks_diff/ticks_add are wrap-safe (the
#   adafruit_ticks arithmetic).

from micropython import const
import errno
import time

import supervisor

NAME = "circuitpython"

_TICKS_MAX = const(0x1FFFFFFF)  # period 2**29
_TICKS_HALF = const(0x10000000)

_pool = None
_ssl_context = None


def configure(pool, ssl_context=None):
    """The socketpool.SocketPool (and optionally ssl.SSLContext) to connect with."""
    global _pool, _ssl_context
    _pool = pool
    _ssl_context = ssl_context


# ---- clock ------------------------------------------------------------------------------

ticks_ms = supervisor.ticks_ms


def ticks_add(t, delta):
    return (t + delta) & _TICKS_MAX


def ticks_diff(a, b):
    # a - b in -2**28 .. 2**28-1, across the wrap
    return ((((a - b) & _TICKS_MAX) + _TICKS_HALF) & _TICKS_MAX) - _TICKS_HALF


def sleep_ms(ms):
    if ms > 0:
        time.sleep(ms / 1000)


# ---- threads: none ----------------------------------------------------------------------

start_thread = None


def thread_id():
    return 0


from .nothreads import allocate_lock  # noqa: E402, F401  (`with` works, locks nothing)


class Network:
    # EAGAIN (timeout 0), ETIMEDOUT as MicroPython numbers it (110) and as ESP-IDF
    # does (116), whichever the firmware reports.
    _busy = (11, 110, 116)

    def __init__(self, pool=None):
        self._pool = pool
        self.sock = None
        self._timeout = -1

    def open(self, host, port, ssl_ctx, timeout_ms):
        pool = self._pool if self._pool is not None else _pool
        if pool is None:
            raise RuntimeError(
                "no socket pool: call umqtt_paho.ports.circuitpython.configure("
                "socketpool.SocketPool(wifi.radio)) first"
            )
        deadline = ticks_add(ticks_ms(), timeout_ms)
        ai = pool.getaddrinfo(host, port, 0, pool.SOCK_STREAM)[0]
        sock = pool.socket(ai[0], ai[1])
        try:
            if ssl_ctx is True:
                ssl_ctx = _ssl_context
                if ssl_ctx is None:
                    import ssl

                    ssl_ctx = ssl.create_default_context()
            if ssl_ctx is not None:
                # server_hostname: SNI, and the name the certificate is checked against
                sock = ssl_ctx.wrap_socket(sock, server_hostname=host)
            left = ticks_diff(deadline, ticks_ms())
            if left <= 0:
                raise OSError(errno.ETIMEDOUT, "connect to %s:%d timed out" % (host, port))
            sock.settimeout(left / 1000)
            sock.connect(ai[4])
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._timeout = -1

    def _settimeout(self, ms):
        if ms != self._timeout:
            self.sock.settimeout(ms / 1000 if ms > 0 else 0)
            self._timeout = ms

    def read_into(self, buf, n, timeout_ms):
        if self.sock is None:
            raise OSError(errno.ENOTCONN, "not connected")
        if n <= 0:
            return 0
        self._settimeout(timeout_ms if timeout_ms > 0 else 0)
        try:
            got = self.sock.recv_into(buf, n)
        except OSError as e:
            if e.errno in self._busy:
                return 0
            raise
        if not got:
            raise OSError(errno.ECONNRESET, "connection closed by the broker")
        return got

    def write(self, buf, n, timeout_ms):
        if self.sock is None:
            raise OSError(errno.ENOTCONN, "not connected")
        mv = memoryview(buf)
        off = 0
        deadline = ticks_add(ticks_ms(), timeout_ms)
        while off < n:
            left = ticks_diff(deadline, ticks_ms())
            if left <= 0:
                raise OSError(
                    errno.ETIMEDOUT,
                    "write timed out after %d ms (%d of %d bytes sent)" % (timeout_ms, off, n),
                )
            self._settimeout(left)
            try:
                sent = self.sock.send(mv[off:n])
            except OSError as e:
                if e.errno not in self._busy:
                    raise
                sent = 0
            if sent:
                off += sent
            else:
                sleep_ms(1)

    def close(self):
        sock = self.sock
        self.sock = None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
