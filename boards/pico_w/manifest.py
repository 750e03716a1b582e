# Freeze umqtt_paho into MicroPython firmware for the Raspberry Pi Pico W (board
# RPI_PICO_W):
#
#     cd micropython/ports/rp2
#     make BOARD=RPI_PICO_W FROZEN_MANIFEST=/path/to/umqtt_paho/boards/pico_w/manifest.py
#
# Frozen modules run from flash: no .mpy files in /lib, and less RAM at import.
include("$(BOARD_DIR)/manifest.py")  # noqa: F821  (the board's usual modules: network, mip)
include("..", ports=("micropython", "stream", "tlswrap", "nothreads", "rp2"))  # noqa: F821  (boards/manifest.py)
