from typing import Any  # cpython-only: a stub, never imported on a board

class MQTTError(Exception):
    """MQTTError(code, text, args...): `code` is one of the ERR_* numbers of errors.py;
    str(e) words it (errors.py)."""

    @property
    def code(self) -> int: ...
    def __str__(self, with_name: bool = False) -> str: ...

class ArgError(ValueError):
    """A bad argument: ArgError(text, args...), worded like MQTTError."""

    def __str__(self, with_name: bool = False) -> str: ...

def remaining_length_size(n: int) -> int: ...
def remaining_length(mv: Any, pos: int, end: int) -> int: ...
def packet_type(first: int) -> int: ...
def encode_connect(
    buf: bytearray,
    client_id: bytes,
    clean_session: bool = True,
    keepalive: int = 60,
    will_topic: bytes | None = None,
    will_payload: bytes = b"",
    will_qos: int = 0,
    will_retain: bool = False,
    username: bytes | None = None,
    password: bytes | None = None,
    protocol: int = 4,
) -> int: ...
def encode_publish(
    buf: bytearray,
    topic: Any,
    payload_len: int,
    qos: int = 0,
    retain: bool = False,
    dup: bool = False,
    pid: int = 0,
    checked: bool = False,
) -> int: ...
def encode_ack(buf: bytearray, ptype: int, pid: int) -> int: ...
def encode_subscribe(buf: bytearray, pid: int, filters: Any, unsubscribe: bool = False) -> int: ...
def decode_connack(first: int, mv: Any, pos: int, rl: int) -> int: ...
def decode_ack(first: int, mv: Any, pos: int, rl: int) -> int: ...
def decode_suback(first: int, mv: Any, pos: int, rl: int) -> int: ...
def decode_publish(first: int, mv: Any, pos: int, rl: int) -> int: ...
