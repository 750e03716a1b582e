# Sensor telemetry for a Raspberry Pi Pico 2 W (MicroPython), with umqtt_paho: this board's
# wiring. What the device does (topics, commands, offline and deep-sleep behaviour) is
# telemetry.py's (boards/common/): Telemetry and run(), shared by every board example.
#
# The RP2350's temperature sensor; the on-board LED (the led command); the client id
# from the flash chip's serial number; WiFi by wifi_rp2.py; the interval an operator
# set survives a deep sleep in INTERVAL_FILE. The RP2 port has no background thread
# (see ports/rp2.py): everything runs in the main loop.
# Settings: secrets.py (copy secrets_example.py; it is git-ignored).

from telemetry import run

LED_PIN = "LED"  # the on-board LED, wired to the CYW43 WiFi chip
INTERVAL_FILE = "interval.txt"  # the interval set by command, kept across resets


def main(port=None):
    """Wire the real board. port: None on the board; tests pass a FakePort."""
    import binascii

    import machine
    import network

    import secrets
    import wifi_rp2

    if port is None:
        from umqtt_paho.ports import rp2 as port

    sensor = machine.ADC(machine.ADC.CORE_TEMP)  # input 4 on the RP2350A (8 on RP2350B)

    def read_temp():
        # The RP2040 datasheet's formula, which the RP2350's sensor shares: 0.706 V at
        # 27 C, -1.721 mV per degree. It measures the die, and the ADC reference is the
        # 3.3 V rail: +-2 C at best.
        volts = sensor.read_u16() * 3.3 / 65535
        return 27 - (volts - 0.706) / 0.001721

    def rejoin(client):
        wifi_rp2.connect(secrets.WIFI_SSID, secrets.WIFI_PASSWORD, clock=port,
                         country=getattr(secrets, "WIFI_COUNTRY", None))

    led = machine.Pin(LED_PIN, machine.Pin.OUT)
    cid = "pico2w-" + binascii.hexlify(machine.unique_id()).decode()
    try:  # written only when a command changed it: flash wear stays negligible
        with open(INTERVAL_FILE) as f:
            saved = int(f.read())
    except (OSError, ValueError):
        saved = None
    ms, was, interval_s = run(secrets.__dict__.get, port, cid, read_temp, led.value, rejoin,
                              saved, getattr(secrets, "MQTT_CA", None))
    if interval_s != was:
        with open(INTERVAL_FILE, "w") as f:
            f.write(str(interval_s))
    network.WLAN(network.STA_IF).active(False)  # the radio off before sleeping
    machine.deepsleep(ms)  # on RP2: a light sleep, then a reset: main.py runs again


if __name__ == "__main__":
    main()
