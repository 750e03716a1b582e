# The TLS handshake of the MicroPython ports (ports/micropython.py and the ports built on
# it), loaded only by a board that connects with an ssl_ctx.
#
# MicroPython's SSLSocket has no do_handshake(), and wrap_socket on a non-blocking
# socket spins in mbedtls without any bound. So the handshake runs in wrap_socket on a
# blocking socket with a timeout of the time left (each handshake read and write is
# bounded by it); then the socket goes non-blocking. A handshake timeout surfaces as
# ETIMEDOUT, or negated (-110, -116 on ESP32) when mbedtls passes the socket's errno
# through (modtls_mbedtls.c: `return -err`): the port's `timedout` errnos, translated.
# A certificate that fails verification (or a host name it does not match) raises a
# bare ValueError in MicroPython's ssl, with mbedtls' reason: MQTTError(ERR_TLS) here,
# with that reason, since connect() fails with MQTTError or OSError only.

try:
    from micropython import const
except ImportError:  # CPython (the type checks): the same file
    const = int

import errno

from ..packet import MQTTError

_ERR_TLS = const(8)
_T_TLS_FAILED = const(77)


def wrap(sock, ssl_ctx, host, left, timedout):
    """The connected TCP socket sock as a non-blocking TLS stream, handshake done within
    `left` ms; sock is closed if that fails."""
    if left <= 0:
        sock.close()
        raise OSError(errno.ETIMEDOUT, "no time left for the TLS handshake")
    try:
        sock.setblocking(True)
        sock.settimeout(left / 1000)
        # server_hostname: SNI, and the name the certificate is checked against
        tls = ssl_ctx.wrap_socket(sock, server_hostname=host)
    except OSError as e:
        sock.close()
        if e.errno in timedout:
            raise OSError(
                errno.ETIMEDOUT, "TLS handshake with %s timed out after %d ms" % (host, left)
            )
        raise
    except ValueError as e:  # verification: mbedtls' reason
        sock.close()
        raise MQTTError(_ERR_TLS, _T_TLS_FAILED, host, str(e).strip())
    except BaseException:
        sock.close()
        raise
    tls.setblocking(False)
    return tls
