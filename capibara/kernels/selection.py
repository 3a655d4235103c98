"""What every family's selectors share, without JAX: the refusal and the tuning mode."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["Refusal", "tuning_mode"]


class Refusal(msgspec.Struct, frozen=True):
    """Why an implementation does not apply to a kernel use."""

    reason: str


def tuning_mode(ir: Any) -> str:
    """``"aggressive"`` under ``compile_mode = "aggressive"``, else ``"default"`` (tile tables' keys)."""
    return "aggressive" if ir.config.compile_mode == "aggressive" else "default"
