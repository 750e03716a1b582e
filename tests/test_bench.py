"""tools/bench.py --quick --json, run once: every client and every figure is there.

This is a smoke test of the benchmark's machinery, not of speed or memory targets (those
are for the bench itself; README section 8; umqtt_paho's memory budgets are in
tests/test_memory.py). The one figure asserted is the one the VM tests assert too
(tests/test_vm.py): umqtt_paho allocates nothing per publish. And the bench's own harness
and fake transport must cost 0 bytes, or no figure means anything.
"""

import json
import numbers
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "tools", "bench.py")

VM_CLIENTS = ("umqtt_paho", "umqtt.simple", "MiniMQTT")
VM_FIGURES = ("import_retained", "import_peak", "instance_retained", "instance_peak")
PER_ITERATION = ("publish_qos0", "publish_qos1", "receive_qos0", "receive_qos1")
# the telemetry job's smallest heap: client -> the forms measured (mqtt_as is quoted)
HEAP = {
    "umqtt_paho": ("mpy", "py"),
    "umqtt_paho_loop": ("mpy",),
    "umqtt_paho_aio": ("mpy",),
    "umqtt_paho_aio_frozen": ("mpy",),
    "umqtt_paho_tls": ("mpy",),
    "umqtt.simple": ("mpy", "py"),
    "MiniMQTT": ("mpy", "py"),
}
THROUGHPUT = {
    "cpython": ("raw", "umqtt_paho", "umqtt_paho_cycle", "MiniMQTT", "paho-mqtt"),
    "micropython": ("raw", "umqtt_paho", "umqtt_paho_cycle", "umqtt.simple"),
}


def _num(x):
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


@pytest.fixture(scope="module")
def bench():
    # First run: downloads the peers, may build the MicroPython unix port (minutes).
    p = subprocess.run(
        [sys.executable, BENCH, "--quick", "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=1700,
    )
    assert p.returncode == 0, "tools/bench.py --quick --json exit %d:\n%s\n%s" % (
        p.returncode,
        p.stderr[-4000:],
        p.stdout[-4000:],
    )
    return json.loads(p.stdout), p.stderr


pytestmark = pytest.mark.timeout(1800)


def test_complete(bench):
    res, _ = bench
    assert res["complete"] is True
    assert res["config"]["quick"] is True
    for key in ("umqtt.simple", "MiniMQTT", "connectionmanager", "ticks", "paho-mqtt"):
        assert res["versions"][key], key


def test_table_printed(bench):
    res, stderr = bench
    assert "| figure | umqtt_paho | umqtt.simple" in stderr
    assert "Run time" in stderr and res["command"] in stderr
    assert "error:" not in stderr
    # the heap table says it was a quick run, and that mqtt_as's figures are not ours
    assert "Smallest heap for the telemetry job" in stderr
    assert "bisected in 1,024 B steps, --quick" in stderr
    assert "| mqtt_as (not on a registry: figures quoted from" in stderr
    assert "quoted, not measured" in stderr


def test_mpy_sizes(bench):
    m = bench[0]["mpy"]
    up = m["umqtt_paho"]
    # the core of tools/build.py: what every board gets (errors.py is loaded only to
    # word an error; the session and the driver's reading half are part of the core)
    assert up["core_modules"] == ["__init__", "packet", "session", "reader", "client"]
    for key in ("core", "imported", "all", "with_port"):
        assert _num(up[key]) and up[key] > 0, key
    assert up["core"] <= up["imported"] <= up["all"]
    assert up["imported"] < up["with_port"]
    # what the VM loaded for `from umqtt_paho import Client`: at least the core
    assert set(up["core_modules"]) <= set(up["imported_modules"])
    for key in ("umqtt.simple", "MiniMQTT", "MiniMQTT_deps"):
        assert _num(m[key]) and m[key] > 0, key


@pytest.mark.parametrize("client", VM_CLIENTS)
def test_vm_figures(bench, client):
    r = bench[0]["vm"][client]
    assert r["ok"], r.get("error")
    assert r["implementation"].startswith("micropython 1.29.")
    # the .mpy files were loaded, not sources
    mods = [m for m in r["modules"] if not m.startswith("vm_bench=")]
    assert mods and all(m.endswith(".mpy") for m in mods), mods
    # the measuring harness and the fake transport cost nothing themselves
    assert r["harness_retained"] == 0
    assert r["transport_per_iteration"] == 0
    for f in VM_FIGURES:
        assert _num(r[f]) and r[f] > 0, f
    per = r["per_iteration"]
    names = PER_ITERATION + (
        ("receive_qos0_views", "receive_qos1_views") if client == "umqtt_paho" else ()
    )
    for f in names:
        assert _num(per[f]) and per[f] >= 0, f
        assert per[f + "_harness"] == 0, f
    assert r["iterations"] == 1000


def test_umqtt_paho_publish_allocates_nothing_in_the_vm(bench):
    per = bench[0]["vm"]["umqtt_paho"]["per_iteration"]
    assert per["publish_qos0"] == 0
    assert per["publish_qos1"] == 0


@pytest.mark.parametrize(
    "interp,client", [(i, c) for i, cs in THROUGHPUT.items() for c in cs]
)  # fmt: skip
def test_throughput_figures(bench, interp, client):
    e = bench[0]["throughput"][interp][client]
    assert "error" not in e, e.get("error")
    for q in ("qos0", "qos1"):
        assert _num(e[q]["rate"]) and e[q]["rate"] > 0, q
        assert _num(e[q]["ratio"]) and e[q]["ratio"] > 0, q
        assert all(n > 0 for n in e[q]["n"]), q
    if client == "raw":
        assert e["qos0"]["ratio"] == 1.0


@pytest.mark.parametrize("client,form", [(c, f) for c, fs in HEAP.items() for f in fs])
def test_smallest_heap(bench, client, form):
    h = bench[0]["heap"]
    assert h["implementation"].endswith(", 32-bit"), h["implementation"]
    assert h["step"] == 1024  # --quick
    c = h["clients"][client]
    assert c["quoted"] is False
    e = c[form]
    assert "error" not in e, e.get("error")
    assert _num(e["heap"]) and e["heap"] > 2048, e  # no job fits in less
    assert e["heap"] <= e["top"] == h["top"][form]
    assert e["heap"] % e["step"] == 0 and e["step"] == h["step"]
    assert e["runs"] > 1 and e["below"]  # the top, and at least one run below it


def test_smallest_heap_forms(bench):
    c = bench[0]["heap"]["clients"]
    for client, forms in HEAP.items():
        # a .py tree compiles on the VM: more heap than its .mpy
        if "py" in forms:
            assert c[client]["py"]["heap"] > c[client]["mpy"]["heap"], client


def test_mqtt_as_is_quoted_not_measured(bench):
    q = bench[0]["heap"]["clients"]["mqtt_as"]
    assert q["quoted"] is True and q["source"]
    assert _num(q["mpy_kb"]) and _num(q["py_kb"])
    assert "mpy" not in q and "py" not in q


def test_umqtt_paho_ram_figures(bench):
    ram = bench[0]["heap"]["umqtt_paho_ram"]
    assert "error" not in ram, ram.get("error")
    for key in ("import", "port", "instance"):
        assert _num(ram[key]) and ram[key] > 0, key


def test_targets_reported(bench):
    t = bench[0]["targets"]
    for key in (
        "vm_publish_0B",
        "vm_receive_0B_default",
        "vm_receive_0B_views",
        "mpy_core_below_minimqtt",
        "mpy_core_within_2x_simple",
        "import_ram_below_minimqtt",
        "import_ram_within_2x_simple",
        "heap_job_mpy_le_16KB",
        "heap_job_py_le_48KB",
    ):
        assert isinstance(t[key], bool), key
    for interp in THROUGHPUT:
        for mode in ("umqtt_paho", "umqtt_paho_cycle"):
            assert isinstance(t["%s_%s_qos0_ge_0.9x_raw" % (interp, mode)], bool)
            assert isinstance(t["%s_%s_qos1_ge_0.8x_raw" % (interp, mode)], bool)
