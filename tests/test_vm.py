"""The library on a real MicroPython VM: the .mpy files of tools/build.py, run there.

The VM is the npm package @micropython/micropython-webassembly-pyscript (MicroPython
1.29, 32-bit, WebAssembly under Node.js), installed once into a cache folder outside the
repository. tools/build.py --board wasm compiles the library into a temporary folder, and
tests/vm/run.mjs copies those .mpy files (and only those) into the VM's filesystem with
the MicroPython-side test modules, then runs each test function in the VM and reports it
as a JSON line. Here every VM test function becomes one pytest test:

    test_vm[test_packet::test_publish_vectors]          a test_* function, run in the VM
    test_vm_alloc[test_vm_alloc::measure_publish_qos0]  bytes allocated per iteration

The names are found by parsing the modules (ast) at collection; the VM runs each module
once per session (a session fixture) and the VM's own list of names must agree.
"""

import ast
import json
import os
import shutil
import subprocess
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
RUNNER = os.path.join(TESTS, "vm", "run.mjs")

VM_PACKAGE = "@micropython/micropython-webassembly-pyscript"
VM_VERSION = "1.29.0-6"
VM_TIMEOUT = 120  # seconds for one module (the whole run takes a few seconds)

# module name in the VM: (its file, the helpers it imports), paths from the repo root
# The client suites run here and on CPython alike, on umqtt_paho.testing's broker
# (loaded in the VM from its .mpy, with servercodec) through tests/fakenet.py.
VM_MODULES = {
    "test_packet": ("tests/test_packet.py", ()),
    "test_topic": ("tests/test_topic.py", ()),
    "test_client": ("tests/test_client.py", ("tests/fakenet.py",)),
    "test_reconnect": ("tests/test_reconnect.py", ("tests/fakenet.py",)),
    "test_store_forward": ("tests/test_store_forward.py", ("tests/fakenet.py",)),
    "test_testing_helper": ("tests/test_testing_helper.py", ("tests/fakenet.py",)),
    "test_vm_alloc": ("tests/vm/test_vm_alloc.py", ("tests/fakenet.py",)),
    "test_vm_outbox": ("tests/vm/test_vm_outbox.py", ()),
    "test_vm_flashlog": ("tests/vm/test_vm_flashlog.py", ("tests/fakenet.py",)),
    "test_vm_store": ("tests/vm/test_vm_store.py", ("tests/fakenet.py",)),
}

# Bytes a measure_* may allocate per iteration; None: measured and printed, not judged.
# The hot path allocates nothing (DESIGN.md, "Memory rules").
ALLOC_BUDGET = {
    "measure_publish_qos0": 0,  # Client.publish(bytes, bytes) at QoS 0, steady state
    "measure_port_write": 0,  # the test transport itself: must be 0 for the rest to count
    "measure_encode_publish": 0,
    "measure_slice_assign": 0,
    "measure_send_publish": 0,
    # pieces, for pointing at the line that allocates (printed, not judged)
    "measure_nolock_with": 0,
    "measure_cycle_idle": 0,
    "measure_publish_qos0_no_payload": 0,
    "measure_isinstance_tuple": None,
    "measure_with_fixed_args_exit": 0,
    "measure_publish_qos1": 0,  # PUBACK read and matched included
    "measure_publish_qos2": 0,  # PUBREC, PUBREL, PUBCOMP included
    "measure_receive_qos0_views": 0,  # deliver_views: reused memoryviews
    "measure_receive_qos1_views": 0,  # + filter match and PUBACK
    # umqtt_paho.outbox (tests/vm/test_vm_outbox.py)
    "measure_outbox_put": 0,  # put(20-byte topic, 64-byte payload) + pop, steady state
    "measure_outbox_put_drop_oldest": 0,  # full ring: every put evicts
    "measure_outbox_put_drop_newest": 0,  # full ring: every put refused
    "measure_outbox_copy_publish": 0,  # whole PUBLISH into the send buffer
    "measure_outbox_copy_header": 0,
    "measure_outbox_accessors": 0,
    "measure_outbox_drain": 0,  # peek + copy_publish + pop + put
    "measure_outbox_put_seq": 0,  # put with a seq + pop
    "measure_outbox_take_done": 0,  # put two, take two, done out of order
    "measure_outbox_take_accessors": 0,
    "measure_outbox_seq_large": None,  # seq >= 2**30: not a small int on 32 bits
    # store and forward through the Client (tests/vm/test_vm_store.py), per message
    "measure_store_offline_publish_qos1": 0,  # publish while disconnected: into the Outbox
    "measure_store_offline_publish_qos2": 0,
    "measure_store_offline_publish_qos1_evicting": 0,  # full DROP_OLDEST ring
    "measure_store_drain_qos1": 0,  # after connect: sent from the ring, PUBACK handled
    "measure_store_drain_qos2": 0,  # + PUBREC, PUBREL, PUBCOMP
    "measure_store_backlog_publish_qos1": 0,  # connected behind a backlog: into the ring
    "measure_store_backlog_publish_qos2": 0,
    "measure_store_backlog_steady_qos1": 0,  # publish + the read that sends the oldest
    "measure_store_backlog_steady_qos2": 0,
    # with a FlashLog: the log's CRC, file writes, acks and refills allocate (printed)
    "measure_store_outbox_2048_instance": None,  # the queue's RAM cost, printed
    "measure_store_flashlog_instance": None,
    "measure_store_flash_offline_publish_qos1": None,
    "measure_store_flash_connected_publish_qos1": None,
    "measure_store_flash_drain_after_reset_qos1": None,
    "measure_store_flash_drain_after_reset_qos2": None,
    "measure_store_flash_idle_cycle_behind": None,
}


# ---- collection -----------------------------------------------------------------------


def _functions(module, prefix):
    # Top-level functions of a VM module with this prefix, in source order, but those
    # its HOST_ONLY tuple names (tests that need a process, threads, a host tool).
    path = os.path.join(REPO, VM_MODULES[module][0])
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    host_only = ()
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [
            "HOST_ONLY"
        ]:
            host_only = ast.literal_eval(node.value)
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and node.name.startswith(prefix)
        and node.name not in host_only
    ]


def _cases(prefix):
    return [(m, name) for m in VM_MODULES for name in _functions(m, prefix)]


def pytest_generate_tests(metafunc):
    for arg, prefix in (("vm_test", "test_"), ("vm_measure", "measure_")):
        if arg in metafunc.fixturenames:
            cases = _cases(prefix)
            metafunc.parametrize(arg, cases, ids=["%s::%s" % c for c in cases])


# ---- the VM: installed, the library built, modules run --------------------------------


def _cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "umqtt_paho", "mpvm")


def _installed_version(prefix):
    path = os.path.join(prefix, "node_modules", *VM_PACKAGE.split("/"), "package.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f).get("version")
    except (OSError, ValueError):
        return None


def install_vm():
    """The path of micropython.mjs, after `npm install` into the cache if needed."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        pytest.fail("node and npm are needed for the VM tests (tools/setup-host.sh installs them)")
    prefix = _cache_dir()
    os.makedirs(prefix, exist_ok=True)
    import fcntl

    with open(os.path.join(prefix, ".install.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two pytest sessions at once: one installs
        if _installed_version(prefix) != VM_VERSION:
            cmd = [
                npm,
                "install",
                "--prefix",
                prefix,
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "%s@%s" % (VM_PACKAGE, VM_VERSION),
            ]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if p.returncode != 0 or _installed_version(prefix) != VM_VERSION:
                pytest.fail(
                    "%s failed:\n%s%s" % (" ".join(cmd), p.stdout, p.stderr), pytrace=False
                )
    mjs = os.path.join(prefix, "node_modules", *VM_PACKAGE.split("/"), "micropython.mjs")
    return node, mjs


def build_wasm(out):
    """tools/build.py --board wasm into out; returns out/wasm (holding umqtt_paho/)."""
    cmd = [
        sys.executable,
        os.path.join(REPO, "tools", "build.py"),
        "--board",
        "wasm",
        "--out",
        str(out),
        "--install",
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        pytest.fail(
            "tools/build.py failed (%d):\n%s%s" % (p.returncode, p.stdout, p.stderr), pytrace=False
        )
    return os.path.join(str(out), "wasm"), p.stdout


class VM:
    """Runs each VM module once (lazily) and keeps its results."""

    def __init__(self, node, mjs, lib):
        self.node = node
        self.mjs = mjs
        self.lib = lib
        self._runs = {}

    def run(self, module):
        if module not in self._runs:
            self._runs[module] = self._run(module)
        return self._runs[module]

    def _run(self, module):
        path, helpers = VM_MODULES[module]
        names = _functions(module, "test_") + _functions(module, "measure_")
        cmd = [self.node, RUNNER, "--vm", self.mjs, "--lib", self.lib, "--module", module]
        for f in (path,) + helpers:
            cmd += ["--file", os.path.join(REPO, f)]
        for name in names:
            cmd += ["--test", name]
        run = {
            "setup": None,
            "import": None,
            "list": None,
            "results": {},
            "end": None,
            "hung": None,
            "stderr": "",
        }
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=VM_TIMEOUT)
            out, run["stderr"], run["rc"] = p.stdout, p.stderr, p.returncode
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            run["rc"] = None
            run["stderr"] = "timed out after %d s" % VM_TIMEOUT
        begun = None
        for line in out.splitlines():
            if not line.startswith("{"):
                continue
            msg = json.loads(line)
            event = msg.get("event")
            if event == "begin":
                begun = msg["test"]
            elif event in ("setup", "import", "list", "end"):
                run[event] = msg
            else:
                run["results"][msg["test"]] = msg
                begun = None
        if run["end"] is None:
            run["hung"] = begun
        return run


@pytest.fixture(scope="session")
def vm(tmp_path_factory):
    node, mjs = install_vm()
    lib, table = build_wasm(tmp_path_factory.mktemp("mpy"))
    return VM(node, mjs, lib)


def _result(vm, module, name):
    run = vm.run(module)
    setup = run["setup"]
    if setup is None:
        pytest.fail("the VM did not start:\n%s" % run["stderr"], pytrace=False)
    if not setup["ok"]:
        pytest.fail(
            "the VM did not load umqtt_paho from .mpy files only: %s" % json.dumps(setup),
            pytrace=False,
        )
    if not run["import"] or not run["import"]["ok"]:
        pytest.fail(
            "import %s failed in MicroPython:\n%s%s"
            % (module, (run["import"] or {}).get("traceback", ""), run["stderr"]),
            pytrace=False,
        )
    r = run["results"].get(name)
    if r is None:
        if run["hung"] == name:
            pytest.fail(
                "%s::%s did not finish within %d s in the VM" % (module, name, VM_TIMEOUT),
                pytrace=False,
            )
        pytest.fail(
            "the VM reported nothing for %s::%s (stopped at %r):\n%s"
            % (module, name, run["hung"], run["stderr"]),
            pytrace=False,
        )
    if not r["ok"]:
        text = "%s::%s failed in MicroPython:\n%s" % (module, name, r["traceback"])
        if r.get("stdout"):
            text += "\n--- VM stdout ---\n" + r["stdout"]
        pytest.fail(text, pytrace=False)
    return r


# ---- the tests ------------------------------------------------------------------------


@pytest.mark.parametrize("module", list(VM_MODULES))
def test_vm_loads_the_built_mpy_files(vm, module):
    run = vm.run(module)
    setup = run["setup"]
    assert setup is not None, run["stderr"]
    assert setup["non_mpy_files"] == [], (
        "umqtt_paho sources in the VM: %r" % setup["non_mpy_files"]
    )
    mods = setup["modules"]
    assert mods["umqtt_paho.packet"].endswith("/umqtt_paho/packet.mpy"), mods
    for name in ("umqtt_paho", "umqtt_paho.errors", "umqtt_paho.client"):
        assert mods[name].endswith(".mpy"), mods
    assert setup["ok"] and setup["implementation"].startswith("micropython 1.29.")


@pytest.mark.parametrize("module", list(VM_MODULES))
def test_vm_finds_the_same_functions(vm, module):
    run = vm.run(module)
    assert run["list"] is not None, run["stderr"] or run["import"]
    host = sorted(_functions(module, "test_") + _functions(module, "measure_"))
    assert run["list"]["tests"] == host


def test_vm(vm, vm_test):
    module, name = vm_test
    _result(vm, module, name)


# Every allocation figure measured in this session: (name, B per iteration, bytes,
# iterations). conftest.py writes them to build/vm-alloc.txt and prints a short table at
# the end of the run (not between pytest's progress dots).
VM_ALLOC = []


def test_vm_alloc(vm, vm_measure):
    module, name = vm_measure
    r = _result(vm, module, name)
    m = r["measure"]
    per = m["bytes_per_iteration"]
    VM_ALLOC.append((name, per, m["bytes"], m["iterations"]))
    assert m["harness_bytes"] == 0, (
        "the measuring loop itself allocated %d bytes" % m["harness_bytes"]
    )
    budget = ALLOC_BUDGET.get(name)
    if budget is None:
        return
    if per > budget:
        # Point at the culprit: every other figure of this module.
        pieces = []
        for other, o in sorted(vm.run(module)["results"].items()):
            if other != name and "measure" in o:
                pieces.append("  %s: %g B" % (other, o["measure"]["bytes_per_iteration"]))
        pytest.fail(
            "%s allocates %g bytes per iteration on MicroPython (budget %d).\n"
            "The pieces, measured alone:\n%s" % (name, per, budget, "\n".join(pieces)),
            pytrace=False,
        )
