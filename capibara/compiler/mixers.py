"""The sequence mixers a block may have, as shapes: what lowering, the model spec
and parameter initialization share about ``attention``, ``ssm`` and ``hyena`` blocks.

Block ``i`` uses ``mixers[i % len(mixers)]``. Each mixer kind keeps its blocks
in its own stack of parameters (``blocks`` for attention, as before mixers
existed, then ``ssm_blocks`` and ``hyena_blocks``), each with the block's
feed-forward. Imports no JAX.
"""

from __future__ import annotations

import math
from typing import Sequence

__all__ = [
    "STACKS",
    "SSM_EXPAND",
    "HYENA_FILTER_FEATURES",
    "HYENA_FILTER_HIDDEN",
    "layer_counts",
    "ssm_inner",
    "ssm_dt_rank",
    "mixer_parameter_shapes",
]

#: The parameter stack of each mixer kind.
STACKS = {"attention": "blocks", "ssm": "ssm_blocks", "hyena": "hyena_blocks"}

#: An ``ssm`` block's inner width per model width (Mamba's expansion factor E = 2).
SSM_EXPAND = 2
#: Positional features (sines and cosines) a ``hyena`` filter is generated from.
HYENA_FILTER_FEATURES = 16
#: Width of the small MLP that turns those features into the filter.
HYENA_FILTER_HIDDEN = 64


def layer_counts(mixers: Sequence[str], num_layers: int) -> dict[str, int]:
    """Blocks of each mixer kind, for a pattern that tiles ``num_layers``."""
    repeats = num_layers // len(mixers)
    return {kind: repeats * list(mixers).count(kind) for kind in STACKS}


def ssm_inner(d: int) -> int:
    """The inner (expanded) width of an ``ssm`` block."""
    return SSM_EXPAND * d


def ssm_dt_rank(d: int) -> int:
    """Rank of an ``ssm`` block's step-size projection (Mamba's ``ceil(d / 16)``)."""
    return math.ceil(d / 16)


def mixer_parameter_shapes(kind: str, d: int, *, state_size: int, conv_width: int) -> dict[str, tuple[int, ...]]:
    """The mixer's own parameters of one block (the feed-forward's are shared by every kind).

    ``ssm``: ``in_proj`` to the inner stream and its gate, the short conv's
    taps and bias, ``x_proj`` to the step-size rank and the input-dependent
    ``B`` and ``C``, ``dt_proj`` and ``dt_bias`` (the step size), ``a_log``
    (the decay rates, ``A = -exp(a_log)``), ``skip`` (Mamba's ``D``) and
    ``out_proj``. ``hyena``: ``in_proj`` to three streams (query, key, value),
    their short conv, the filter MLP (``filter_w1``, ``filter_w2``), its
    per-channel decay, ``skip`` and ``out_proj``.
    """
    if kind == "attention":
        raise ValueError("attention blocks keep their parameters in `blocks` (params.init_params)")
    if kind == "ssm":
        e, r, n = ssm_inner(d), ssm_dt_rank(d), state_size
        return {"mix_norm": (d,), "in_proj": (d, 2 * e), "conv_w": (conv_width, e), "conv_b": (e,),
                "x_proj": (e, r + 2 * n), "dt_proj": (r, e), "dt_bias": (e,), "a_log": (e, n),
                "skip": (e,), "out_proj": (e, d)}
    if kind == "hyena":
        f, h = HYENA_FILTER_FEATURES, HYENA_FILTER_HIDDEN
        return {"mix_norm": (d,), "in_proj": (d, 3 * d), "conv_w": (conv_width, 3 * d),
                "conv_b": (3 * d,), "filter_w1": (f, h), "filter_w2": (h, d), "filter_decay": (d,),
                "skip": (d,), "out_proj": (d, d)}
    raise ValueError(f"unknown mixer {kind!r}")


def mixer_parameter_count(kind: str, d: int, *, state_size: int, conv_width: int) -> int:
    return sum(math.prod(s) for s in mixer_parameter_shapes(
        kind, d, state_size=state_size, conv_width=conv_width).values())
