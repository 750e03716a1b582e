"""Demo: a simulated sensor board and an operator console, talking through mosquitto.

Starts a private mosquitto on a free loopback port, then runs two umqtt_paho clients in
this process:
- "sensor-1" (what a board's main.py would do): publishes JSON telemetry at QoS 1, with a
  will that marks it offline, and obeys commands on its command topic;
- "console": subscribes to the telemetry and, after three readings, sends the sensor a
  command to report faster, then one to switch its LED on.
Both sides print what they send and receive. Ends by itself after a few seconds.

Run: python3 tools/demo.py   (needs the mosquitto Debian package; see README.md)
"""

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from umqtt_paho import Client  # noqa: E402


def start_mosquitto():
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(exe):
        sys.exit("mosquitto is not installed: apt-get install -y mosquitto")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    d = tempfile.mkdtemp(prefix="umqtt-demo-")
    conf = os.path.join(d, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\n" % port)
        if os.geteuid() == 0:
            f.write("user root\n")
    log = open(os.path.join(d, "mosquitto.log"), "w")
    proc = subprocess.Popen([exe, "-c", conf], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return proc, port, d
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("mosquitto did not start; see " + log.name)


class Sensor:
    """What a board runs: telemetry out at QoS 1, commands in."""

    def __init__(self, port):
        self.interval = 1.0
        self.led = False
        self.client = Client("sensor-1", cycle_timeout=100, command_timeout=5000)
        self.client.set_will("demo/sensor-1/status", "offline", qos=1, retain=True)
        # Registered before connect(): commands queued for us are never dropped.
        self.client.subscribe("demo/sensor-1/cmd", self.on_command, qos=1)
        self.client.connect("127.0.0.1", 30, port=port)
        self.client.publish("demo/sensor-1/status", "online", qos=1, retain=True)

    def on_command(self, client, payload, topic):
        cmd = json.loads(payload)
        print("  [sensor ] command on %s: %s" % (topic, cmd))
        if "interval" in cmd:
            self.interval = float(cmd["interval"])
        if "led" in cmd:
            self.led = bool(cmd["led"])

    def reading(self, n):
        temp = 21.0 + 2.0 * math.sin(n / 3.0)
        msg = json.dumps({"n": n, "temp_c": round(temp, 2), "led": self.led})
        # Said before it goes out: the console (another thread) may print it before
        # publish() returns with its PUBACK. A reading made just before a command
        # arrives still shows the old state: the lines show that order too.
        print("  [sensor ] publishing %s" % msg)
        self.client.publish("demo/sensor-1/telemetry", msg, qos=1)


def main():
    proc, port, tmp = start_mosquitto()
    print("mosquitto running on 127.0.0.1:%d" % port)
    readings = []
    console = Client("console", cycle_timeout=100, command_timeout=5000)

    def on_telemetry(client, payload, topic):
        data = json.loads(payload)
        readings.append(data)
        print("  [console] %s -> %s" % (topic, data))
        if len(readings) == 3:
            print("  [console] sending command: report every 0.3 s")
            client.publish("demo/sensor-1/cmd", json.dumps({"interval": 0.3}), qos=1)
        if len(readings) == 6:
            print("  [console] sending command: LED on")
            client.publish("demo/sensor-1/cmd", json.dumps({"led": True}), qos=1)

    def on_status(client, payload, topic):
        print("  [console] %s is %s" % (topic, payload.decode()))

    console.subscribe("demo/+/telemetry", on_telemetry, qos=1)
    console.subscribe("demo/+/status", on_status, qos=1)
    console.connect("127.0.0.1", 30, port=port)
    sensor = Sensor(port)
    try:
        n = 0
        t_end = time.monotonic() + 8
        while time.monotonic() < t_end and not (readings and readings[-1]["led"]):
            n += 1
            sensor.reading(n)
            time.sleep(sensor.interval)
        time.sleep(0.3)
        ok = bool(readings) and readings[-1]["led"] and sensor.interval == 0.3
        print("demo %s: %d readings received, sensor obeyed both commands: %s"
              % ("done" if ok else "FAILED", len(readings), ok))
        return 0 if ok else 1
    finally:
        sensor.client.disconnect(1000)
        console.disconnect(1000)
        proc.terminate()
        proc.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
