# The RP2 port (Raspberry Pi Pico W / Pico 2 W MicroPython firmware: CYW43 WiFi, lwIP
# through extmod/modlwip.c): the generic MicroPython port (ports/micropython.py) with the
# quirks of this board.
#
# - errno values are MicroPython's own (Linux numbers): EAGAIN 11, ETIMEDOUT 110,
#   EINPROGRESS 115, EALREADY 114. A non-blocking connect() raises EINPROGRESS; a
#   failed one shows as POLLERR, and a second connect() only says EALREADY (the generic
#   port reads the reason instead).
# - TLS (mbedtls) passes lwIP's ETIMEDOUT through negated: OSError(-110) is a timeout,
#   not a broken link (peterhinch/mqtt_as treats it as busy too).
# - modlwip's TCP_NODELAY is lwIP's TF_NODELAY flag, not 1: the generic port takes the
#   number from socket.TCP_NODELAY (an unknown option only prints a warning there).
# - _thread exists but is not a thread pool: start_new_thread runs the function on the
#   second core, once at a time, with no GIL (MICROPY_PY_THREAD_GIL is 0 on rp2), so a
#   message callback would run truly in parallel with the main program, and sockets
#   would be used from both cores. That is why start_thread is None here: run the
#   client with client.cycle() in your main loop (or in asyncio). If you want the loop
#   on core 1 anyway, opt in BEFORE creating the Client:
#       from umqtt_paho.ports import rp2
#       rp2.start_thread = rp2.start_thread_core1
#   and keep the main program away from the client's objects while it runs.

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

NAME = "rp2"


class Network(_mp.Network):
    _busy = (11, 110, -110)
    _connecting = (115, 11, 114)
    _timedout = (110, -110)


start_thread = None


def start_thread_core1(fn, args):
    # Raises OSError if core 1 is already running a thread.
    _thread.start_new_thread(fn, args)
