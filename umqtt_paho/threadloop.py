# The client's background read loop: a thread that runs read cycles until the loop
# ends, and the Signal that wakes other threads waiting for what it reads (an ack, a
# free slot). Imported by Client.loop() only: a board that drives client.cycle() from
# its own loop never loads it.
#
# Failures reach loop_failure(client) (Client._failed): RECOVERED keeps the loop going
# (after the hook reconnected), anything else ends it. While not connected (a hook said
# RECOVERED without reconnecting) it fails again, at most once per cycle_timeout.

try:
    from micropython import const
except ImportError:  # CPython: the host port runs the same file
    const = int  # a function here would cost RAM on the board too

_RECOVERED = const(1)
_LOG_WARNING = const(4)
_ERR_NO_CONN = const(4)
_T_NOT_CONNECTED = const(15)
_T_LOOP_FAILURE = const(35)


class _PollSignal:
    """Wakes threads waiting for state the loop thread changes. A waiter reads `gen`,
    checks its condition, then wait(gen, ms) returns as soon as notify() has run since,
    or after ms. For ports without a Signal of their own (MicroPython has no condition
    variables): waiters poll every millisecond."""

    def __init__(self, port):
        self.gen = 0
        self._port = port

    def notify(self):
        # Kept a small int (no allocation). Two notifiers racing can merge into one
        # increment: a waiter still wakes (the value changed), or at worst rechecks its
        # condition when its bounded wait ends.
        self.gen = (self.gen + 1) & 0x3FFFFFFF

    def wait(self, gen, timeout_ms):
        port = self._port
        deadline = port.ticks_add(port.ticks_ms(), timeout_ms)
        while self.gen == gen and port.ticks_diff(deadline, port.ticks_ms()) > 0:
            port.sleep_ms(1)


def start(c):
    port = c._port
    if c._signal is None:
        make = getattr(port, "Signal", None)
        c._signal = make() if make is not None else _PollSignal(port)
    c._looping = True
    c._loop_running = True
    try:
        port.start_thread(_main, (c,))
    except Exception:
        c._loop_running = False
        raise


def _main(c):
    port = c._port
    c._loop_tid = port.thread_id()
    from .packet import MQTTError

    try:
        while c._looping:
            try:
                if not c._connected:
                    port.sleep_ms(c._cycle_timeout)
                    if not c._looping:
                        break
                    raise MQTTError(_ERR_NO_CONN, _T_NOT_CONNECTED)
                c._cycle(c._cycle_timeout)
            except Exception as e:
                if not c._looping:
                    break  # disconnect() closed the link under us
                c._log(_LOG_WARNING, _T_LOOP_FAILURE, e)
                if c._failed(e) != _RECOVERED:
                    break
    finally:
        c._looping = False
        c._loop_running = False
        c._loop_tid = None
        if c._signal is not None:
            c._signal.notify()  # threads waiting for the loop to read for them
