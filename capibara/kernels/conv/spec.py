"""What the compiler knows about the conv family, without JAX: the widths each
variant takes (the ``select-kernels`` pass asks)."""

from __future__ import annotations

from typing import Any

__all__ = ["RANKING", "MAX_WIDTH", "SELECTORS"]

#: ``shift_add`` unrolls its taps at trace time: past this many, the program
#: grows without getting faster, and long filters belong to ``fft.long_conv``.
MAX_WIDTH = 64


def _shift_add(use: Any, ir: Any) -> Any:
    from capibara.kernels.selection import Refusal

    width = int(use.shapes["w"][0])
    if width > MAX_WIDTH:
        return Refusal(f"{width} taps is above the {MAX_WIDTH} that shift_add unrolls")
    return {}


#: Implementations best first per platform.
RANKING = {platform: ("shift_add", "reference") for platform in ("cpu", "gpu", "tpu")}

SELECTORS = {
    "shift_add": _shift_add,
    "reference": lambda use, ir: {},
}
