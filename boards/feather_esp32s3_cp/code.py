# Sensor telemetry for an Adafruit Feather ESP32-S3 (CircuitPython 9 or 10), with
# umqtt_paho: this board's wiring. This is code.py: CircuitPython runs code.py before
# main.py, and a new board ships with one. What the device does (topics, commands,
# offline and deep-sleep behaviour) is telemetry.py's (boards/common/): Telemetry and
# run(), shared by every board example.
#
# CircuitPython's differences come in as wiring: settings from settings.toml
# (os.getenv), the port module configured with a socket pool, WiFi by wifi_join.py,
# TLS with CircuitPython's CA bundle, the interval kept across a deep sleep in
# alarm.sleep_memory. The red LED by the USB socket (the led command); the client id
# from the chip's unique id. CircuitPython has no threads: client.cycle() in the loop.
# Settings: settings.toml (copy settings_example.toml; it is git-ignored).

from telemetry import run


def main(port=None):
    """Wire the real board. port: None on the board; tests pass a FakePort."""
    import binascii
    import os
    import time

    import alarm
    import board
    import digitalio
    import microcontroller

    import wifi_join

    if port is None:
        import socketpool
        import ssl
        import wifi

        from umqtt_paho.ports import circuitpython

        circuitpython.configure(socketpool.SocketPool(wifi.radio), ssl.create_default_context())
        port = circuitpython

    def read_temp():
        return microcontroller.cpu.temperature  # the die, in C: 10-20 C above the room

    def rejoin(client):
        wifi_join.connect(os.getenv("CIRCUITPY_WIFI_SSID"),
                          os.getenv("CIRCUITPY_WIFI_PASSWORD"), clock=port)

    led = digitalio.DigitalInOut(board.LED)
    led.switch_to_output(False)

    def set_led(on):
        led.value = on

    cid = "cp-" + binascii.hexlify(microcontroller.cpu.uid).decode()
    saved = None
    if alarm.wake_alarm is not None:  # woken from deep sleep: sleep_memory kept it
        saved = int.from_bytes(alarm.sleep_memory[0:4], "little")
    tls = int(os.getenv("MQTT_TLS", 0))  # True below: the port's default context
    ms, _, interval_s = run(os.getenv, port, cid, read_temp, set_led, rejoin, saved,
                            ssl_ctx=True if tls else None)
    alarm.sleep_memory[0:4] = interval_s.to_bytes(4, "little")
    wake_at = alarm.time.TimeAlarm(monotonic_time=time.monotonic() + ms / 1000)
    # On USB power CircuitPython only pretends to sleep (the REPL stays usable).
    alarm.exit_and_deep_sleep_until_alarms(wake_at)  # wakes as a reset: code.py again


if __name__ == "__main__":
    main()
