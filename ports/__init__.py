# Platform ports. On a board this folder is installed as umqtt_paho/ports/; on a host,
# setup.cfg maps it there. select() picks the port for the running interpreter.


def select(name=None):
    """The port module for `name`, or for this interpreter and board if None."""
    if name is None:
        import sys

        impl = sys.implementation.name
        if impl == "circuitpython":
            name = "circuitpython"
        elif impl == "micropython":
            name = sys.platform if sys.platform in ("esp32", "rp2") else "micropython"
        else:
            name = "cpython"
    if name == "cpython":
        from . import cpython as port
    elif name == "micropython":
        from . import micropython as port
    elif name == "esp32":
        from . import esp32 as port
    elif name == "rp2":
        from . import rp2 as port
    elif name == "circuitpython":
        from . import circuitpython as port
    else:
        raise ValueError("unknown port %r" % (name,))
    return port
