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
    # Imported on first use only: boards that don't use them don't pay their RAM.
    if name == "ReconnectPolicy":
        from .reconnect import ReconnectPolicy

        return ReconnectPolicy
    if name in ("paho", "publish", "reconnect", "testing", "outbox", "flashlog", "forward"):
        # `from umqtt_paho import paho`: MicroPython asks the package first.
        return __import__("umqtt_paho." + name, None, None, (name,))
    raise AttributeError(name)
