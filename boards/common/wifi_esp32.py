# WiFi bring-up for ESP32 boards (MicroPython): the esp32_devkitc and esp32s3 examples
# share it. WiFi is never inside the MQTT client: main.py calls connect() at boot, and
# again as breconnect_cb before every MQTT reconnect (it returns at once while the link
# is up).
#
#     import wifi_esp32
#     wlan = wifi_esp32.connect("my-network", "my-password")   # OSError with the reason

import network

# wlan.status() on ESP32: network.STAT_* and ESP-IDF's disconnect reasons (the status
# after a failed attempt is the reason the access point or the driver gave).
STATUS = {
    1000: "IDLE: not connected, not trying",
    1001: "CONNECTING",
    1010: "GOT_IP: connected",
    2: "AUTH_EXPIRE: the access point dropped the authentication (retrying helps)",
    8: "ASSOC_LEAVE: disconnected on purpose",
    15: "4WAY_HANDSHAKE_TIMEOUT: usually a wrong password",
    200: "BEACON_TIMEOUT: the access point went quiet (weak signal? moved away?)",
    201: "NO_AP_FOUND: no access point with that SSID (typo? 5 GHz only? too far?)",
    202: "WRONG_PASSWORD (AUTH_FAIL): check WIFI_PASSWORD",
    203: "ASSOC_FAIL (CONNECT_FAIL): the access point refused us (MAC filter? full?)",
    204: "HANDSHAKE_TIMEOUT: the WPA handshake timed out (wrong password, or signal)",
    205: "CONNECTION_FAIL",
    210: "NO_AP_FOUND_W_COMPATIBLE_SECURITY: WPA3-only network? try WPA2/WPA3 mixed",
    211: "NO_AP_FOUND_IN_AUTHMODE_THRESHOLD: the network's security is too weak",
    212: "NO_AP_FOUND_IN_RSSI_THRESHOLD: the signal is too weak",
}
_CONNECTING = (1000, 1001)
_NO_RETRY = (202,)  # a wrong password stays wrong: say so at once


def status_text(code):
    return "%d %s" % (code, STATUS.get(code, "unknown status"))


def connect(ssid, password, timeout_ms=20000, retries=3, clock=None):
    """Join the network; returns the WLAN, connected. Up to `retries` attempts of
    `timeout_ms` each; raises OSError naming the last status (see STATUS).
    clock: ticks_ms/ticks_diff/sleep_ms (the `time` module by default)."""
    if clock is None:
        import time as clock
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if wlan.isconnected():
        return wlan
    code = wlan.status()
    for attempt in range(1, retries + 1):
        print("wifi: joining %r (attempt %d of %d)" % (ssid, attempt, retries))
        try:
            wlan.disconnect()  # stop any attempt still under way
        except OSError:
            pass
        wlan.connect(ssid, password)
        start = clock.ticks_ms()
        while clock.ticks_diff(clock.ticks_ms(), start) < timeout_ms:
            if wlan.isconnected():
                print("wifi: connected, address", wlan.ifconfig()[0])
                return wlan
            code = wlan.status()
            if code not in _CONNECTING and code != 1010:
                break  # failed: the code says why
            clock.sleep_ms(200)
        if code in _CONNECTING:
            print("wifi: no connection within %d ms (%s)" % (timeout_ms, status_text(code)))
        else:
            print("wifi: attempt failed:", status_text(code))
        if code in _NO_RETRY:
            break
        clock.sleep_ms(1000 * attempt)
    wlan.active(False)  # a clean start for the next call (a radio stuck half-way)
    raise OSError(code, "WiFi %r not joined: %s" % (ssid, status_text(code)))
