# Sensor telemetry for an ESP32 DevKitC (MicroPython), with umqtt_paho: this board's
# wiring. What the device does (topics, commands, offline and deep-sleep behaviour) is
# telemetry.py's (boards/common/): Telemetry and run(), shared by every board example.
#
# The chip's temperature sensor; the LED on LED_PIN (the led command); the client id
# from the chip's MAC; WiFi by wifi_esp32.py; the interval an operator set survives a
# deep sleep in RTC memory.
# Settings: secrets.py (copy secrets_example.py; it is git-ignored).

from telemetry import run

LED_PIN = 2  # blue LED of "ESP32 DevKit V1" clones; Espressif's DevKitC V4 has none


def main(port=None):
    """Wire the real board. port: None on the board; tests pass a FakePort."""
    import binascii

    import esp32
    import machine

    import secrets
    import wifi_esp32

    if port is None:
        from umqtt_paho.ports import esp32 as port

    def read_temp():
        # ESP32-S2/S3/C3/C6 firmware has mcu_temperature() (C); the original ESP32 only
        # raw_temperature(), in F. Both measure the die: 20-40 C above the room.
        f = getattr(esp32, "mcu_temperature", None)
        return f() if f is not None else (esp32.raw_temperature() - 32) / 1.8

    def rejoin(client):
        wifi_esp32.connect(secrets.WIFI_SSID, secrets.WIFI_PASSWORD, clock=port)

    led = machine.Pin(LED_PIN, machine.Pin.OUT)
    cid = "esp32-" + binascii.hexlify(machine.unique_id()).decode()
    rtc = machine.RTC()  # its memory survives deep sleep (not a power cut)
    ms, _, interval_s = run(secrets.__dict__.get, port, cid, read_temp, led.value, rejoin,
                            int(rtc.memory() or 0), getattr(secrets, "MQTT_CA", None))
    rtc.memory(str(interval_s).encode())
    machine.deepsleep(ms)  # the board resets on waking: main.py runs again


if __name__ == "__main__":
    main()
