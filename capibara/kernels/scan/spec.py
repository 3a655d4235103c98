"""What the compiler knows about the scan family, without JAX: its static
parameters and when each variant applies (the ``select-kernels`` pass asks)."""

from __future__ import annotations

from typing import Any

__all__ = ["RANKING", "CHUNK", "SELECTORS"]

#: Time steps per chunk of the ``chunked`` variant: 16 to 256 were within noise
#: of each other (benchmarks/kernels_scan.py at B16 T4096 D256); 64 keeps both loops short.
CHUNK = 64


def _chunked(use: Any, ir: Any) -> dict[str, Any]:
    return {"chunk": CHUNK}


#: implementation → selector ``(use, ir) -> static params or Refusal``; every variant
#: accepts every ``[batch, seq, dim]`` recurrence, so only the target's ranking decides.
#: Implementations best first per platform. On CPU a time-step scan updating in
#: place is fastest (lax.associative_scan is ~3x slower on 2 cores,
#: benchmarks/kernels_scan.py); the log-depth scan fills accelerators' wide units.
RANKING = {"cpu": ("sequential", "chunked", "associative", "reference"),
           "gpu": ("associative", "chunked", "sequential", "reference"),
           "tpu": ("associative", "chunked", "sequential", "reference")}

SELECTORS = {
    "sequential": lambda use, ir: {},
    "chunked": _chunked,
    "associative": lambda use, ir: {},
    "reference": lambda use, ir: {},
}
