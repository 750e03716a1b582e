from typing import Any, Final  # cpython-only: a stub, never imported on a board

from .packet import ArgError as ArgError
from .packet import MQTTError as MQTTError

ERR_SUCCESS: Final[int]
ERR_NOMEM: Final[int]
ERR_PROTOCOL: Final[int]
ERR_INVAL: Final[int]
ERR_NO_CONN: Final[int]
ERR_CONN_REFUSED: Final[int]
ERR_NOT_FOUND: Final[int]
ERR_CONN_LOST: Final[int]
ERR_TLS: Final[int]
ERR_PAYLOAD_SIZE: Final[int]
ERR_NOT_SUPPORTED: Final[int]
ERR_AUTH: Final[int]
ERR_ACL_DENIED: Final[int]
ERR_UNKNOWN: Final[int]
ERR_ERRNO: Final[int]
ERR_QUEUE_SIZE: Final[int]
ERR_KEEPALIVE: Final[int]
ERR_TIMEOUT: Final[int]
ERR_SUBSCRIBE_REFUSED: Final[int]

REASONS: dict[int, str]

def error_string(code: int) -> str: ...
def connack_string(rc: int) -> str: ...
def type_name(t: int) -> str: ...
def texts() -> dict[int, tuple[str, str, str]]: ...
def text_of(text: int | str, *args: Any) -> str: ...
def explain(e: BaseException, with_name: bool = False) -> str: ...
