"""The smallest heap a sensor's telemetry job needs, on a 32-bit MicroPython unix port.

Used by tools/bench.py (every client) and tests/test_memory.py (umqtt_paho's budgets), so
that both measure the same way. The job (tools/bench/heapjob_<client>.py, one file per
client): connect to mosquitto, subscribe to a command topic at QoS 1, publish 200 QoS 1
readings of 64 bytes, each awaited, and after every 20th a QoS 1 command to its own
command topic, read back; disconnect; print "JOB OK <commands>".

"Smallest heap" = the smallest N for which `micropython -X heapsize=N job HOST PORT` prints
the marker and exits 0: it counts bytecode, qstrs, objects, buffers and fragmentation
together, as a board's heap does. N is searched on a grid of `step` bytes between 0
(fails) and `top` (must work, else an error). Several brokers = several probes at once: a
peer's job takes ~9 s (each QoS 1 PUBLISH goes out in 3-5 writes: Nagle + delayed ACK),
so one round of probes splits the interval into len(brokers) + 1 parts instead of two.
Each probe has its own broker while it runs (same client id and topics in every job).
"""

import concurrent.futures
import glob
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BUILD_SCRIPT = os.path.join(REPO, "tools", "build_mp_unix.sh")

# client: the job file that runs it
JOBS = {
    "umqtt_paho": "heapjob_umqtt_paho.py",  # cycle(), no thread
    "umqtt_paho_loop": "heapjob_umqtt_paho_loop.py",  # the background loop thread
    "umqtt_paho_aio": "heapjob_umqtt_paho_aio.py",  # umqtt_paho.aio, asyncio as .mpy
    # the same with the binary's frozen asyncio, as a board has it (run it on
    # micropython_m32tls(), which has asyncio frozen in)
    "umqtt_paho_aio_frozen": "heapjob_umqtt_paho_aio.py",
    # over TLS (ca.der in the library folder), on a port whose mbedtls allocates from
    # the GC heap (tools/build_mp_unix.sh m32tls), against a TLS broker
    "umqtt_paho_tls": "heapjob_umqtt_paho_tls.py",
    "umqtt.simple": "heapjob_umqtt_simple.py",
    "MiniMQTT": "heapjob_minimqtt.py",
}
MARKER = "JOB OK"
COMMANDS = 10  # what the marker must count: one command per 20 of 200 readings
RUN_TIMEOUT = 30.0  # s per run: a peer's job takes ~9 s

# What the RAM figures measure: gc.mem_alloc() after a collection, between the steps. Every
# global is bound before the first reading, so that no step grows the module's dict.
_RAM_SCRIPT = """
import gc
m = [0, 0, 0, 0]
umqtt_paho = select = client = None
gc.collect()
m[0] = gc.mem_alloc()
import umqtt_paho
umqtt_paho.Client  # the core loads with the package's first name asked for
gc.collect()
m[1] = gc.mem_alloc()
from umqtt_paho.ports import select
select()
gc.collect()
m[2] = gc.mem_alloc()
client = umqtt_paho.Client("x")
gc.collect()
m[3] = gc.mem_alloc()
print("RAM", m[1] - m[0], m[2] - m[1], m[3] - m[2])
"""


class HeapJobError(Exception):
    pass


def unix_port(variant=""):
    """A unix port's path from tools/build_mp_unix.sh (built once, then cached): the
    default 64-bit build, or variant "m32", the 32-bit one."""
    what = " ".join(["tools/build_mp_unix.sh"] + ([variant] if variant else []))
    try:
        p = subprocess.run(
            ["bash", BUILD_SCRIPT] + ([variant] if variant else []),
            capture_output=True,
            text=True,
            timeout=1800,
        )
    except subprocess.TimeoutExpired:
        raise HeapJobError("%s did not finish in 30 min" % what) from None
    lines = p.stdout.strip().splitlines()
    path = lines[-1] if lines else ""
    if p.returncode != 0 or not os.access(path, os.X_OK):
        raise HeapJobError("%s failed (exit %d): %s" % (what, p.returncode, p.stderr[-2000:]))
    return path


def micropython_m32():
    """The 32-bit unix port's path: tools/build_mp_unix.sh m32 (built once, then cached)."""
    return unix_port("m32")


def micropython_m32tls():
    """The 32-bit port built as a Pico W's firmware: asyncio frozen in, ssl on mbedtls
    allocating from the GC heap (tools/build_mp_unix.sh m32tls)."""
    return unix_port("m32tls")


def implementation(binary):
    """What sys says, e.g. 'micropython 1.25.0 linux, 32-bit'."""
    code = (
        "import sys; print(sys.implementation.name, '.'.join(str(x) for x in "
        "sys.implementation.version[:3]), sys.platform, sys.maxsize)"
    )
    p = subprocess.run([binary, "-c", code], capture_output=True, text=True, timeout=30)
    words = p.stdout.split()
    if p.returncode != 0 or len(words) != 4:
        raise HeapJobError("%s -c: %s" % (binary, (p.stdout + p.stderr)[-500:]))
    bits = "32-bit" if words[3] == "2147483647" else "%s (not 32-bit)" % words[3]
    return "%s %s %s, %s" % (words[0], words[1], words[2], bits)


def paho_sources(dest):
    """umqtt_paho's .py sources laid out as on a board: dest/umqtt_paho/{*.py, ports/*.py}."""
    pkg = os.path.join(dest, "umqtt_paho")
    os.makedirs(os.path.join(pkg, "ports"), exist_ok=True)
    for path in glob.glob(os.path.join(REPO, "umqtt_paho", "*.py")):
        shutil.copy(path, pkg)
    for path in glob.glob(os.path.join(REPO, "ports", "*.py")):
        shutil.copy(path, os.path.join(pkg, "ports"))
    return dest


def _env(client=""):
    # The library is found through ".", with cwd = the library folder: the modules' file
    # names (qstrs, in the heap) are then the same wherever that folder is. A "_frozen"
    # job imports the binary's frozen modules first (asyncio).
    path = ".frozen:." if client.endswith("_frozen") else "."
    return dict(os.environ, MICROPYPATH=path)


def run_job(binary, client, lib, host, port, heap, timeout=RUN_TIMEOUT):
    """One run of client's job with a heap of `heap` bytes: (completed, what it printed)."""
    job = os.path.join(HERE, JOBS[client])
    cmd = [binary, "-X", "heapsize=%d" % heap, job, host, str(port)]
    env = _env(client)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=lib, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stderr or b""
        out = out.decode(errors="replace") if isinstance(out, bytes) else out
        return False, "timed out after %g s: %s" % (timeout, out[-300:])
    lines = p.stdout.strip().splitlines()
    last = lines[-1] if lines else ""
    ok = p.returncode == 0 and last == "%s %d" % (MARKER, COMMANDS)
    return ok, " ".join((p.stdout[-200:] + " " + p.stderr[-400:]).split())


def smallest_heap(binary, client, lib, brokers, top, step=256, timeout=RUN_TIMEOUT, log=None):
    """The smallest heap (a multiple of step, <= top) with which client's job completes.

    brokers: [(host, port)], one per probe that runs at once. Returns {"heap", "step",
    "top", "runs", "seconds", "below"} (below: what the run at heap - step printed).
    Raises HeapJobError when the job fails at top.
    """
    if not brokers:
        raise ValueError("smallest_heap needs at least one broker")
    started = time.monotonic()
    lo, hi = 0, top // step  # in steps: lo fails (a heap of 0), hi is to be proven
    known = {}  # steps -> (ok, output)
    lanes = max(1, len(brokers))
    runs = 0
    with concurrent.futures.ThreadPoolExecutor(lanes) as pool:
        while True:
            if hi not in known:  # the first round: the top, with lanes - 1 probes below it
                probes = [hi] + _spread(lo, hi, lanes - 1)
            else:
                probes = _spread(lo, hi, lanes)
            if not probes:
                break
            futures = [
                pool.submit(run_job, binary, client, lib, h, p, n * step, timeout)
                for n, (h, p) in zip(probes, brokers)
            ]
            for n, f in zip(probes, futures):
                known[n] = f.result()
            runs += len(probes)
            if not known[top // step][0]:
                raise HeapJobError(
                    "%s: the job fails even with a heap of %d B: %s"
                    % (client, top // step * step, known[top // step][1])
                )
            # the smallest heap that worked, and the largest below it that did not
            hi = min(n for n, (ok, _) in known.items() if ok)
            lo = max([0] + [n for n, (ok, _) in known.items() if not ok and n < hi])
            if log:
                log("%s: %d-%d B" % (client, lo * step, hi * step))
    below = known.get(hi - 1, (False, "a heap of 0"))[1]
    return {
        "heap": hi * step,
        "step": step,
        "top": top // step * step,
        "runs": runs,
        "seconds": round(time.monotonic() - started, 1),
        "below": below,
    }


def _spread(lo, hi, k):
    # up to k grid points strictly between lo and hi, evenly spread
    inside = hi - lo - 1
    if inside <= 0 or k <= 0:
        return []
    if inside <= k:
        return list(range(lo + 1, hi))
    return sorted({lo + (i + 1) * (hi - lo) // (k + 1) for i in range(k)})


def ram_figures(binary, lib, heap=1024 * 1024):
    """umqtt_paho's RAM from lib (gc.mem_alloc() after a collection), in bytes:
    {"import": `from umqtt_paho import Client` (the core),
    "port": `from umqtt_paho.ports import select; select()`,
    "instance": one Client("x") with defaults, not connected}."""
    env = _env()
    p = subprocess.run(
        [binary, "-X", "heapsize=%d" % heap, "-c", _RAM_SCRIPT],
        capture_output=True, text=True, env=env, cwd=lib, timeout=60,
    )  # fmt: skip
    words = p.stdout.split()
    if p.returncode != 0 or len(words) != 4 or words[0] != "RAM":
        raise HeapJobError("RAM figures: exit %d: %s" % (p.returncode, p.stdout + p.stderr))
    return {"import": int(words[1]), "port": int(words[2]), "instance": int(words[3])}


class Mosquittos:
    """n private mosquitto brokers (tests/brokers.py), as [(host, port)] while open."""

    def __init__(self, n):
        self.n = n
        self.brokers = []

    def __enter__(self):
        tests = os.path.join(REPO, "tests")
        if tests not in sys.path:
            sys.path.insert(0, tests)
        from brokers import Mosquitto

        try:
            for _ in range(self.n):  # one after another: each picks a free port itself
                self.brokers.append(Mosquitto())
                self.brokers[-1].start()
        except BaseException:
            self.__exit__()
            raise
        return [(b.host, b.port) for b in self.brokers]

    def __exit__(self, *exc):
        for b in self.brokers:  # all told to stop first: then each close() waits briefly
            if b.running:
                b.proc.terminate()
        for b in self.brokers:
            b.close()
        self.brokers = []
