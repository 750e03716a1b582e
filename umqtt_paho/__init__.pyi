# Type stubs for umqtt_paho's public API (the implementation is plain, unannotated
# MicroPython-compatible code). tests/test_typecheck.py checks them against it.
from .client import (
    BREAK_LOOP as BREAK_LOOP,
    RECOVERED as RECOVERED,
    Client as Client,
    MQTTv31 as MQTTv31,
    MQTTv311 as MQTTv311,
)
from .errors import (
    MQTTError as MQTTError,
    connack_string as connack_string,
    error_string as error_string,
)
from .reconnect import ReconnectPolicy as ReconnectPolicy  # imported on first use
from .packet import topic_matches_sub as topic_matches_sub
