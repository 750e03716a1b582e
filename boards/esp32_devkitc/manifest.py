# Freeze umqtt_paho into MicroPython firmware for the ESP32 DevKitC (board ESP32_GENERIC):
#
#     cd micropython/ports/esp32
#     make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/umqtt_paho/boards/esp32_devkitc/manifest.py
#
# Frozen modules run from flash: no .mpy files in /lib, and less RAM at import.
include("$(PORT_DIR)/boards/manifest.py")  # noqa: F821  (the firmware's usual modules)
include("..", ports=("micropython", "stream", "tlswrap", "nothreads", "esp32"))  # noqa: F821  (boards/manifest.py)
