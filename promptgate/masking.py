"""Secrets a run learns after it starts, for whoever shows its output to mask them.

The Action masks the token and the well-known key variables before it reads anything; the key
a config names (`api_key_env`) and the values behind `${NAME}` in `provider.headers` are known
only once the provider starts. The provider reports each here, and the Action's log, listening,
masks it before anything can print it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

_lock = threading.Lock()
_secrets: list[str] = []
_listeners: list[Callable[[str], None]] = []


def add_secret(value: str) -> None:
    """Report a secret: every listener masks it (once, however often it is reported)."""
    if not value:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.append(value)
        listeners = list(_listeners)
    for listener in listeners:
        listener(value)


def on_secret(listener: Callable[[str], None]) -> Callable[[], None]:
    """Call `listener` with each secret, those known already first; returns the way to stop."""
    with _lock:
        known = list(_secrets)
        _listeners.append(listener)
    for secret in known:
        listener(secret)

    def stop() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return stop
