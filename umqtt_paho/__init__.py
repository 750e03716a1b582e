# umqtt_paho: a memory-frugal MQTT 3.1/3.1.1 client for MicroPython, CircuitPython and
# CPython, in the style of the Paho embedded C client.
#
# `import umqtt_paho` loads the core alone (client, session, codec, topic rules); every
# other module is loaded on first use: errors.py when an error is put into words,
# threadloop.py when the background loop starts, and the optional layers below when an
# application imports them.

import gc

# The core, one module at a time with a collection after each: loading a module leaves
# small garbage between its functions (the loader's own records), and a collection lets
# the next module's code fill those holes instead of the heap's free end. On a 32-bit
# board this lowers the heap the telemetry job needs by about 3 KB (tools/bench.py).
from . import packet  # noqa: E402, F401

gc.collect()
from . import session  # noqa: E402, F401

gc.collect()
from . import reader  # noqa: E402, F401

gc.collect()
from .client import Client, RECOVERED, BREAK_LOOP, MQTTv31, MQTTv311  # noqa: E402, F401
from .packet import MQTTError, topic_matches_sub  # noqa: E402, F401

gc.collect()


def __getattr__(name):
    # Imported on first use only: boards that don't use them don't pay their RAM.
    if name == "ReconnectPolicy":
        from .reconnect import ReconnectPolicy

        return ReconnectPolicy
    if name == "connack_string" or name == "error_string":
        from . import errors

        return getattr(errors, name)
    # `from umqtt_paho import paho`: MicroPython asks the package first.
    try:
        return __import__("umqtt_paho." + name, None, None, (name,))
    except ImportError:
        raise AttributeError(name)
