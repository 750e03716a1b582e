"""Shared pytest fixtures: fresh, private MQTT brokers for each test."""

import os
import sys

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)

# tests/ is not a package: make `import brokers` and `import umqtt_paho`
# (from the source tree, not an installed copy) work from any cwd.
for path in (REPO_ROOT, TESTS_DIR):
    if path not in sys.path:
        sys.path.insert(0, path)

from brokers import AmqttBroker, Mosquitto, _Broker  # noqa: E402


@pytest.fixture
def mosquitto():
    with Mosquitto() as broker:
        yield broker


@pytest.fixture
def mosquitto_auth():
    with Mosquitto(password={"alice": "secret"}) as broker:
        yield broker


@pytest.fixture
def mosquitto_tls():
    with Mosquitto(tls=True) as broker:
        yield broker


@pytest.fixture
def mosquitto_persist():
    with Mosquitto(persistence=True) as broker:
        yield broker


@pytest.fixture
def amqtt_broker():
    with AmqttBroker() as broker:
        yield broker


def pytest_terminal_summary(terminalreporter):
    # The MicroPython VM's allocation figures (tests/test_vm.py test_vm_alloc): all of
    # them to a report file, and a short table here.
    mod = sys.modules.get("test_vm")
    figures = getattr(mod, "VM_ALLOC", None)
    if not figures:
        return
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "build", "vm-alloc.txt")  # fmt: skip
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("MicroPython VM (32-bit WebAssembly): bytes allocated per iteration\n")
        for name, per, total, n in sorted(figures):
            f.write("%-60s %10g B  (%d B / %d iterations)\n" % (name, per, total, n))
    zero = [f for f in figures if f[1] == 0]
    tr = terminalreporter
    tr.write_sep("-", "MicroPython VM allocations per iteration")
    tr.write_line("%d measured, %d allocate nothing; the others:" % (len(figures), len(zero)))
    for name, per, total, n in sorted(figures, key=lambda f: -f[1]):
        if per:
            tr.write_line("  %-58s %8g B" % (name, per))
    tr.write_line("all of them: %s" % path)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # When a test fails, attach the logs of the brokers it used to the report
    # (the brokers are still alive here; teardown comes later).
    report = yield
    if report.failed and report.when in ("setup", "call"):
        for name, value in getattr(item, "funcargs", {}).items():
            if isinstance(value, _Broker):
                report.sections.append((f"{name} log ({value.log_path})", value.log_text()))
    return report
