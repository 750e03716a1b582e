# umqtt_paho: a memory-frugal MQTT 3.1/3.1.1 client for MicroPython, CircuitPython and
# CPython, in the style of the Paho embedded C client.

from .client import (  # noqa: F401
    Client,
    RECOVERED,
    BREAK_LOOP,
    MQTTv31,
    MQTTv311,
)
from .errors import MQTTError, connack_string, error_string  # noqa: F401
from .topic import topic_matches_sub  # noqa: F401


def __getattr__(name):
    # Imported on first use only: boards that don't use it don't pay its RAM.
    if name == "ReconnectPolicy":
        from .reconnect import ReconnectPolicy

        return ReconnectPolicy
    raise AttributeError(name)
