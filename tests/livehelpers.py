"""Helpers shared by the live-broker test files (test_live.py, test_interop.py, ...)."""

import socket
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


class StubServer:
    """A loopback TCP server for a peer that misbehaves on purpose: a subclass's
    handle(conn) gets each accepted connection in a thread of its own (accepted counts
    them; conns holds every socket, so a test may close them). Leaving the with block
    stops it, closes every socket and joins every thread."""

    def __init__(self, host="127.0.0.1"):
        self.ls = socket.socket()
        self.ls.bind((host, 0))
        self.ls.listen(8)
        self.ls.settimeout(0.05)
        self.port = self.ls.getsockname()[1]
        self.accepted = 0
        self.conns = []
        self.stop = threading.Event()
        self.threads = []

    def __enter__(self):
        self.spawn(self._accept)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for s in self.conns + [self.ls]:
            try:
                s.close()
            except OSError:
                pass
        for t in list(self.threads):
            t.join(WAIT)

    def handle(self, conn):
        pass  # keep the connection open, say nothing

    def spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        self.threads.append(t)
        t.start()

    def pipe(self, src, dst, before=None):
        """Forward what src sends to dst (before(data) first, for each piece) until
        either side closes or the server stops; then close both."""
        src.settimeout(0.05)
        while not self.stop.is_set():
            try:
                data = src.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if not data:
                break
            if before is not None:
                before(data)
            try:
                dst.sendall(data)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass

    def forward(self, conn, target_port, up=None, down=None):
        """Proxy conn to the broker on 127.0.0.1:target_port (up / down: pipe's before
        for each direction)."""
        u = socket.create_connection(("127.0.0.1", target_port), timeout=WAIT)
        self.conns.append(u)
        self.spawn(self.pipe, u, conn, down)
        self.pipe(conn, u, up)

    def _accept(self):
        while not self.stop.is_set():
            try:
                c, _ = self.ls.accept()
            except OSError:
                continue  # the accept timeout, or closed at exit
            self.accepted += 1
            self.conns.append(c)
            self.spawn(self.handle, c)
