# umqtt_paho: a memory-frugal MQTT 3.1/3.1.1 client for MicroPython, CircuitPython and
# CPython, in the style of the Paho embedded C client.
#
# `import umqtt_paho` loads the core alone (client, session, codec, topic rules); every
# other module is loaded on first use: errors.py when an error is put into words,
# threadloop.py when the background loop starts, and the optional layers below when an
# application imports them.

import gc

# The core: client.py loads the other core modules one at a time, collecting after
# each (see there).
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
