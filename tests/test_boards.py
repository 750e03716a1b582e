"""Host tests of the board examples: boards/<board>/main.py (code.py on CircuitPython)
and the modules they share, boards/common/ (telemetry.py, wifi_esp32.py, wifi_rp2.py).

What the device does is one class, Telemetry (boards/common/telemetry.py), which takes
the MQTT client, a clock and a sensor function; each board's main() wires the real board
and hands it to telemetry.run(). Both run here, on a PC, with no broker, no network and
no board, for every board (the Telemetry a board's main() runs):

- Telemetry on umqtt_paho.testing.FakePort: an in-memory broker and a fake clock, so
  "ten readings in 95 seconds" takes a millisecond, and the broker's records
  (broker.received, broker.retained) prove what reached it and when.
- main() with the board's hardware modules (machine, network, esp32, neopixel; alarm,
  board, digitalio, microcontroller, wifi on CircuitPython) faked in sys.modules, and a
  FakePort in place of the board's port.
- wifi_esp32.py, wifi_rp2.py (wifi_join.py) with a fake radio: status texts, retries,
  timeouts.
- Packaging: package.json for mip, the freeze manifests (run through MicroPython's own
  tools/manifestfile.py), board.json against tools/build.py.

Copy this file's pattern for your own firmware: fake what your main() imports, pass a
FakePort, and drive the broker from the test.
"""

import ast
import configparser
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import types

import pytest

from umqtt_paho import Client
from umqtt_paho.testing import FakePort

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOARDS_DIR = os.path.join(REPO, "boards")
COMMON_DIR = os.path.join(BOARDS_DIR, "common")  # the modules the boards share

# board folder -> (its entry file, its family: which fakes main() needs, its WiFi helper:
# a path under boards/)
BOARDS = {
    "esp32_devkitc": ("main.py", "esp32", "common/wifi_esp32.py"),
    "esp32s3": ("main.py", "esp32s3", "common/wifi_esp32.py"),
    "pico_w": ("main.py", "rp2", "common/wifi_rp2.py"),
    "pico2_w": ("main.py", "rp2", "common/wifi_rp2.py"),
    "feather_esp32s3_cp": ("code.py", "circuitpython", "feather_esp32s3_cp/wifi_join.py"),
}
MICROPYTHON_BOARDS = [b for b in BOARDS if BOARDS[b][1] != "circuitpython"]

TOPIC = "devices/dev1"


def load_board_module(board, filename=None, name=None):
    """Import boards/<board>/<filename> as a module of its own (main() does not run).
    boards/common/ is on sys.path, as the shared modules sit next to main.py on a board."""
    filename = filename or BOARDS[board][0]
    path = os.path.join(BOARDS_DIR, board, filename)
    name = name or "board_%s_%s" % (board.replace("/", "_"), filename[:-3])
    if COMMON_DIR not in sys.path:
        sys.path.insert(0, COMMON_DIR)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Device:
    """A board's Telemetry on a FakePort, with a fake sensor and a recorded LED."""

    def __init__(self, board, interval_s=10, temp_c=21.5, port=None):
        self.module = load_board_module(board)
        self.Telemetry = self.module.run.__globals__["Telemetry"]  # what this board runs
        self.port = port or FakePort()
        self.broker = self.port.broker
        self.clock = self.port.clock
        self.temp_c = temp_c
        self.leds = []  # every set_led(on) call
        self.boot(interval_s)

    def boot(self, interval_s=10):
        """A fresh start of the firmware (after a reset or a deep sleep): new objects,
        the same broker and clock."""
        self.client = Client(
            "dev1", clean_session=False, cycle_timeout=1000, command_timeout=10000, port=self.port
        )
        self.app = self.Telemetry(
            self.client, self.port, lambda: self.temp_c, self.leds.append, TOPIC, interval_s
        )

    def run(self, seconds):
        """The main loop, for `seconds` of fake time."""
        end = self.clock.now + seconds * 1000
        while self.clock.now < end:
            self.app.step()

    def run_until(self, condition, seconds=300):
        end = self.clock.now + seconds * 1000
        while not condition():
            assert self.clock.now < end, "not within %d s" % seconds
            self.app.step()

    def telemetry(self):
        """The readings the broker received (resends of one it had left out)."""
        return self.broker.messages(TOPIC + "/telemetry")

    def command(self, what, payload):
        """An operator's command: mosquitto_pub -q 1 -t devices/dev1/cmd/<what> -m ..."""
        self.broker.publish(TOPIC + "/cmd/" + what, payload, qos=1)


@pytest.fixture(params=list(BOARDS))
def board(request):
    return request.param


# ---- publish cadence and message shape -------------------------------------------------


def test_a_reading_every_interval_at_qos1(board):
    dev = Device(board, interval_s=10, temp_c=21.54)
    assert dev.app.start("broker.test")
    dev.run(95)
    readings = dev.telemetry()
    assert [m.at for m in readings] == [i * 10000 for i in range(10)]  # 10 in 95 s, on time
    assert all(m.qos == 1 and not m.retain and not m.dup for m in readings)
    assert [m.json()["seq"] for m in readings] == list(range(1, 11))
    assert readings[0].json() == {
        "seq": 1,
        "temp_c": 21.5,
        "interval_s": 10,
        "led": False,
        "skipped": 0,
    }
    assert dev.client.pending() == 0  # every PUBACK came
    assert dev.broker.errors == []


# ---- commands ---------------------------------------------------------------------------


def test_interval_command(board):
    dev = Device(board, interval_s=10)
    dev.app.start("broker.test")
    dev.run(25)  # readings at 0, 10, 20 s
    dev.command("interval", b"2")
    dev.run(10)
    times = [m.at for m in dev.telemetry()]
    assert times[:3] == [0, 10000, 20000]
    # 2 s after the last reading is already past: one now, then every 2 s
    assert times[3:] == [25000, 27000, 29000, 31000, 33000]
    assert dev.telemetry()[-1].json()["interval_s"] == 2
    assert dev.app.interval_s == 2


def test_a_longer_interval_counts_from_the_last_reading(board):
    dev = Device(board, interval_s=10)
    dev.app.start("broker.test")
    dev.run(5)  # reading at 0
    dev.command("interval", b"30")
    dev.run(70)
    assert [m.at for m in dev.telemetry()] == [0, 30000, 60000]


def test_bad_commands_are_ignored(board):
    dev = Device(board, interval_s=10)
    dev.app.start("broker.test")
    for what, arg in [
        ("interval", b"0"),
        ("interval", b"ten"),
        ("interval", b"100000"),
        ("interval", b"-5"),
        ("led", b"blink"),
        ("reboot", b"now"),
    ]:
        dev.command(what, arg)
    dev.run(1)
    assert dev.app.rejected == 6
    assert dev.app.interval_s == 10 and dev.leds == []


def test_led_command(board):
    dev = Device(board, interval_s=10)
    dev.app.start("broker.test")
    dev.command("led", b"on")
    dev.run(1)
    assert dev.leds == [True]
    dev.command("led", b" TOGGLE\n")  # case and spaces do not matter
    dev.command("led", b"toggle")
    dev.command("led", b"off")
    dev.run(10)
    assert dev.leds == [True, False, True, False]
    assert dev.telemetry()[-1].json()["led"] is False


def test_commands_sent_while_offline_arrive_after_the_reconnect(board):
    dev = Device(board, interval_s=10)
    dev.app.start("broker.test")
    dev.broker.cut()
    dev.broker.unreachable = True
    dev.run(5)
    dev.command("led", b"on")  # queued by the broker: the session is persistent
    dev.broker.unreachable = False
    dev.run_until(lambda: dev.leds == [True])
    assert dev.client.session_present


# ---- status: will and online -------------------------------------------------------------


def test_status_online_and_the_will(board):
    dev = Device(board, interval_s=10)
    dev.app.start("broker.test")
    will = dev.broker.packets[0][2]["will"]
    assert (will.topic, will.payload, will.qos, will.retain) == (
        TOPIC + "/status",
        b"offline",
        1,
        True,
    )
    assert dev.broker.retained[TOPIC + "/status"] == b"online"
    dev.broker.cut()  # the link dies without DISCONNECT: the broker publishes the will
    assert dev.broker.retained[TOPIC + "/status"] == b"offline"
    dev.run_until(lambda: dev.broker.connected("dev1"))  # the policy reconnects
    assert dev.broker.retained[TOPIC + "/status"] == b"online"  # back after the reconnect


# ---- reconnect and offline behaviour ----------------------------------------------------


def test_readings_while_offline_are_counted_and_publishing_resumes(board):
    dev = Device(board, interval_s=10)
    dev.app.start("broker.test")
    dev.run(25)  # readings 1-3 at 0, 10, 20 s
    dev.broker.cut()
    dev.broker.unreachable = True  # WiFi or the broker gone for a while
    dev.run(40)  # readings 4-7 (30, 40, 50, 60 s) cannot be sent
    assert not dev.client.connected() and dev.app.skipped == 4
    assert dev.app.policy.attempts >= 3  # backoff: a few attempts, not a busy loop
    dev.broker.unreachable = False
    dev.run_until(lambda: len(dev.telemetry()) == 5)
    seqs = [m.json()["seq"] for m in dev.telemetry()]
    skipped = [m.json()["skipped"] for m in dev.telemetry()]
    first_after = dev.telemetry()[3].json()["seq"]
    assert seqs[:3] == [1, 2, 3] and first_after >= 8  # the gap shows in seq...
    assert skipped[3] == first_after - 4  # ...and "skipped" says how many
    assert skipped[4] == 0 and seqs[4] == first_after + 1  # then on as before
    assert dev.app.policy.outages == 1 and dev.broker.errors == []


def test_a_reading_accepted_before_the_failure_was_noticed_is_resent(board):
    dev = Device(board, interval_s=10)
    dev.app.start("broker.test")
    dev.run(30)  # readings at 0, 10, 20; the one at 30 s is due now
    dev.broker.cut()  # the client will find out when it writes the reading
    dev.app.step()
    assert dev.app.sent == 4 and dev.client.pending() == 1  # accepted: the library has it
    dev.run_until(lambda: dev.client.pending() == 0)
    readings = dev.telemetry()
    assert [m.json()["seq"] for m in readings] == [1, 2, 3, 4]
    assert readings[3].dup and not readings[3].duplicate  # resent after the reconnect
    assert readings[3].json()["skipped"] == 0


# ---- deep sleep ---------------------------------------------------------------------------


def test_deep_sleep_wake_flushes_then_disconnects(board):
    dev = Device(board, interval_s=60)
    assert dev.app.start("broker.test")
    sleep_ms = dev.app.wake()
    assert sleep_ms == 60000
    (reading,) = dev.telemetry()
    assert reading.json()["seq"] == 1
    # flush() before DISCONNECT: both messages acknowledged, then a clean DISCONNECT
    assert dev.broker.types("dev1")[-3:] == ["PUBLISH", "PUBLISH", "DISCONNECT"]
    assert dev.client.pending() == 0 and not dev.client.connected()
    assert dev.broker.retained[TOPIC + "/status"] == b"asleep"  # not the will


def test_deep_sleep_keeps_the_session_and_takes_queued_commands(board):
    dev = Device(board, interval_s=60)
    dev.app.start("broker.test")
    dev.app.wake()
    dev.clock.advance(60000)  # asleep; meanwhile an operator changes the interval
    dev.command("interval", b"300")
    dev.command("led", b"on")
    dev.boot(interval_s=60)  # woken: the firmware starts again, RAM empty
    assert dev.app.start("broker.test")
    assert dev.client.session_present  # the broker kept the session and the commands
    assert dev.app.wake() == 300000
    assert dev.leds == [True]
    assert dev.telemetry()[-1].json()["interval_s"] == 300


def test_deep_sleep_does_not_wait_forever_for_acks(board):
    dev = Device(board, interval_s=60)
    dev.app.start("broker.test")
    dev.broker.puback = False
    start = dev.clock.now
    assert dev.app.wake() == 60000
    assert 5000 <= dev.clock.now - start <= 10000  # flush(5000), then DISCONNECT anyway
    assert dev.client.pending() == 2 and dev.broker.types()[-1] == "DISCONNECT"


def test_deep_sleep_with_the_broker_unreachable(board):
    dev = Device(board, interval_s=60)
    dev.broker.unreachable = True
    assert not dev.app.start("broker.test")  # not fatal
    assert dev.app.wake() == 60000 and dev.telemetry() == []


# ---- one Telemetry, one WiFi helper per chip family ----------------------------------------


def entry_tree(board):
    with open(os.path.join(BOARDS_DIR, board, BOARDS[board][0])) as f:
        return ast.parse(f.read())


def test_every_board_runs_the_shared_telemetry_module():
    """Fix a bug in Telemetry once: no board keeps a copy, each main() hands its wiring
    to telemetry.run(), and each board ships boards/common/telemetry.py."""
    for board in BOARDS:
        tree = entry_tree(board)
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)], board
        imports = [
            (n.module, [a.name for a in n.names])
            for n in tree.body
            if isinstance(n, ast.ImportFrom)
        ]
        assert ("telemetry", ["run"]) in imports, board
        assert "../common/telemetry.py" in board_json(board)["files"], board
    assert load_board_module("pico_w").run is load_board_module("esp32s3").run


def test_wifi_helpers_are_shared_within_a_family():
    """Each MicroPython board imports its family's helper from boards/common/ (and
    ships it); the settings templates of a family stay the same."""
    for board in MICROPYTHON_BOARDS:
        helper = os.path.basename(BOARDS[board][2])
        imported = [
            a.name
            for n in ast.walk(entry_tree(board))
            if isinstance(n, ast.Import)
            for a in n.names
        ]
        assert helper[:-3] in imported, board
        assert "../" + BOARDS[board][2] in board_json(board)["files"], board
    assert BOARDS["esp32_devkitc"][2] == BOARDS["esp32s3"][2]
    assert BOARDS["pico_w"][2] == BOARDS["pico2_w"][2]

    def read(board, name):
        with open(os.path.join(BOARDS_DIR, board, name)) as f:
            return f.read()

    assert read("pico_w", "secrets_example.py") == read("pico2_w", "secrets_example.py")
    assert read("esp32_devkitc", "secrets_example.py") == read("esp32s3", "secrets_example.py")


# ---- main() on fake hardware -------------------------------------------------------------


class Stop(Exception):
    """Raised by a fake sensor to end main()'s endless loop."""


class Slept(Exception):
    """Raised by a fake deepsleep(): on a board it never returns."""

    def __init__(self, ms):
        Exception.__init__(self, ms)
        self.ms = ms


class Hardware:
    """The state behind the fake hardware modules of one board."""

    def __init__(self, family):
        self.family = family
        self.temp_c = 38.5
        self.readings = 0
        self.stop_after = None  # the sensor raises Stop on this reading
        self.events = {}  # reading number -> function run just before it
        self.wifi_password = "my-password"
        self.wifi_outcome = "ok"  # or a failure status, or "hang"
        self.wifi_up = False
        self.wifi_active = False
        self.joins = []  # (ssid, password) of each join attempt
        self.led = []  # values written to the LED
        self.rtc_memory = b""
        self.woken = False  # CircuitPython: alarm.wake_alarm is set

    def read_sensor(self):
        self.readings += 1
        if self.readings in self.events:
            self.events[self.readings]()
        if self.stop_after is not None and self.readings >= self.stop_after:
            raise Stop()
        return self.temp_c


def fake_micropython_modules(hw):
    """machine, network, esp32, neopixel as the board's firmware has them (the parts
    main.py and wifi_esp32.py / wifi_rp2.py use)."""
    machine = types.ModuleType("machine")

    class Pin:
        OUT = 1
        IN = 0

        def __init__(self, pin_id, mode=-1):
            self.id = pin_id

        def value(self, v=None):
            if v is None:
                return hw.led[-1] if hw.led else 0
            hw.led.append(bool(v))

    class RTC:
        def memory(self, data=None):
            if data is None:
                return hw.rtc_memory
            hw.rtc_memory = bytes(data)

    class ADC:
        CORE_TEMP = 4

        def __init__(self, channel):
            assert channel == 4

        def read_u16(self):
            volts = 0.706 - (hw.read_sensor() - 27) * 0.001721
            return int(volts / 3.3 * 65535 + 0.5)

    def deepsleep(ms=0):
        raise Slept(ms)

    machine.Pin, machine.RTC, machine.ADC, machine.deepsleep = Pin, RTC, ADC, deepsleep
    machine.unique_id = lambda: b"\x24\x0a\xc4\x12\x34\x56"

    network = types.ModuleType("network")
    if hw.family == "rp2":
        ok, connecting, idle = 3, 1, 0
        network.STAT_WRONG_PASSWORD, network.STAT_NO_AP_FOUND = -3, -2
    else:
        ok, connecting, idle = 1010, 1001, 1000
        network.STAT_WRONG_PASSWORD, network.STAT_NO_AP_FOUND = 202, 201
    network.STAT_GOT_IP, network.STAT_CONNECTING, network.STAT_IDLE = ok, connecting, idle
    network.STA_IF = 0
    network.country = lambda code=None: None

    class WLAN:
        def __init__(self, interface):
            self.polls = 0

        def active(self, on=None):
            if on is None:
                return hw.wifi_active
            hw.wifi_active = bool(on)
            if not on:
                hw.wifi_up = False

        def isconnected(self):
            return hw.wifi_up

        def connect(self, ssid, password):
            hw.joins.append((ssid, password))
            self.polls = 0

        def disconnect(self):
            hw.wifi_up = False

        def status(self):
            # Two polls "connecting", then the outcome.
            if hw.wifi_up:
                return ok
            if not hw.joins:
                return idle
            self.polls += 1
            if hw.wifi_outcome == "hang" or self.polls <= 2:
                return connecting
            if hw.wifi_outcome == "ok" and hw.joins[-1][1] == hw.wifi_password:
                hw.wifi_up = True
                return ok
            if hw.wifi_outcome == "ok":
                return network.STAT_WRONG_PASSWORD
            return hw.wifi_outcome

        def ifconfig(self):
            return ("192.168.1.50", "255.255.255.0", "192.168.1.1", "192.168.1.1")

    network.WLAN = WLAN

    esp32 = types.ModuleType("esp32")
    if hw.family == "esp32":  # the original ESP32: raw_temperature() only, in F
        esp32.raw_temperature = lambda: int(hw.read_sensor() * 1.8 + 32 + 0.5)
    else:  # S2/S3/C3/C6: mcu_temperature(), in C
        esp32.mcu_temperature = hw.read_sensor

    neopixel = types.ModuleType("neopixel")

    class NeoPixel:
        def __init__(self, pin, n):
            self.pixels = [(0, 0, 0)] * n

        def __setitem__(self, i, rgb):
            self.pixels[i] = rgb

        def write(self):
            hw.led.append(self.pixels[0] != (0, 0, 0))

    neopixel.NeoPixel = NeoPixel
    return {"machine": machine, "network": network, "esp32": esp32, "neopixel": neopixel}


def fake_circuitpython_modules(hw):
    """alarm, board, digitalio, microcontroller, wifi as CircuitPython has them."""
    wifi = types.ModuleType("wifi")

    class Radio:
        ipv4_address = "192.168.1.51"

        @property
        def connected(self):
            return hw.wifi_up

        def connect(self, ssid, password, timeout=None):
            hw.joins.append((ssid, password))
            if hw.wifi_outcome == "ok" and password == hw.wifi_password:
                hw.wifi_up = True
                return
            if hw.wifi_outcome == "ok":
                raise ConnectionError("Authentication failure")
            if hw.wifi_outcome == 201:
                raise ConnectionError("No network with that ssid")
            raise ConnectionError("Unknown failure %s" % hw.wifi_outcome)

    wifi.radio = Radio()

    microcontroller = types.ModuleType("microcontroller")

    class CPU:
        uid = bytearray(b"\x7c\xdf\xa1\x00\x11\x22")

        @property
        def temperature(self):
            return hw.read_sensor()

    microcontroller.cpu = CPU()

    board = types.ModuleType("board")
    board.LED = "D13"

    digitalio = types.ModuleType("digitalio")

    class DigitalInOut:
        def __init__(self, pin):
            assert pin == "D13"

        def switch_to_output(self, value=False):
            hw.led.append(bool(value))

        @property
        def value(self):
            return hw.led[-1]

        @value.setter
        def value(self, v):
            hw.led.append(bool(v))

    digitalio.DigitalInOut = DigitalInOut

    alarm = types.ModuleType("alarm")
    alarm.time = types.ModuleType("alarm.time")

    class TimeAlarm:
        def __init__(self, monotonic_time):
            self.monotonic_time = monotonic_time

    def exit_and_deep_sleep_until_alarms(*alarms):
        import time

        raise Slept(round((alarms[0].monotonic_time - time.monotonic()) * 1000, -2))

    alarm.time.TimeAlarm = TimeAlarm
    alarm.exit_and_deep_sleep_until_alarms = exit_and_deep_sleep_until_alarms
    alarm.sleep_memory = bytearray(hw.rtc_memory.ljust(16, b"\0"))
    alarm.wake_alarm = TimeAlarm(0) if hw.woken else None
    hw.alarm = alarm
    return {
        "wifi": wifi,
        "microcontroller": microcontroller,
        "board": board,
        "digitalio": digitalio,
        "alarm": alarm,
        "alarm.time": alarm.time,
    }


def install_board(board, hw, monkeypatch, settings=None):
    """Fake the board's hardware modules and settings; import its WiFi helper."""
    family = BOARDS[board][1]
    helper = BOARDS[board][2]
    if family == "circuitpython":
        modules = fake_circuitpython_modules(hw)
        env = {
            "CIRCUITPY_WIFI_SSID": "my-network",
            "CIRCUITPY_WIFI_PASSWORD": "my-password",
            "MQTT_HOST": "broker.test",
            "MQTT_PORT": "1883",
            "INTERVAL_S": "10",
            "DEEP_SLEEP": "0",
            "MQTT_USER": "",
            "MQTT_TLS": "0",
        }
        env.update(settings or {})
        for k, v in env.items():
            monkeypatch.setenv(k, str(v))
    else:
        modules = fake_micropython_modules(hw)
        secrets = types.ModuleType("secrets")  # secrets_example.py, with a test broker
        with open(os.path.join(BOARDS_DIR, board, "secrets_example.py")) as f:
            exec(f.read(), secrets.__dict__)
        secrets.MQTT_HOST = "broker.test"
        secrets.INTERVAL_S = 10
        for k, v in (settings or {}).items():
            setattr(secrets, k, v)
        modules["secrets"] = secrets
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    name = os.path.basename(helper)[:-3]
    wifi_helper = load_board_module(os.path.dirname(helper), name + ".py", name=name)
    monkeypatch.setitem(sys.modules, name, wifi_helper)
    return wifi_helper


def run_main(board, hw, monkeypatch, port, settings=None):
    """Run the board's main() until the fake sensor or deepsleep() stops it."""
    install_board(board, hw, monkeypatch, settings)
    module = load_board_module(board)
    try:
        module.main(port=port)
    except (Stop, Slept) as e:
        return e
    raise AssertionError("main() returned")


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # files main() writes (pico: interval.txt) go here
    return tmp_path


def test_main_wires_the_board(board, monkeypatch, in_tmp):
    hw = Hardware(BOARDS[board][1])
    hw.temp_c = 25.0
    hw.stop_after = 4
    port = FakePort()
    run_main(board, hw, monkeypatch, port)
    assert hw.joins == [("my-network", "my-password")]  # WiFi first
    broker = port.broker
    ((cid, name, connect),) = [p for p in broker.packets if p[1] == "CONNECT"]
    prefix = {"esp32": "esp32-", "esp32s3": "esp32s3-", "rp2": "pico", "circuitpython": "cp-"}[
        BOARDS[board][1]
    ]
    assert cid.startswith(prefix) and not connect["clean_session"]
    topic = "devices/%s/" % cid
    readings = broker.messages(topic + "telemetry")
    start = readings[0].at  # after joining WiFi
    assert [m.at - start for m in readings] == [0, 10000, 20000]  # the 4th read: Stop
    assert abs(readings[0].json()["temp_c"] - 25.0) <= 0.1  # the sensor, converted to C
    assert broker.retained[topic + "status"] == b"online"
    assert broker.subscriptions(cid) == {topic + "cmd/#": 1}
    assert broker.errors == []


def test_main_rejoins_wifi_before_reconnecting(board, monkeypatch, in_tmp):
    hw = Hardware(BOARDS[board][1])
    hw.stop_after = 12
    port = FakePort()

    def wifi_and_broker_gone():
        hw.wifi_up = False
        port.broker.cut()

    hw.events[3] = wifi_and_broker_gone
    run_main(board, hw, monkeypatch, port)
    assert len(hw.joins) == 2  # at boot, and by breconnect_cb before the reconnect
    cid = port.broker.packets[0][0]
    assert len([p for p in port.broker.packets if p[1] == "CONNECT"]) == 2
    assert port.broker.retained["devices/%s/status" % cid] == b"online"


def test_main_deep_sleep_cycle(board, monkeypatch, in_tmp):
    family = BOARDS[board][1]
    hw = Hardware(family)
    port = FakePort()
    deep = {"DEEP_SLEEP": "1"} if family == "circuitpython" else {"DEEP_SLEEP": True}

    slept = run_main(board, hw, monkeypatch, port, deep)  # first boot
    assert isinstance(slept, Slept) and slept.ms == 10000
    cid = port.broker.packets[0][0]
    topic = "devices/%s/" % cid
    assert port.broker.retained[topic + "status"] == b"asleep"
    assert port.broker.types()[-1] == "DISCONNECT"

    port.broker.publish(topic + "cmd/interval", b"120", qos=1)  # sent while it sleeps
    hw.woken = True
    slept = run_main(board, hw, monkeypatch, port, deep)  # woken: a new boot
    assert slept.ms == 120000
    assert port.broker.messages(topic + "telemetry")[-1].json()["interval_s"] == 120
    if family == "circuitpython":
        hw.rtc_memory = bytes(hw.alarm.sleep_memory)
    slept = run_main(board, hw, monkeypatch, port, deep)  # the interval was kept
    assert slept.ms == 120000
    assert len(port.broker.messages(topic + "telemetry")) == 3
    if family == "rp2":
        assert not hw.wifi_active  # the radio is off before sleeping
        assert (in_tmp / "interval.txt").read_text() == "120"


# ---- WiFi bring-up -------------------------------------------------------------------------

WIFI_CASES = {
    # family: codes whose text must name them
    "esp32": {
        201: "NO_AP_FOUND",
        202: "WRONG_PASSWORD",
        203: "ASSOC_FAIL",
        204: "HANDSHAKE_TIMEOUT",
        1010: "GOT_IP",
        1001: "CONNECTING",
        200: "BEACON_TIMEOUT",
        15: "4WAY_HANDSHAKE_TIMEOUT",
    },
    "rp2": {-3: "BADAUTH", -2: "NONET", -1: "FAIL", 3: "GOT_IP", 1: "JOIN", 2: "NOIP", 0: "IDLE"},
}


@pytest.mark.parametrize("family_board", ["esp32_devkitc", "pico_w"])
def test_wifi_status_texts(family_board, monkeypatch):
    family = BOARDS[family_board][1]
    wifi = install_board(family_board, Hardware(family), monkeypatch)
    for code, name in WIFI_CASES[family].items():
        assert name in wifi.status_text(code), code
    assert "unknown" in wifi.status_text(12345)


@pytest.mark.parametrize("family_board", MICROPYTHON_BOARDS)
def test_wifi_connects(family_board, monkeypatch):
    hw = Hardware(BOARDS[family_board][1])
    wifi = install_board(family_board, hw, monkeypatch)
    clock = FakePort().clock
    wlan = wifi.connect("my-network", "my-password", clock=clock)
    assert wlan.isconnected() and hw.joins == [("my-network", "my-password")]
    assert clock.now < 1000
    assert wifi.connect("my-network", "my-password", clock=clock) is not None
    assert len(hw.joins) == 1  # already connected: nothing to do


@pytest.mark.parametrize("family_board", MICROPYTHON_BOARDS)
def test_wifi_wrong_password_fails_at_once(family_board, monkeypatch):
    hw = Hardware(BOARDS[family_board][1])
    wifi = install_board(family_board, hw, monkeypatch)
    clock = FakePort().clock
    with pytest.raises(OSError) as e:
        wifi.connect("my-network", "typo", clock=clock)
    assert "WRONG_PASSWORD" in str(e.value)
    assert len(hw.joins) == 1  # no retries: it would not help


@pytest.mark.parametrize("family_board", MICROPYTHON_BOARDS)
def test_wifi_no_access_point_retries_then_fails(family_board, monkeypatch):
    hw = Hardware(BOARDS[family_board][1])
    wifi = install_board(family_board, hw, monkeypatch)
    hw.wifi_outcome = -2 if hw.family == "rp2" else 201
    clock = FakePort().clock
    with pytest.raises(OSError) as e:
        wifi.connect("no-such-network", "x", clock=clock, retries=3)
    assert e.value.args[0] == hw.wifi_outcome and "NO_AP_FOUND" in str(e.value)
    assert len(hw.joins) == 3 and clock.now < 10000


@pytest.mark.parametrize("family_board", MICROPYTHON_BOARDS)
def test_wifi_times_out(family_board, monkeypatch, capsys):
    hw = Hardware(BOARDS[family_board][1])
    wifi = install_board(family_board, hw, monkeypatch)
    hw.wifi_outcome = "hang"  # the radio says "connecting" forever
    clock = FakePort().clock
    with pytest.raises(OSError):
        wifi.connect("my-network", "my-password", timeout_ms=5000, retries=2, clock=clock)
    assert len(hw.joins) == 2
    assert 10000 <= clock.now <= 10000 + 3000 + 400  # 2 x 5 s, the pauses, a poll each
    assert "no connection within 5000 ms" in capsys.readouterr().out
    assert not hw.wifi_active  # left off, for a clean start next time


def test_circuitpython_wifi_join(monkeypatch):
    hw = Hardware("circuitpython")
    wifi_join = install_board("feather_esp32s3_cp", hw, monkeypatch)
    clock = FakePort().clock
    with pytest.raises(ConnectionError) as e:
        wifi_join.connect("my-network", "typo", clock=clock)
    assert "Authentication" in str(e.value) and len(hw.joins) == 1
    hw.wifi_outcome = 204
    with pytest.raises(ConnectionError) as e:
        wifi_join.connect("my-network", "my-password", clock=clock, retries=2)
    assert "HANDSHAKE_TIMEOUT" in str(e.value) and len(hw.joins) == 3
    hw.wifi_outcome = "ok"
    assert wifi_join.connect("my-network", "my-password", clock=clock).connected
    assert wifi_join.explain(ConnectionError("Unknown failure 201")).endswith(
        "(NO_AP_FOUND: no access point with that SSID (typo? 5 GHz only? too far?))"
    )


# ---- board definitions and settings --------------------------------------------------------


def build_boards():
    path = os.path.join(REPO, "tools", "build.py")
    spec = importlib.util.spec_from_file_location("umqtt_build", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.BOARDS


def board_json(board):
    with open(os.path.join(BOARDS_DIR, board, "board.json")) as f:
        return json.load(f)


def test_board_json_agrees_with_the_build_tool_and_the_files(board):
    info = board_json(board)
    assert info["board"] == board
    for name in info["files"] + [info["settings_example"], info["entry"]]:
        assert os.path.isfile(os.path.join(BOARDS_DIR, board, name)), name
    for port in info["ports"]:
        assert os.path.isfile(os.path.join(REPO, "ports", port + ".py")), port
    if info["runtime"] == "micropython":
        march, ports = build_boards()[info["build_board"]]
        assert info["mpy_arch"] == march and tuple(info["ports"]) == tuple(ports)
        assert info["port"] == info["ports"][-1]
        assert info["stubs"] in ("micropython-esp32-stubs", "micropython-rp2-stubs")
    else:
        assert info["runtime"] == "circuitpython" and info["build_board"] is None


def shared_settings():
    """The settings telemetry.run() reads through its setting(name, default) argument
    (secrets.py on MicroPython, settings.toml on CircuitPython)."""
    with open(os.path.join(COMMON_DIR, "telemetry.py")) as f:
        tree = ast.parse(f.read())
    (run,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run"]
    getter = run.args.args[0].arg
    read = {
        node.args[0].value
        for node in ast.walk(run)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == getter
    }
    assert {"MQTT_HOST", "MQTT_PORT", "INTERVAL_S", "DEEP_SLEEP"} <= read, read
    return read


@pytest.mark.parametrize("board_name", MICROPYTHON_BOARDS)
def test_secrets_example_has_every_setting_main_reads(board_name):
    with open(os.path.join(BOARDS_DIR, board_name, "main.py")) as f:
        tree = ast.parse(f.read())
    read = shared_settings()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "secrets":
            if node.attr != "__dict__":  # secrets.__dict__.get: run()'s getter
                read.add(node.attr)
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "getattr"
            and getattr(node.args[0], "id", None) == "secrets"
            and isinstance(node.args[1], ast.Constant)  # not run()'s getter: name is a variable
        ):
            read.add(node.args[1].value)
    assert {"WIFI_SSID", "MQTT_CA"} <= read
    example = {}
    with open(os.path.join(BOARDS_DIR, board_name, "secrets_example.py")) as f:
        exec(f.read(), example)
    assert read and read <= set(example), read - set(example)


def test_settings_example_toml_has_every_setting_code_py_reads():
    import tomllib

    with open(os.path.join(BOARDS_DIR, "feather_esp32s3_cp", "code.py")) as f:
        tree = ast.parse(f.read())
    read = shared_settings() | {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", None) == "getenv"
        and node.args  # run(os.getenv, ...): the shared settings above
    }
    with open(os.path.join(BOARDS_DIR, "feather_esp32s3_cp", "settings_example.toml"), "rb") as f:
        example = tomllib.load(f)
    assert read and read <= set(example), read - set(example)
    for value in example.values():  # CircuitPython takes strings and integers only
        assert isinstance(value, (str, int)) and not isinstance(value, bool)


@pytest.mark.parametrize("name", ["secrets.py", "settings.toml", "ca.der"])
def test_settings_files_are_git_ignored(name):
    for board in BOARDS:
        path = os.path.join("boards", board, name)
        p = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
        assert p.returncode == 0, "%s is not git-ignored" % path
    example = os.path.join("boards", "esp32_devkitc", "secrets_example.py")
    assert subprocess.run(["git", "check-ignore", "-q", example], cwd=REPO).returncode == 1


# ---- packaging: mip --------------------------------------------------------------------------


def library_modules():
    """What a MicroPython board needs: every module of umqtt_paho/ except the host
    testing helpers, and the MicroPython ports."""
    lib = sorted(
        n
        for n in os.listdir(os.path.join(REPO, "umqtt_paho"))
        if n.endswith(".py") and n not in ("testing.py", "servercodec.py", "aiohost.py")
    )
    ports = [
        n
        for n in sorted(os.listdir(os.path.join(REPO, "ports")))
        if n.endswith(".py") and n not in ("cpython.py", "circuitpython.py")
    ]
    return lib, ports


def mip_source(package_json_path, url):
    """Where mip fetches `url` from, as a path in this repository: a relative url is
    joined to the folder package.json came from (mip: base_url =
    package_json_url.rpartition("/")[0])."""
    assert not url.startswith(("http://", "https://", "github:", "gitlab:")), url
    assert ".." not in url.split("/"), "raw.githubusercontent.com does not resolve .. : %s" % url
    return os.path.join(os.path.dirname(package_json_path), *url.split("/"))


def test_package_json_installs_everything_a_micropython_board_needs():
    path = os.path.join(REPO, "package.json")
    with open(path) as f:
        pkg = json.load(f)
    assert set(pkg) == {"urls", "deps", "version"} and pkg["deps"] == []
    targets = {}
    for target, url in pkg["urls"]:
        src = mip_source(path, url)
        assert os.path.isfile(src), "package.json: %s does not exist" % url
        targets[target] = os.path.relpath(src, REPO)
    lib, ports = library_modules()
    want = {"umqtt_paho/" + n: "umqtt_paho/" + n for n in lib}
    want.update({"umqtt_paho/ports/" + n: "ports/" + n for n in ports})
    assert targets == want
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(REPO, "setup.cfg"))
    assert pkg["version"] == cfg["metadata"]["version"]


@pytest.mark.parametrize("board_name", MICROPYTHON_BOARDS)
def test_board_package_json_installs_the_application(board_name):
    """The board's package.json (its own files) and its family's package in
    boards/common/ (<port>.json: telemetry.py and the WiFi helper) install, at the top
    of the board's filesystem, exactly the files board.json lists, from the same sources."""
    info = board_json(board_name)
    installed = {}  # target on the board -> source in this repository
    for path in (
        os.path.join(BOARDS_DIR, board_name, "package.json"),
        os.path.join(COMMON_DIR, info["port"] + ".json"),
    ):
        with open(path) as f:
            pkg = json.load(f)
        assert set(pkg) == {"urls", "deps", "version"} and pkg["deps"] == []
        for target, url in pkg["urls"]:
            src = mip_source(path, url)
            assert os.path.isfile(src), url
            assert target not in installed, target
            installed[target] = os.path.normpath(src)
    want = {
        os.path.basename(n): os.path.normpath(os.path.join(BOARDS_DIR, board_name, n))
        for n in info["files"]
    }
    want[info["settings_example"]] = os.path.join(BOARDS_DIR, board_name, info["settings_example"])
    assert installed == want
    assert "secrets.py" not in installed  # never published: the user writes it


# ---- packaging: freezing ----------------------------------------------------------------------


def manifestfile_module(tmp_path):
    """MicroPython's own tools/manifestfile.py, from the source package that
    tools/build_mp_unix.sh caches; skips if that cache is not there."""
    cache = os.environ.get("MP_UNIX_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
        "umqtt_paho",
        "micropython-unix",
    )
    src = os.path.join(cache, "src")
    tarballs = sorted(n for n in os.listdir(src) if ".orig.tar" in n) if os.path.isdir(src) else []
    if not tarballs:
        pytest.fail("no MicroPython source in %s (tools/build_mp_unix.sh caches it)" % src)
    with tarfile.open(os.path.join(src, tarballs[-1])) as tar:
        for member in tar:
            if member.name.endswith("/tools/manifestfile.py"):
                (tmp_path / "manifestfile.py").write_bytes(tar.extractfile(member).read())
                break
    spec = importlib.util.spec_from_file_location("manifestfile", tmp_path / "manifestfile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("board_name", MICROPYTHON_BOARDS + [None])
def test_freeze_manifest(board_name, tmp_path):
    mf = manifestfile_module(tmp_path)
    for d in ("port/boards", "board"):  # the firmware's own manifests: empty here
        os.makedirs(tmp_path / d)
    (tmp_path / "port" / "boards" / "manifest.py").write_text("")
    (tmp_path / "board" / "manifest.py").write_text("")
    m = mf.ManifestFile(
        mf.MODE_FREEZE,
        {
            "MPY_DIR": str(tmp_path),
            "MPY_LIB_DIR": None,
            "PORT_DIR": str(tmp_path / "port"),
            "BOARD_DIR": str(tmp_path / "board"),
        },
    )
    if board_name is None:
        m.execute(os.path.join(REPO, "manifest.py"))
        ports = ["micropython", "esp32", "rp2"]
    else:
        m.execute(os.path.join(BOARDS_DIR, board_name, "manifest.py"))
        ports = board_json(board_name)["ports"]
    frozen = {f.target_path.replace(os.sep, "/"): f.full_path for f in m.files()}
    lib, _ = library_modules()
    want = ["umqtt_paho/" + n for n in lib]
    want += ["umqtt_paho/ports/%s.py" % p for p in ["__init__"] + ports]
    assert sorted(frozen) == sorted(want)  # testing.py stays on the host
    for target, full in frozen.items():
        source = target.replace("umqtt_paho/ports/", "ports/")
        with open(full, "rb") as a, open(os.path.join(REPO, source), "rb") as b:
            assert a.read() == b.read(), target


# ---- the boards' logic on a real MicroPython ---------------------------------------------------

MP_SCENARIO = r"""
import json
import board_main  # the board's main.py (code.py): it imports telemetry
from telemetry import Telemetry
from umqtt_paho import Client
from umqtt_paho.testing import FakePort

port = FakePort()
leds = []
client = Client("dev1", clean_session=False, cycle_timeout=1000, command_timeout=10000,
                port=port)
assert board_main.run.__name__ == "run"
app = Telemetry(client, port, lambda: 21.54, leds.append, "devices/dev1", 10)
app.start("broker.test")
while port.clock.now < 25000:
    app.step()
port.broker.publish("devices/dev1/cmd/led", b"on", qos=1)
port.broker.cut()
port.broker.unreachable = True
while port.clock.now < 60000:
    app.step()
port.broker.unreachable = False
while len(port.broker.messages("devices/dev1/telemetry")) < 5:
    app.step()
sleep_ms = app.wake()
print(json.dumps({
    "readings": [m.json() for m in port.broker.messages("devices/dev1/telemetry")],
    "status": port.broker.retained["devices/dev1/status"].decode(), "leds": leds,
    "sleep_ms": sleep_ms, "errors": port.broker.errors,
}))
"""


@pytest.mark.parametrize("board_name", list(BOARDS))
def test_board_logic_on_micropython(board_name, tmp_path):
    """The board's main.py (code.py) and the shared telemetry.py, imported by a real
    MicroPython (unix port), Telemetry run against umqtt_paho.testing there: the same
    language subset as the board's."""
    from test_testing_helper import micropython_binary, mp_lib

    binary = micropython_binary()
    lib = mp_lib(str(tmp_path))
    shutil.copy(
        os.path.join(BOARDS_DIR, board_name, BOARDS[board_name][0]), tmp_path / "board_main.py"
    )
    shutil.copy(os.path.join(COMMON_DIR, "telemetry.py"), tmp_path / "telemetry.py")
    (tmp_path / "scenario.py").write_text(MP_SCENARIO)
    p = subprocess.run(
        [binary, str(tmp_path / "scenario.py")],
        capture_output=True,
        text=True,
        env=dict(os.environ, MICROPYPATH=lib + ":" + str(tmp_path)),
        timeout=120,
    )
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr
    r = json.loads(p.stdout.strip().splitlines()[-1])
    readings = r["readings"]
    assert readings[0] == {"seq": 1, "temp_c": 21.5, "interval_s": 10, "led": False, "skipped": 0}
    assert [x["seq"] for x in readings[:3]] == [1, 2, 3] and readings[3]["skipped"] >= 3
    assert r["leds"] == [True] and r["status"] == "asleep"
    assert r["sleep_ms"] == 10000 and r["errors"] == []
