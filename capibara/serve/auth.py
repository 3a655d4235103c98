"""Who is calling: API keys checked in constant time, and a rate limit per caller.

A caller is named in logs by :func:`key_id` (a short hash), never by the key.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time

__all__ = ["KeyRing", "RateLimiter", "key_id", "bearer_token"]


def key_id(key: str) -> str:
    """A stable, non-reversible name for a key: ``key-`` and 8 hex digits of its sha256."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, else ``None``."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class KeyRing:
    """The accepted keys. :meth:`check` compares against every key in constant
    time (``hmac.compare_digest`` on digests), so neither a key's length nor how
    many leading characters match shows in the response time."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._digests = tuple(hashlib.sha256(k.encode()).digest() for k in keys)

    def __bool__(self) -> bool:
        return bool(self._digests)

    def check(self, presented: str | None) -> bool:
        digest = hashlib.sha256((presented or "").encode()).digest()
        matched = False
        for known in self._digests:  # no early exit: every key is compared
            matched |= hmac.compare_digest(digest, known)
        return matched and presented is not None


class RateLimiter:
    """A token bucket per caller: ``per_minute`` requests a minute, bursts up to that many.

    :meth:`take` returns 0 when the request may go ahead, else the seconds until it could.
    """

    def __init__(self, per_minute: float) -> None:
        if per_minute <= 0:
            raise ValueError(f"{per_minute=} must be positive")
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._buckets: dict[str, list[float]] = {}  # caller -> [tokens, updated]
        self._lock = threading.Lock()

    def take(self, caller: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, updated = self._buckets.get(caller, (self.per_minute, now))
            tokens = min(self.per_minute, tokens + (now - updated) * self._rate)
            allowed = tokens >= 1.0
            self._buckets[caller] = [tokens - 1.0 if allowed else tokens, now]
            return 0.0 if allowed else (1.0 - tokens) / self._rate
