# Helpers for the scripts that tests/test_mp_unix.py runs INSIDE MicroPython (unix port).
# Every result goes to stdout as one JSON object per line: {"event": name, ...}; pytest
# parses them. An uncaught exception ends the script with its traceback on stderr and a
# non-zero exit code, which fails the test that ran it.

import json
import sys
import time


def args():
    # micropython script.py HOST PORT [more...]
    a = sys.argv[1:]
    return a[0], int(a[1]), a[2:]


def emit(event, **fields):
    # One write per line: print() writes the text and the newline separately, so lines
    # from the loop thread and the main thread could run together.
    fields["event"] = event
    sys.stdout.write(json.dumps(fields) + "\n")


def wait_until(cond, timeout_ms, step_ms=5):
    # True as soon as cond() is true, False after timeout_ms.
    deadline = time.ticks_add(time.ticks_ms(), timeout_ms)
    while not cond():
        if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
            return False
        time.sleep_ms(step_ms)
    return True


def cycle_until(client, cond, timeout_ms):
    # Without the loop thread: read and handle packets until cond() or timeout_ms.
    deadline = time.ticks_add(time.ticks_ms(), timeout_ms)
    while not cond():
        if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
            return False
        client.cycle(50)
    return True


class Counter:
    """Counts messages whose payload is a decimal sequence number: received, distinct,
    duplicates, and the thread ids of the callbacks."""

    def __init__(self, thread_id=None):
        self.seen = set()
        self.count = 0
        self.dups = 0
        self.threads = set()
        self.thread_id = thread_id
        self.topics = set()

    def __call__(self, client, payload, topic):
        self.count += 1
        n = int(payload)
        if n in self.seen:
            self.dups += 1
        self.seen.add(n)
        self.topics.add(topic)
        if self.thread_id is not None:
            self.threads.add(self.thread_id())
