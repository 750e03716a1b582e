# The generic MicroPython port: the unix port and any board with `socket` and `select`
# (ESP32 and RP2 subclass it in esp32.py and rp2.py for their quirks). The contract is
# the one in ports/cpython.py: Network().open/read_into/write/close, ticks_ms/ticks_diff/
# ticks_add/sleep_ms, allocate_lock/thread_id/start_thread.
#
# How the socket is driven (facts checked on MicroPython 1.25, unix port, and read in
# its sources: py/stream.c, extmod/modselect.c, extmod/modlwip.c, extmod/modtls_mbedtls.c,
# ports/esp32/modsocket.c):
# - The socket is non-blocking from connect() on, and every wait is a select.poll with
#   the time left. No socket timeout is used for data: on a blocking socket with a
#   timeout, stream readinto(buf, n) reads until n bytes and, if the timeout strikes
#   after some bytes, raises ETIMEDOUT and LOSES them (mp_stream_rw keeps only
#   non-blocking errors). Non-blocking readinto(buf, n) instead returns
#     None  nothing there yet (EAGAIN),
#     k>0   what was there (it stops at EAGAIN),
#     0     end of stream: the broker closed. read_into RAISES OSError then, so a
#           timeout (returns 0) and EOF can never be confused.
# - Writes use stream write(buf, off, len): no memoryview slice per call; it returns
#   the count written, or None when the socket buffer is full (then poll POLLOUT).
# - Polling uses ipoll(), which yields one poller-owned tuple: no allocation per read.
#   A read first tries the socket, and polls only if nothing was there: this also
#   covers TLS records that mbedtls has already decrypted into its own buffer.
# - connect(): non-blocking connect (EINPROGRESS), then poll POLLOUT. A refused or
#   unreachable connect shows as POLLERR/POLLHUP (unix: POLLOUT|POLLERR|POLLHUP; lwIP:
#   POLLERR without POLLOUT); a second connect() does not report the reason on lwIP
#   (EALREADY), but a non-blocking read does (ECONNREFUSED...), so that is the probe.
# - TLS: a bounded handshake in ports/tlswrap.py (loaded only by boards that use TLS),
#   then the TLS stream is driven like the socket.
# - getaddrinfo() cannot be bounded on MicroPython (no timeout argument; lwIP's DNS
#   gives up on its own after its retries). Pass an IP address to avoid DNS.
# - close() cannot wake a thread blocked in poll (no shutdown() on these sockets): a
#   reader notices at the end of its poll timeout (the client's cycle_timeout), when
#   the read on the closed socket raises.
# - Threads: _thread if the firmware has it (start_thread None otherwise). No
#   condition variables on MicroPython, so no Signal here: the client's loop thread
#   (umqtt_paho/threadloop.py) wakes waiters through a counter they poll every 1 ms.

from micropython import const
import errno
import socket
import time

import select

try:
    import _thread
except ImportError:
    _thread = None

NAME = "micropython"

_POLLIN = const(0x0001)
_POLLOUT = const(0x0004)
_POLLERR = const(0x0008)
_POLLHUP = const(0x0010)
_POLLNVAL = const(0x0020)
_IPPROTO_TCP = const(6)  # the same number on every stack, named or not
_TCP_NODELAY = const(1)

ticks_ms = time.ticks_ms
ticks_diff = time.ticks_diff
ticks_add = time.ticks_add
sleep_ms = time.sleep_ms


# ---- threads ----------------------------------------------------------------------------


if _thread is not None:
    allocate_lock = _thread.allocate_lock
    thread_id = _thread.get_ident
    start_thread = _thread.start_new_thread  # (fn, args)
else:
    from .nothreads import allocate_lock  # noqa: F401  (`with` works, locks nothing)

    thread_id = int  # int() is 0: the one thread
    start_thread = None


# ---- network ----------------------------------------------------------------------------


def _poll(poller, timeout_ms):
    # The event mask of the one registered socket within timeout_ms, or 0. ipoll
    # yields a tuple owned by the poller: nothing is allocated.
    for entry in poller.ipoll(timeout_ms):
        return entry[1]
    return 0


def _timeout(what, host, port, ms):
    return OSError(errno.ETIMEDOUT, "%s %s:%d timed out after %d ms" % (what, host, port, ms))


class Network:
    """One TCP (optionally TLS) connection to a broker, non-blocking, polled.

    Subclasses (esp32.py, rp2.py) change only the errno tables below.
    """

    sock = None
    _wpoll = None  # made by the first write that finds the socket buffer full
    # errnos a read or write on the non-blocking socket may raise that mean "not yet":
    # EAGAIN; ETIMEDOUT (a leftover socket timeout); -110: mbedtls passes the socket's
    # ETIMEDOUT through negated (modtls_mbedtls.c `return -err`).
    _busy = (11, 110, -110)
    # errnos of a non-blocking connect() that is under way: EINPROGRESS, EAGAIN, EALREADY
    _connecting = (115, 11, 114)
    # errnos that mean a timed out TLS handshake (socket timeout, plain or negated)
    _timedout = (110, -110)

    def open(self, host, port, ssl_ctx, timeout_ms):
        deadline = ticks_add(ticks_ms(), timeout_ms)
        err = sock = None
        for ai in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
            left = ticks_diff(deadline, ticks_ms())
            if left <= 0:
                break
            sock = socket.socket(ai[0], ai[1], ai[2])
            try:
                # Non-blocking connect, then a poll for POLLOUT within the time left.
                sock.setblocking(False)
                try:
                    sock.connect(ai[-1])
                except OSError as e:
                    if e.errno not in self._connecting:
                        raise
                p = select.poll()
                p.register(sock, _POLLOUT)
                ev = _poll(p, left)
                p.unregister(sock)
                if ev == 0:
                    raise _timeout("TCP connect to", host, port, left)
                if not ev & _POLLOUT or ev & (_POLLERR | _POLLHUP | _POLLNVAL):
                    # Failed: a non-blocking read raises the reason (the broker sends
                    # nothing first); writable with nothing pending: connected after all.
                    try:
                        got = sock.readinto(bytearray(1), 1)
                    except OSError as e:
                        if e.errno not in self._busy:
                            raise
                        got = None
                    if got is not None or not ev & _POLLOUT:
                        raise OSError(errno.ECONNREFUSED, "connect to %s:%d failed" % (host, port))
                break
            except OSError as e:
                sock.close()
                sock = None
                err = e
        if sock is None:
            raise err or _timeout("connect to", host, port, timeout_ms)
        # One PUBLISH is one write: don't let Nagle hold it back for a delayed ACK.
        try:
            sock.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
        except Exception:  # a stack without the option (modlwip): harmless
            pass
        if ssl_ctx is not None:
            from .tlswrap import wrap  # only boards that use TLS load it

            sock = wrap(sock, ssl_ctx, host, ticks_diff(deadline, ticks_ms()), self._timedout)
        self._setup(sock, p)

    def _setup(self, sock, p=None):
        # A connected, non-blocking stream, and its poll for reading (p: open()'s
        # poller of the connect, emptied: one poller less to allocate).
        if p is None:
            p = select.poll()
        p.register(sock, _POLLIN)
        self._rpoll = p
        self.sock = sock

    def read_into(self, buf, n, timeout_ms):
        sock = self.sock
        if sock is None:
            raise OSError(errno.ENOTCONN, "not connected")
        if n <= 0:
            return 0  # readinto(buf, 0) would return 0, which means EOF
        try:
            got = sock.readinto(buf, n)
            if got is None:
                if timeout_ms <= 0 or not _poll(self._rpoll, timeout_ms):
                    return 0  # timed out: nothing arrived
                got = sock.readinto(buf, n)  # readable, EOF or error: find out which
        except OSError as e:
            if e.errno in self._busy:
                return 0
            raise
        if got is None:
            return 0  # woken, but nothing to read yet (e.g. half a TLS record)
        if got == 0:
            raise OSError(errno.ECONNRESET, "connection closed by the broker")
        return got

    def write(self, buf, n, timeout_ms):
        sock = self.sock
        if sock is None:
            raise OSError(errno.ENOTCONN, "not connected")
        off = 0
        deadline = 0
        waited = False
        while off < n:
            try:
                w = sock.write(buf, off, n - off)
            except OSError as e:
                if e.errno not in self._busy:
                    raise
                w = None
            if w:
                off += w
                continue
            # The socket buffer is full (None, or 0): wait until it drains, in time.
            if not waited:
                deadline = ticks_add(ticks_ms(), timeout_ms)
                waited = True
                if self._wpoll is None:
                    self._wpoll = select.poll()
                    self._wpoll.register(sock, _POLLOUT)
            left = ticks_diff(deadline, ticks_ms())
            if left <= 0:
                raise OSError(
                    errno.ETIMEDOUT,
                    "write timed out after %d ms (%d of %d bytes sent)" % (timeout_ms, off, n),
                )
            if _poll(self._wpoll, left) & (_POLLERR | _POLLHUP | _POLLNVAL):
                sleep_ms(1)  # the next write raises the reason; don't spin meanwhile

    def close(self):
        sock = self.sock
        self.sock = None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
