"""Why an implementation does not apply to a kernel use (a selector's answer); no JAX."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Refusal"]


@dataclass(frozen=True)
class Refusal:
    """Why an implementation does not apply to a kernel use."""

    reason: str
