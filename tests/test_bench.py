"""tools/bench.py --quick --json, run once: every client and every figure is there.

This is a smoke test of the benchmark's machinery, not of speed or memory targets (those
are for the bench itself; README section 8). The one figure asserted is the one the VM
tests assert too (tests/test_vm.py): umqtt_paho allocates nothing per publish. And the
bench's own harness and fake transport must cost 0 bytes, or no figure means anything.
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


def test_mpy_sizes(bench):
    m = bench[0]["mpy"]
    up = m["umqtt_paho"]
    assert up["core_modules"] == ["__init__", "errors", "topic", "packet", "client"]
    for key in ("core", "imported", "all", "with_port"):
        assert _num(up[key]) and up[key] > 0, key
    assert up["core"] <= up["imported"] <= up["all"]
    assert up["imported"] < up["with_port"]
    # what the VM loaded for `import umqtt_paho`: at least the core
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
    ):
        assert isinstance(t[key], bool), key
    for interp in THROUGHPUT:
        for mode in ("umqtt_paho", "umqtt_paho_cycle"):
            assert isinstance(t["%s_%s_qos0_ge_0.9x_raw" % (interp, mode)], bool)
            assert isinstance(t["%s_%s_qos1_ge_0.8x_raw" % (interp, mode)], bool)
