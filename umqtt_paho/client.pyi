from typing import Any, Callable, Final  # cpython-only (a stub)

from .packet import MQTTError as MQTTError
from .session import Session

BREAK_LOOP: Final[int]
RECOVERED: Final[int]
MQTTv31: Final[int]
MQTTv311: Final[int]

_Text = str | bytes
# What publish() takes: str (UTF-8 encoded), bytes-like, a number (its str()), or None.
_Payload = str | bytes | bytearray | memoryview | int | float | None
# function(client, payload, topic): payload is bytes and topic str, or both memoryviews
# of the receive buffer with client.deliver_views set; any return value is ignored.
_MessageFunction = Callable[[Client, Any, Any], object]
_Hook = Callable[[Client], object]

class Client:
    """An MQTT 3.1/3.1.1 client (API of the Paho-embedded-style 'Lightweight MQTT
    Library'); see client.py for the theory of operation."""

    client_id: bytes
    clean_session: bool
    protocol: int
    session: Session
    @property
    def session_present(self) -> bool: ...
    last_error: BaseException | None
    oversize_dropped: int
    unhandled: int
    on_message: _MessageFunction | None
    on_log: Callable[[Client, int, str], object] | None
    on_publish: Callable[[Client, int], object] | None
    on_subscribe: Callable[[Client, int, bytes], object] | None
    on_unsubscribe: Callable[[Client, int], object] | None
    last_qos: int
    last_retain: int
    last_dup: int
    last_mid: int
    tls_insecure: bool
    queue_offline: bool
    queue_qos0: bool
    outbox: Any
    store: Any
    drain_burst: int
    deliver_views: bool
    def __init__(
        self,
        client_id: _Text,
        clean_session: bool = True,
        cycle_timeout: int = 500,
        command_timeout: int = 60000,
        protocol: int = 4,
        port: Any = None,
        max_packet_size: int = 1024,
        send_buffer: int = 256,
        max_inflight: int = 20,
        max_inflight_in: int = 256,
        outbox: Any = None,
        store: Any = None,
    ) -> None: ...
    def set_username_pw(self, username: _Text | None, password: _Text | None = "") -> None: ...
    def set_will(
        self, topic: _Text, payload: _Text | None, qos: int = 0, retain: bool = True
    ) -> None: ...
    def connect(
        self,
        host: str,
        keepalive: int,
        port: int = 1883,
        ssl_ctx: Any = None,
        breconnect_cb: _Hook | None = None,
        aconnect_cb: _Hook | None = None,
        loop_failure: Callable[[Client], int] | None = None,
        start_loop: bool = True,
    ) -> int: ...
    def get_rc(self) -> int: ...
    def connected(self) -> bool: ...
    def reconnect(self) -> int: ...
    def disconnect(self, timeout: int | None = None) -> None: ...
    def loop(self) -> None: ...
    def cycle(self, timeout_ms: int | None = None) -> int: ...
    def publish(
        self,
        topic: _Text,
        payload: _Payload = "",
        qos: int = 0,
        retain: bool = False,
        wait: bool = True,
    ) -> int: ...
    def pending(self) -> int: ...
    def flush(self, timeout_ms: int | None = None) -> bool: ...
    def subscribe(
        self, topic: _Text, function: _MessageFunction | None, qos: int = 0
    ) -> int | None: ...
    def unsubscribe(self, topic: _Text) -> None: ...
