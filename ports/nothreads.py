# Threads where there are none (the port contract's allocate_lock, ports/cpython.py):
# for ports on firmware without _thread, so that a client's `with lock:` works.


class allocate_lock:  # noqa: N801  (the port contract's name)
    def __enter__(self):
        return self

    def __exit__(self, a, b, c):  # named arguments: *args would allocate a tuple
        return False
