"""Helpers shared by the live-broker test files (test_live.py, test_interop.py)."""

import threading
import time

WAIT = 5.0  # seconds any single expected event may take
CMD_MS = 5000  # command_timeout for every client: no call may block for a minute


class Inbox:
    """A message function that records (topic, payload) and lets a test wait."""

    def __init__(self):
        self.items = []
        self.cond = threading.Condition()

    def __call__(self, client, payload, topic):
        with self.cond:
            self.items.append((topic, bytes(payload)))
            self.cond.notify_all()

    def wait(self, n, timeout=WAIT, client=None):
        """Wait until at least n messages are in; return how many there are.
        With client: give up early once its background loop has ended."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.items) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                if client is not None and not client._loop_running:
                    time.sleep(0.05)  # let a last message land
                    break
                self.cond.wait(min(left, 0.1))
            return len(self.items)

    def payloads(self, topic=None):
        with self.cond:
            return [p for t, p in self.items if topic is None or t == topic]


def wait_until(pred, timeout=WAIT, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()
