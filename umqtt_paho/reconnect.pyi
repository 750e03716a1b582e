from .client import Client

class ReconnectPolicy:
    """loop_failure hook: reconnect with exponential backoff and jitter."""

    base_ms: int
    cap_ms: int
    max_attempts: int
    max_time_ms: int
    blocking: bool
    attempts: int
    outages: int
    given_up: bool
    def __init__(
        self,
        base_ms: int = 1000,
        cap_ms: int = 60000,
        max_attempts: int = 0,
        max_time_ms: int = 0,
        blocking: bool = True,
    ) -> None: ...
    def delay_ms(self, attempt: int) -> int: ...
    def __call__(self, client: Client) -> int: ...
