"""What the compiler knows about the fft family, without JAX: ``fft`` or
``direct`` by the cost model of :mod:`.cost` (the ``select-kernels`` pass asks)."""

from __future__ import annotations

from typing import Any

from capibara.kernels.fft.cost import choose_long_conv, long_conv_costs

__all__ = ["RANKING", "SELECTORS"]


def _by_cost(name: str):
    def select(use: Any, ir: Any) -> Any:
        from capibara.kernels.selection import Refusal

        length, taps = int(use.shapes["u"][-1]), int(use.shapes["k"][-1])
        best = choose_long_conv(length, taps, ir.target.platform)
        if best != name:
            costs = long_conv_costs(length, taps)
            return Refusal(f"{best} is cheaper for {taps} taps over {length} "
                           f"({costs[best] / 1e3:.0f} vs {costs[name] / 1e3:.0f} µs per channel, "
                           "kernels/fft/cost.py)")
        return {}

    return select


#: Implementations best first per platform; the selectors let only the cheaper of
#: ``fft`` and ``direct`` apply (:func:`.cost.choose_long_conv`).
RANKING = {platform: ("fft", "direct", "reference") for platform in ("cpu", "gpu", "tpu")}

SELECTORS = {
    "fft": _by_cost("fft"),
    "direct": _by_cost("direct"),
    "reference": lambda use, ir: {},
}
