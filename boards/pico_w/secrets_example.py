# Settings for main.py. Copy this file to secrets.py and fill it in; secrets.py is
# git-ignored (boards/.gitignore) and tools/deploy.py copies it to the board.

WIFI_SSID = "my-network"  # 2.4 GHz: the CYW43439 has no 5 GHz radio
WIFI_PASSWORD = "my-password"
WIFI_COUNTRY = None  # e.g. "DE": the radio then uses the channels allowed there

MQTT_HOST = "192.168.1.10"  # an IP address avoids DNS (MicroPython cannot bound it)
MQTT_PORT = 1883  # 8883 with MQTT_CA
MQTT_USER = None  # or "name", with MQTT_PASSWORD
MQTT_PASSWORD = None
MQTT_CA = None  # e.g. "ca.der": TLS, checking the broker's certificate against this CA

INTERVAL_S = 60  # seconds between readings (the "interval" command changes it)
DEEP_SLEEP = False  # True: deep sleep between readings (one reading per wake)
