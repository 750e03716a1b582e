# WiFi bring-up for CircuitPython boards with an ESP32 radio (named wifi_join because
# `wifi` is CircuitPython's own module). WiFi is never inside the MQTT client: code.py
# calls connect() at boot, and again as breconnect_cb before every MQTT reconnect (it
# returns at once while the link is up).
#
# With CIRCUITPY_WIFI_SSID / CIRCUITPY_WIFI_PASSWORD in settings.toml, CircuitPython
# has joined the network before code.py starts; connect() then only checks.

import wifi

# CircuitPython reports a failed join as ConnectionError: "No network with that ssid",
# "Authentication failure", or "Unknown failure <n>" with ESP-IDF's disconnect reason:
REASONS = {
    2: "AUTH_EXPIRE: the access point dropped the authentication (retrying helps)",
    15: "4WAY_HANDSHAKE_TIMEOUT: usually a wrong password",
    200: "BEACON_TIMEOUT: the access point went quiet (weak signal? moved away?)",
    201: "NO_AP_FOUND: no access point with that SSID (typo? 5 GHz only? too far?)",
    202: "AUTH_FAIL: check CIRCUITPY_WIFI_PASSWORD",
    203: "ASSOC_FAIL: the access point refused us (MAC filter? full?)",
    204: "HANDSHAKE_TIMEOUT: the WPA handshake timed out (wrong password, or signal)",
    205: "CONNECTION_FAIL",
    210: "NO_AP_FOUND_W_COMPATIBLE_SECURITY: WPA3-only network? try WPA2/WPA3 mixed",
}


def explain(err):
    """The text of a join error, with the reason code spelled out."""
    text = str(err)
    last = text.split()[-1] if text else ""
    if last.isdigit() and int(last) in REASONS:
        return "%s (%s)" % (text, REASONS[int(last)])
    return text


def connect(ssid, password, timeout_ms=20000, retries=3, clock=None):
    """Join the network; returns wifi.radio, connected. Up to `retries` attempts of
    `timeout_ms` each; raises ConnectionError saying why.
    clock: has sleep_ms (the CircuitPython port module by default)."""
    if wifi.radio.connected:
        return wifi.radio
    if clock is None:
        from umqtt_paho.ports import circuitpython as clock
    why = "no attempt"
    for attempt in range(1, retries + 1):
        print("wifi: joining %r (attempt %d of %d)" % (ssid, attempt, retries))
        try:
            wifi.radio.connect(ssid, password, timeout=timeout_ms / 1000)
            print("wifi: connected, address", wifi.radio.ipv4_address)
            return wifi.radio
        except ConnectionError as e:
            why = explain(e)
            print("wifi: attempt failed:", why)
            if "Authentication" in why:
                break  # a wrong password stays wrong: say so at once
        clock.sleep_ms(1000 * attempt)
    raise ConnectionError("WiFi %r not joined: %s" % (ssid, why))
