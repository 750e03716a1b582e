# The ESP32 port (ESP32, -S2, -S3, -C3, -C6 MicroPython firmware): the generic
# MicroPython port (ports/micropython.py) with the quirks of ESP-IDF's lwIP and newlib.
#
# - errno values are ESP-IDF newlib's, not Linux's (MICROPY_USE_INTERNAL_ERRNO is 0 on
#   this port): EAGAIN 11, ETIMEDOUT 116, EHOSTUNREACH 118, EINPROGRESS 119,
#   EALREADY 120. A non-blocking connect() raises 119.
# - 118 (EHOSTUNREACH) and 119 have been seen raised for a socket that is merely busy
#   (forum.micropython.org t=3608, as peterhinch/mqtt_as's BUSY_ERRORS): a read or write
#   treats them as "not yet". A link that is really gone is then found by the keepalive
#   (1.5 x keepalive) or by the write deadline, both bounded.
# - TLS (mbedtls) with a socket timeout reports a timeout as -116 (the errno negated).
# - _thread exists (FreeRTOS tasks, with a GIL). A new thread's default stack is only
#   about 5 KB (mpthreadport.c: 4 KB + margin); the loop thread runs the user's message
#   callbacks, which may publish (a nested read cycle), so it gets _LOOP_STACK.

from micropython import const
import _thread

from . import micropython as _mp
from .micropython import (  # noqa: F401  (the port contract, re-exported)
    allocate_lock,
    sleep_ms,
    thread_id,
    ticks_add,
    ticks_diff,
    ticks_ms,
)

NAME = "esp32"

_LOOP_STACK = const(8192)


class Network(_mp.Network):
    _busy = (11, 116, 118, 119, -116, 110, -110)
    _connecting = (119, 11, 120, 115)
    _timedout = (116, -116, 110, -110)


def start_thread(fn, args):
    old = _thread.stack_size(_LOOP_STACK)
    try:
        _thread.start_new_thread(fn, args)
    finally:
        _thread.stack_size(old)
