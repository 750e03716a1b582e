# WiFi bring-up for the Raspberry Pi Pico W and Pico 2 W (MicroPython, CYW43 radio): the
# pico_w and pico2_w examples share it. WiFi is never inside the MQTT client: main.py
# calls connect() at boot, and again as breconnect_cb before every MQTT reconnect (it
# returns at once while the link is up).
#
#     import wifi_rp2
#     wlan = wifi_rp2.connect("my-network", "my-password")   # OSError with the reason

import network

# wlan.status() on RP2 boards: network.STAT_* are the CYW43 driver's CYW43_LINK_* values.
STATUS = {
    0: "IDLE (LINK_DOWN): not connected, not trying",
    1: "CONNECTING (LINK_JOIN): joining the network",
    2: "NOIP (LINK_NOIP): joined, no address from DHCP yet",
    3: "GOT_IP (LINK_UP): connected",
    -1: "CONNECT_FAIL (LINK_FAIL): the join failed (signal? access point full?)",
    -2: "NO_AP_FOUND (LINK_NONET): no access point with that SSID (typo? 5 GHz only?)",
    -3: "WRONG_PASSWORD (LINK_BADAUTH): check WIFI_PASSWORD",
}
_CONNECTING = (0, 1, 2)
_NO_RETRY = (-3,)  # a wrong password stays wrong: say so at once


def status_text(code):
    return "%d %s" % (code, STATUS.get(code, "unknown status"))


def connect(ssid, password, timeout_ms=20000, retries=3, clock=None, country=None):
    """Join the network; returns the WLAN, connected. Up to `retries` attempts of
    `timeout_ms` each; raises OSError naming the last status (see STATUS).
    clock: ticks_ms/ticks_diff/sleep_ms (the `time` module by default).
    country: e.g. "DE", so the radio uses the channels allowed there (channels 12-13
    are not used without it)."""
    if clock is None:
        import time as clock
    if country:
        network.country(country)
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if wlan.isconnected():
        return wlan
    code = wlan.status()
    for attempt in range(1, retries + 1):
        print("wifi: joining %r (attempt %d of %d)" % (ssid, attempt, retries))
        wlan.disconnect()  # stop any attempt still under way
        wlan.connect(ssid, password)
        start = clock.ticks_ms()
        while clock.ticks_diff(clock.ticks_ms(), start) < timeout_ms:
            code = wlan.status()
            if code == 3 and wlan.isconnected():
                print("wifi: connected, address", wlan.ifconfig()[0])
                return wlan
            if code < 0:
                break  # failed: the code says why
            clock.sleep_ms(200)
        if code in _CONNECTING:
            print("wifi: no connection within %d ms (%s)" % (timeout_ms, status_text(code)))
        else:
            print("wifi: attempt failed:", status_text(code))
        if code in _NO_RETRY:
            break
        clock.sleep_ms(1000 * attempt)
    wlan.active(False)  # a clean start for the next call
    raise OSError(code, "WiFi %r not joined: %s" % (ssid, status_text(code)))
