# A ready reconnection policy, plugged in with one argument:
#
#     client.connect(host, 60, loop_failure=ReconnectPolicy())
#
# It is an ordinary loop_failure hook: called with the client after the link failed, it
# reconnects (client.reconnect() runs breconnect_cb first: bring WiFi back there) and
# returns RECOVERED, or gives up and returns BREAK_LOOP. What a reconnect restores is the
# client's job: resubscribing when the broker kept no session, resending unacknowledged
# QoS 1/2 messages with DUP and their packet ids.
#
# Delays grow exponentially from base_ms to cap_ms with "equal jitter" (half the delay
# fixed, half random), so a fleet of boards that lost the same broker does not come
# back in lockstep.

try:
    from micropython import const
except ImportError:  # CPython: the host port runs the same file
    const = int  # a function here would cost RAM on the board too

from .client import BREAK_LOOP, RECOVERED

_STEP_MS = const(100)  # sleep slices, so disconnect() stops a blocking wait soon
_LOG_WARNING = const(4)
_T_GIVING_UP = const(36)


def _random16():
    try:
        import random

        return random.getrandbits(16)
    except (ImportError, AttributeError):  # a port without random: the clock will do
        return 0


class ReconnectPolicy:
    """loop_failure hook: reconnect with exponential backoff and jitter.

    base_ms, cap_ms: the first delay and the largest (default 1 s and 60 s).
    max_attempts: give up after this many failed attempts in one outage (0: never).
    max_time_ms: give up when an outage has lasted this long (0: never).
    blocking: True (for the background loop) waits inside the hook until connected or
        given up; False (for cycle() without threads) makes at most one attempt per
        call and returns RECOVERED while waiting, so the application's loop goes on.
    After a give-up the hook returns BREAK_LOOP; the next failure starts a new outage.
    """

    def __init__(self, base_ms=1000, cap_ms=60000, max_attempts=0, max_time_ms=0,
                 blocking=True):
        if base_ms <= 0 or cap_ms < base_ms:
            raise ValueError("need 0 < base_ms <= cap_ms")
        self.base_ms = base_ms
        self.cap_ms = cap_ms
        self.max_attempts = max_attempts
        self.max_time_ms = max_time_ms
        self.blocking = blocking
        self.attempts = 0  # failed attempts in the current outage
        self.outages = 0  # outages seen (for logs and tests)
        self.given_up = False
        self._started = None  # ticks when the outage began
        self._next = 0  # ticks of the next attempt (non-blocking mode)
        self._seed = 0

    def delay_ms(self, attempt):
        """The wait before attempt number `attempt` (1, 2, ...) of an outage."""
        d = self.base_ms
        for _ in range(attempt - 1):
            d *= 2
            if d >= self.cap_ms:
                d = self.cap_ms
                break
        half = d // 2
        r = _random16()
        if not r:
            self._seed = (self._seed * 1103515245 + 12345) & 0xFFFF
            r = self._seed
        return half + (half * r >> 16)

    def __call__(self, client):
        port = client._port
        now = port.ticks_ms()
        if self._started is None:
            self._started = now
            self.attempts = 0
            self.given_up = False
            self.outages += 1
            self._next = port.ticks_add(now, self.delay_ms(1))
        while True:
            if client._stopped:
                return self._end(BREAK_LOOP)  # disconnect() was called
            if self._exhausted(port, now):
                client._log(_LOG_WARNING, _T_GIVING_UP, self.attempts)
                self.given_up = True
                return self._end(BREAK_LOOP)
            wait = port.ticks_diff(self._next, now)
            if wait > 0:
                if not self.blocking:
                    return RECOVERED  # not yet; the loop calls again
                port.sleep_ms(wait if wait < _STEP_MS else _STEP_MS)
                now = port.ticks_ms()
                continue
            if client.reconnect() == 0:
                return self._end(RECOVERED)
            self.attempts += 1
            now = port.ticks_ms()
            self._next = port.ticks_add(now, self.delay_ms(self.attempts + 1))
            if not self.blocking and not self._exhausted(port, now):
                return RECOVERED

    def _exhausted(self, port, now):
        if self.max_attempts and self.attempts >= self.max_attempts:
            return True
        if self.max_time_ms and port.ticks_diff(now, self._started) >= self.max_time_ms:
            return True
        return False

    def _end(self, result):
        self._started = None
        return result
