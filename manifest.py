# MicroPython freeze manifest for umqtt_paho with all the MicroPython ports (micropython,
# esp32, rp2; the right one is picked at import). Include it from your own firmware
# manifest, after the firmware's usual modules:
#
#     include("$(PORT_DIR)/boards/manifest.py")
#     include("/path/to/umqtt_paho/manifest.py")
#
# boards/<board>/manifest.py freeze only the ports that board needs; see boards/README.md.
include("boards/manifest.py", ports=("micropython", "esp32", "rp2"))  # noqa: F821
