# Sensor telemetry with umqtt_paho: the part every board example shares (the ESP32,
# ESP32-S3, Pico W and Pico 2 W main.py, the CircuitPython Feather's code.py). Each
# board's file keeps only its wiring (sensor, LED, client id, WiFi, where the interval
# survives a deep sleep) and calls run() below.
#
# Every INTERVAL_S seconds it reads the chip's temperature sensor and publishes, at QoS 1,
#     devices/<id>/telemetry  {"seq": 7, "temp_c": 41.3, "interval_s": 60, "led": false,
#                              "skipped": 0}
# and it obeys two commands (mosquitto_pub -t devices/<id>/cmd/interval -m 10):
#     devices/<id>/cmd/interval  seconds between readings, 1..86400
#     devices/<id>/cmd/led       on | off | toggle
# devices/<id>/status is retained: "online" after each connect; "offline", the will,
# published by the broker when the link dies; "asleep" before a deep sleep.
#
# Behaviour when the link is down: a reading taken while not connected is NOT queued.
# It is counted, and the next reading sent carries the count in "skipped" ("seq" has a
# gap as well). A reading the client had accepted before it noticed the failure is
# resent by the library after the reconnect (QoS 1: at least once). Reconnecting is
# ReconnectPolicy's job (backoff with jitter); it re-joins WiFi first (breconnect_cb).
#
# The session is persistent (clean_session=False, a fixed client id from the chip):
# commands sent while the board was offline or asleep arrive when it is back. No
# threads on any board: Telemetry.step() calls client.cycle() from the main loop.
#
# Telemetry holds all the logic and no hardware: tests/test_boards.py runs it on a PC
# with umqtt_paho.testing. run() is the common part of the boards' main().

import json

from umqtt_paho import Client, MQTTError
from umqtt_paho.reconnect import ReconnectPolicy


class Telemetry:
    """The device's behaviour. client: an unconnected umqtt_paho Client; clock: has
    ticks_ms/ticks_diff/ticks_add/sleep_ms (the port); read_temp(): degrees C;
    set_led(on): drives the LED (or None); base: the topic prefix."""

    def __init__(self, client, clock, read_temp, set_led, base, interval_s=60):
        self.client = client
        self.clock = clock
        self.read_temp = read_temp
        self.set_led = set_led
        self.interval_s = interval_s
        self.led = False
        self.seq = 0  # readings taken
        self.sent = 0  # readings the client accepted (it delivers them)
        self.skipped = 0  # readings not sent since the last one sent
        self.rejected = 0  # commands that made no sense
        self.topic_data = base + "/telemetry"
        self.topic_status = base + "/status"
        self.topic_cmd = base + "/cmd/"
        self.policy = ReconnectPolicy(base_ms=2000, cap_ms=60000, blocking=False)
        self._next = clock.ticks_ms()  # the first reading is due at once

    def start(self, host, port=1883, keepalive=60, ssl_ctx=None, rejoin=None):
        """Will, command subscription, connect. If the broker cannot be reached now,
        step() keeps trying through the policy. Returns True if connected."""
        c = self.client
        c.set_will(self.topic_status, "offline", qos=1, retain=True)
        c.subscribe(self.topic_cmd + "#", self.on_command, qos=1)
        try:
            c.connect(host, keepalive, port=port, ssl_ctx=ssl_ctx, breconnect_cb=rejoin,
                      aconnect_cb=self.on_connect, loop_failure=self.policy, start_loop=False)
        except (OSError, MQTTError) as e:
            print("mqtt: connect failed (%r); retrying in the background" % (e,))
        return c.connected()

    def on_connect(self, client):
        # After every (re)connect: the retained status goes back to "online".
        print("mqtt: connected, session present:", client.session_present)
        client.publish(self.topic_status, "online", qos=1, retain=True, wait=False)

    def on_command(self, client, payload, topic):
        what = topic[len(self.topic_cmd):]
        arg = payload.decode().strip().lower()
        if what == "interval" and arg.isdigit() and 1 <= int(arg) <= 86400:
            # The next reading comes one new interval after the last one (or now).
            self._next = self.clock.ticks_add(self._next, (int(arg) - self.interval_s) * 1000)
            self.interval_s = int(arg)
        elif what == "led" and arg in ("on", "off", "toggle"):
            self.led = (not self.led) if arg == "toggle" else arg == "on"
            if self.set_led is not None:
                self.set_led(self.led)
        else:
            self.rejected += 1
            print("cmd: ignored %s %r" % (topic, payload))
            return
        print("cmd:", what, arg)

    def report(self, wait=True):
        """Take a reading and publish it at QoS 1. True: the client accepted it (it is
        delivered, across a reconnect if need be); False: offline, counted in skipped."""
        self.seq += 1
        msg = json.dumps({"seq": self.seq, "temp_c": round(self.read_temp(), 1),
                          "interval_s": self.interval_s, "led": self.led,
                          "skipped": self.skipped})
        why = "offline"
        if self.client.connected():
            try:
                self.client.publish(self.topic_data, msg, qos=1, wait=wait)
                self.sent += 1
                self.skipped = 0
                print("reading", msg)
                return True
            except MQTTError as e:  # raised before accepting it: nothing was sent
                why = str(e)
        self.skipped += 1
        print("reading %d skipped (%s)" % (self.seq, why))
        return False

    def step(self):
        """One pass of the main loop: a reading when one is due, then client.cycle(),
        which reads what the broker sent (commands, acks), keeps the link alive and,
        after a failure, lets the policy reconnect. Waits at most 1 s."""
        clock = self.clock
        if clock.ticks_diff(clock.ticks_ms(), self._next) >= 0:
            self.report()
            self._next = clock.ticks_add(self._next, self.interval_s * 1000)
            if clock.ticks_diff(self._next, clock.ticks_ms()) < 0:
                self._next = clock.ticks_add(clock.ticks_ms(), self.interval_s * 1000)
        left = clock.ticks_diff(self._next, clock.ticks_ms())
        self.client.cycle(max(1, min(left, 1000)))

    def wake(self, listen_ms=3000):
        """Deep-sleep mode, once per wake, after start(): take the commands the broker
        kept while we slept, publish one reading, mark the status "asleep", wait for
        every PUBACK (flush) and disconnect. Returns how long to sleep, in ms."""
        c = self.client
        clock = self.clock
        if c.connected():
            end = clock.ticks_add(clock.ticks_ms(), listen_ms)
            # Queued messages follow CONNACK at once: read until a quiet cycle.
            while c.connected() and clock.ticks_diff(end, clock.ticks_ms()) > 0:
                if c.cycle(200) <= 0:
                    break
            self.report(wait=False)
            if c.connected():
                c.publish(self.topic_status, "asleep", qos=1, retain=True, wait=False)
            if not c.flush(5000):  # the in-flight table lives in RAM: ack before sleeping
                print("sleeping with %d message(s) unacknowledged" % c.pending())
            c.disconnect()  # a clean DISCONNECT: the broker drops the will
        else:
            print("offline: no reading this time")
        return self.interval_s * 1000



def run(setting, port, cid, read_temp, set_led, rejoin, saved=None, ca=None, ssl_ctx=None):
    """The common part of main(): join WiFi, connect, then loop for ever; with the
    DEEP_SLEEP setting, one wake instead, returning (ms to sleep, the interval it
    started with, the interval now) for main() to keep the interval and sleep.
    setting(name, default): the board's settings (secrets.py, settings.toml);
    port: the port module (its clock too); cid: the client id; read_temp(), set_led(on)
    (or None): the sensor and the LED; rejoin(client): joins WiFi, raises OSError;
    saved: the interval kept across a deep sleep, or None; ca: MicroPython, a CA file
    (DER) for TLS; ssl_ctx: a context made by the board (CircuitPython: True)."""
    interval = saved or int(setting("INTERVAL_S", 60))
    try:
        rejoin(None)
    except OSError as e:  # CircuitPython's ConnectionError too
        print(e)  # the policy tries again, WiFi first
    client = Client(cid, clean_session=False, cycle_timeout=1000, command_timeout=10000,
                    port=port)
    user = setting("MQTT_USER", None)
    if user:
        client.set_username_pw(user, setting("MQTT_PASSWORD", ""))
    if ca:  # TLS, verifying the broker's certificate and name
        import ssl

        ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        # MicroPython's SSLContext starts with CERT_NONE. (The 1.29 stubs type it as
        # tls.SSLContext, which lacks the verify_mode property ssl.SSLContext has; the
        # host's typeshed, which checks the CircuitPython board, has it.)
        ssl_ctx.verify_mode = ssl.CERT_REQUIRED  # type: ignore[attr-defined, unused-ignore]
        ssl_ctx.load_verify_locations(cafile=ca)  # the broker's CA, DER format
    print("device", cid, "- topics under devices/%s/" % cid)
    app = Telemetry(client, port, read_temp, set_led, "devices/" + cid, interval)
    app.start(setting("MQTT_HOST", None), int(setting("MQTT_PORT", 1883)), ssl_ctx=ssl_ctx,
              rejoin=rejoin)
    if int(setting("DEEP_SLEEP", 0)):
        return app.wake(), interval, app.interval_s
    while True:
        app.step()
