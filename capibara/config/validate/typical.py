"""Values a field accepts but training almost never uses: likely typos, warned about.

A learning rate of ``1e308`` or an epsilon of ``5e-324`` passes the schema (both
are positive finite numbers) and then silently ruins a run: the first
overflows every update, the second is zero in float32 and lets Adam divide by
zero. :data:`TYPICAL_RANGES` holds the range outside which a value set by the
user is a warning (S206) with the usual values as help. Unlike the rules, this
looks at one field at a time, so it has no rule number.
"""

from __future__ import annotations

from typing import Any, Iterator

from capibara.config.fieldtypes import format_value
from capibara.config.validate.engine import Finding

__all__ = ["TYPICAL_RANGES", "UNUSUAL_VALUE", "unusual_values"]

UNUSUAL_VALUE = "S206"

#: field -> (lowest, highest typical value, what is usual and why the edges matter)
TYPICAL_RANGES: dict[str, tuple[float, float, str]] = {
    "learning_rate": (1e-7, 1.0, "learning rates are usually between 1e-5 and 1e-2; above 1 "
                                 "updates overshoot, below 1e-7 nothing is learned"),
    "epsilon": (1e-12, 1e-2, "the optimizer epsilon is usually 1e-8 (1e-6 to 1e-5 with "
                             "bfloat16); below 1e-12 it vanishes beside the gradient statistics "
                             "(below 1.2e-38 it is 0 in float32), above 1e-2 it damps every step"),
}


def unusual_values(config: Any) -> Iterator[Finding]:
    """A finding for each field the user set outside its typical range (defaults never)."""
    for name, (low, high, usual) in TYPICAL_RANGES.items():
        value = getattr(config, name)
        if low <= value <= high or not config.provenance(name).explicit:
            continue
        side, edge = ("above", high) if value > high else ("below", low)
        yield Finding(f"`{name}` {format_value(value)} is far {side} the usual range", (name,),
                      {name: f"{side} {format_value(edge)}"}, help=f"check for a typo: {usual}")
