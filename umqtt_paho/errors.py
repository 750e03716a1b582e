# umqtt_paho error codes and the one exception class.
#
# The numbers 0-16 are paho-mqtt's MQTT_ERR_* values, so code written against paho
# reads the same; 17 and up are this library's own. Texts are built only on the error
# path (error_string / connack_string), never at import.

ERR_SUCCESS = 0
ERR_NOMEM = 1
ERR_PROTOCOL = 2  # the broker sent something the spec does not allow
ERR_INVAL = 3  # the caller passed a bad argument
ERR_NO_CONN = 4  # not connected
ERR_CONN_REFUSED = 5  # CONNACK with a non-zero return code
ERR_NOT_FOUND = 6
ERR_CONN_LOST = 7  # the link closed or failed
ERR_TLS = 8
ERR_PAYLOAD_SIZE = 9  # a packet does not fit the buffer it must go through
ERR_NOT_SUPPORTED = 10
ERR_AUTH = 11
ERR_ACL_DENIED = 12
ERR_UNKNOWN = 13
ERR_ERRNO = 14
ERR_QUEUE_SIZE = 15  # a fixed table (in-flight, inbound QoS 2) is full
ERR_KEEPALIVE = 16  # no PINGRESP within the keepalive: the link is dead
ERR_TIMEOUT = 17  # an ack did not arrive within command_timeout
ERR_SUBSCRIBE_REFUSED = 18  # SUBACK return code 0x80


class MQTTError(Exception):
    """The library's one exception: MQTTError(code, message).

    `code` is one of the ERR_* numbers above; `str(e)` is the message, which says
    what went wrong and, for protocol errors, which spec rule was broken.
    """

    @property
    def code(self):
        return self.args[0]

    def __str__(self):
        if len(self.args) > 1:
            return self.args[1]
        return error_string(self.args[0])


def error_string(code):
    """Text for an ERR_* code (as paho-mqtt's error_string)."""
    texts = (
        "No error.",
        "Out of memory.",
        "A network protocol error occurred when communicating with the broker.",
        "Invalid function arguments provided.",
        "The client is not currently connected.",
        "The connection was refused.",
        "Message not found (internal error).",
        "The connection was lost.",
        "A TLS error occurred.",
        "Payload too large.",
        "This feature is not supported.",
        "Authorisation failed.",
        "Access denied by ACL.",
        "Unknown error.",
        "Error defined by errno.",
        "Message queue full.",
        "Client or broker did not communicate in the keepalive interval.",
        "Timed out waiting for the broker.",
        "The broker refused the subscription.",
    )
    if 0 <= code < len(texts):
        return texts[code]
    return "Unknown error."


def connack_string(rc):
    """Text for a CONNACK return code [MQTT-3.2.2.3]; -1 is a network failure."""
    texts = (
        "Connection Accepted.",
        "Connection Refused: unacceptable protocol version.",
        "Connection Refused: identifier rejected.",
        "Connection Refused: broker unavailable.",
        "Connection Refused: bad user name or password.",
        "Connection Refused: not authorised.",
    )
    if 0 <= rc < len(texts):
        return texts[rc]
    if rc == -1:
        return "Connection failed: no CONNACK (network error or timeout)."
    return "Connection Refused: unknown reason."
