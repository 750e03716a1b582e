# Sensor telemetry for an ESP32-S3 DevKitC-1 (MicroPython), with umqtt_paho: this
# board's wiring. What the device does (topics, commands, offline and deep-sleep
# behaviour) is telemetry.py's (boards/common/): Telemetry and run(), shared by every
# board example.
#
# The chip's temperature sensor; the on-board RGB LED (dim green, the led command); the
# client id from the chip's MAC; WiFi by wifi_esp32.py; the interval an operator set
# survives a deep sleep in RTC memory.
# Settings: secrets.py (copy secrets_example.py; it is git-ignored).

from telemetry import run

LED_PIN = 48  # the addressable RGB LED (WS2812): GPIO48 on DevKitC-1 v1.0, 38 on v1.1


def main(port=None):
    """Wire the real board. port: None on the board; tests pass a FakePort."""
    import binascii

    import esp32
    import machine
    import neopixel

    import secrets
    import wifi_esp32

    if port is None:
        from umqtt_paho.ports import esp32 as port

    def read_temp():
        # The S3's sensor: mcu_temperature(), in C (firmware for the original ESP32 has
        # only raw_temperature(), in F). It measures the die: 10-20 C above the room.
        f = getattr(esp32, "mcu_temperature", None)
        return f() if f is not None else (esp32.raw_temperature() - 32) / 1.8

    def rejoin(client):
        wifi_esp32.connect(secrets.WIFI_SSID, secrets.WIFI_PASSWORD, clock=port)

    pixel = neopixel.NeoPixel(machine.Pin(LED_PIN), 1)

    def set_led(on):
        pixel[0] = (0, 24, 0) if on else (0, 0, 0)
        pixel.write()

    set_led(False)
    cid = "esp32s3-" + binascii.hexlify(machine.unique_id()).decode()
    rtc = machine.RTC()  # its memory survives deep sleep (not a power cut)
    ms, _, interval_s = run(secrets.__dict__.get, port, cid, read_temp, set_led, rejoin,
                            int(rtc.memory() or 0), getattr(secrets, "MQTT_CA", None))
    rtc.memory(str(interval_s).encode())
    machine.deepsleep(ms)  # the board resets on waking: main.py runs again


if __name__ == "__main__":
    main()
