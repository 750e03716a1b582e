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
