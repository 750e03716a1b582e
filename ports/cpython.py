# The CPython port: the host shim that runs the same library code as the boards.
#
# The port contract (every port in this folder provides the same names):
#   Network()                      one TCP/TLS connection to a broker
#     .open(host, port, ssl_ctx, timeout_ms)   DNS, TCP connect and TLS handshake, all
#                                  inside timeout_ms; raises OSError (or ssl.SSLError)
#     .read_into(buf, n, timeout_ms) -> int    up to n bytes into buf[0:n]; 0 = nothing
#                                  arrived within timeout_ms. A closed peer RAISES OSError,
#                                  so a timeout and EOF are never confused.
#     .write(buf, n, timeout_ms)   all of buf[0:n] within timeout_ms, or raises OSError
#     .close()                     idempotent; wakes a thread blocked in read_into
#   ticks_ms(), ticks_diff(a, b), ticks_add(t, ms), sleep_ms(ms)   a monotonic clock
#   allocate_lock(), thread_id(), start_thread(fn, args)  threads (start_thread = None
#                                  where the board has none; allocate_lock() then gives
#                                  a lock that does nothing, for `with`, and Signal is
#                                  never asked for and may be None)
#   Signal()                       optional: .gen, .notify(), .wait(gen, timeout_ms) wakes
#                                  threads waiting for an ack the loop thread has read;
#                                  without it the loop (threadloop.py) uses a polled one

import errno
import select
import socket
import threading
import time

try:
    import ssl

    # A TLS record not complete yet is "no data yet", not an error.
    _NOT_YET = (socket.timeout, BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
except ImportError:  # a CPython built without ssl
    _NOT_YET = (socket.timeout, BlockingIOError)

NAME = "cpython"


def ticks_ms():
    return time.monotonic_ns() // 1000000


def ticks_diff(a, b):
    return a - b


def ticks_add(t, ms):
    return t + ms


def sleep_ms(ms):
    if ms > 0:
        time.sleep(ms / 1000)


allocate_lock = threading.Lock


def thread_id():
    return threading.get_ident()


def start_thread(fn, args):
    t = threading.Thread(target=fn, args=args, name="umqtt_paho-loop", daemon=True)
    t.start()
    return t


class Signal:
    """A wake-up for threads waiting on state that another thread changes.

    A waiter reads `gen`, checks its condition, then calls wait(gen, ms): it returns at
    once if notify() ran in between, so no wake-up is lost.
    """

    def __init__(self):
        self._cond = threading.Condition(threading.Lock())
        self.gen = 0

    def notify(self):
        with self._cond:
            self.gen += 1
            self._cond.notify_all()

    def wait(self, gen, timeout_ms):
        with self._cond:
            if self.gen == gen and timeout_ms > 0:
                self._cond.wait(timeout_ms / 1000)


def _resolve(host, port, timeout_ms):
    # getaddrinfo has no timeout of its own: run it in a helper thread and give up on it
    # after timeout_ms, so a dead DNS server cannot hang connect().
    result = []

    def lookup():
        try:
            result.append(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
        except OSError as e:
            result.append(e)

    t = threading.Thread(target=lookup, daemon=True)
    t.start()
    t.join(max(timeout_ms, 0) / 1000)
    if not result:
        why = "DNS lookup of %r timed out after %d ms" % (host, timeout_ms)
        raise OSError(errno.ETIMEDOUT, why)
    if isinstance(result[0], OSError):
        raise result[0]
    return result[0]


class Network:
    # The socket is non-blocking once open: every wait is a poll() with its own timeout,
    # so the reading thread and a writing thread never share (or race on) a socket
    # timeout. OpenSSL must not run one SSL object in two threads at once: the short,
    # non-blocking TLS calls are serialised by _tls_lock.

    def __init__(self):
        self.sock = None
        self._rpoll = None
        self._wpoll = None
        self._tls_lock = None

    def open(self, host, port, ssl_ctx, timeout_ms):
        deadline = ticks_ms() + timeout_ms
        infos = _resolve(host, port, timeout_ms)
        err = None
        for family, kind, proto, _, addr in infos:
            left = deadline - ticks_ms()
            if left <= 0:
                break
            sock = socket.socket(family, kind, proto)
            try:
                sock.settimeout(left / 1000)
                sock.connect(addr)
                break
            except OSError as e:
                sock.close()
                sock = None
                err = e
        else:
            sock = None
        if sock is None:
            if err is None:
                err = OSError(errno.ETIMEDOUT, "connect to %s:%d timed out" % (host, port))
            raise err
        # One PUBLISH is one write; don't let Nagle hold it back waiting for an ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_ctx is not None:
            left = deadline - ticks_ms()
            if left <= 0:
                sock.close()
                raise OSError(errno.ETIMEDOUT, "no time left for the TLS handshake")
            sock.settimeout(left / 1000)
            try:
                # server_hostname: SNI, and the name the certificate is checked against
                sock = ssl_ctx.wrap_socket(sock, server_hostname=host)
            except BaseException:
                sock.close()
                raise
            self._tls_lock = threading.Lock()
        sock.setblocking(False)
        self._rpoll = select.poll()
        self._rpoll.register(sock, select.POLLIN)
        self._wpoll = select.poll()
        self._wpoll.register(sock, select.POLLOUT)
        self.sock = sock

    def read_into(self, buf, n, timeout_ms):
        sock = self.sock
        if sock is None:
            raise OSError(errno.ENOTCONN, "not connected")
        deadline = ticks_ms() + timeout_ms
        lock = self._tls_lock
        while True:
            # Try first: a TLS socket may hold decrypted bytes that poll() cannot see.
            try:
                if lock is None:
                    got = sock.recv_into(buf, n)
                else:
                    with lock:
                        got = sock.recv_into(buf, n)
            except _NOT_YET:
                left = deadline - ticks_ms()
                if left <= 0:
                    return 0
                self._rpoll.poll(left)
                continue
            if got == 0:
                raise OSError(errno.ECONNRESET, "connection closed by the broker")
            return got

    def write(self, buf, n, timeout_ms):
        sock = self.sock
        if sock is None:
            raise OSError(errno.ENOTCONN, "not connected")
        deadline = ticks_ms() + timeout_ms
        mv = memoryview(buf)[:n]
        lock = self._tls_lock
        off = 0
        while off < n:
            try:
                if lock is None:
                    off += sock.send(mv[off:])
                else:
                    with lock:
                        off += sock.send(mv[off:])
                continue
            except _NOT_YET:
                pass
            left = deadline - ticks_ms()
            if left <= 0:
                raise OSError(errno.ETIMEDOUT, "write timed out after %d ms" % timeout_ms)
            self._wpoll.poll(left)

    def close(self):
        sock = self.sock
        self.sock = None
        if sock is not None:
            try:
                # shutdown wakes another thread waiting in poll on this socket
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
