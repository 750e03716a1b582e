# Freeze umqtt_paho into MicroPython firmware for the ESP32-S3 DevKitC-1 (board
# ESP32_GENERIC_S3; add BOARD_VARIANT=SPIRAM_OCT for the N8R8 / N16R8 modules):
#
#     cd micropython/ports/esp32
#     make BOARD=ESP32_GENERIC_S3 FROZEN_MANIFEST=/path/to/umqtt_paho/boards/esp32s3/manifest.py
#
# Frozen modules run from flash: no .mpy files in /lib, and less RAM at import.
include("$(PORT_DIR)/boards/manifest.py")  # noqa: F821  (the firmware's usual modules)
include("..", ports=("micropython", "stream", "tlswrap", "nothreads", "esp32"))  # noqa: F821  (boards/manifest.py)
