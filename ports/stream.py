# A port for any connection the application makes itself: an Ethernet (W5500, LAN)
# or PPP socket, a cellular modem's socket, a socket through a proxy. MQTT needs a byte
# stream, not WiFi:
#
#     from umqtt_paho.ports import stream
#
#     def connect(host, port, timeout_ms):   # return a CONNECTED stream
#         s = socket.socket()                # e.g. on the LAN or PPP interface
#         s.connect(socket.getaddrinfo(host, port)[0][-1])
#         return s
#
#     client = Client("dev", port=stream.make(connect))
#
# The stream must offer readinto(buf, n), write(buf, off, n) and close(), and be
# accepted by select.poll (MicroPython sockets and most stream objects are). It is
# driven exactly like the generic port's sockets (ports/micropython.py): switched to
# non-blocking if it has setblocking(), every wait a poll; TLS, if connect() gets an
# ssl_ctx, by that port's bounded handshake. connect() itself must respect timeout_ms.

from . import micropython as _mp


class _Port:
    pass


def make(connect, name="stream"):
    """A port object whose Network() takes its connections from connect(host, port,
    timeout_ms); everything else (clock, threads) is the generic port's."""

    class Network(_mp.Network):
        def open(self, host, port, ssl_ctx, timeout_ms):
            deadline = _mp.ticks_add(_mp.ticks_ms(), timeout_ms)
            sock = connect(host, port, timeout_ms)
            if sock is None:
                raise OSError(_mp.errno.ECONNREFUSED, "connect() gave no stream")
            if hasattr(sock, "setblocking"):
                sock.setblocking(False)
            if ssl_ctx is not None:
                from .tlswrap import wrap

                left = _mp.ticks_diff(deadline, _mp.ticks_ms())
                sock = wrap(sock, ssl_ctx, host, left, self._timedout)
            self._setup(sock)

    p = _Port()
    p.NAME = name
    p.Network = Network
    for attr in ("ticks_ms", "ticks_diff", "ticks_add", "sleep_ms", "allocate_lock",
                 "thread_id", "start_thread"):
        setattr(p, attr, getattr(_mp, attr))
    return p
