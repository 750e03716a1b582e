# Platform ports. On a board this folder is installed as umqtt_paho/ports/; on a host,
# setup.cfg maps it there. select() picks the port for the running interpreter.


def select(name=None):
    """The port module `name` (cpython, micropython, esp32, rp2, circuitpython: this
    folder's files), or if None the one for this interpreter: named after it, or after
    the board (sys.platform) where MicroPython has a port of its own."""
    import gc
    import sys

    if name is None:
        name = sys.implementation.name
        if name == "micropython" and (sys.platform == "esp32" or sys.platform == "rp2"):
            name = sys.platform
    gc.collect()  # the client's leftovers: the port's code fills their holes
    return __import__("umqtt_paho.ports." + name, None, None, ("NAME",))
