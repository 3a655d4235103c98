"""moe: Mixture-of-Rookies, top-k routing over small expert FFNs with a load-balancing loss.

``mor(x, router_w, experts, top_k=2)`` routes each token of ``x: [..., d]``
with a float32 softmax router (``router_w: [d, E]``) to its ``top_k``
experts (``experts``: :class:`Experts` with ``w_in [E, d, f]`` and
``w_out [E, f, d]``), mixes their outputs with the renormalized gates and
returns a :class:`MoRResult` (output, Switch load-balancing loss, expert
load, dropped fraction).

Variants:

- ``reference``: every expert on every token, masked by the gates; the
  oracle and the anchor.
- ``dispatch``: sort tokens into per-expert buffers of ``capacity_factor``
  slots and compute only those (``capacity_factor=None``: never drop).

>>> import jax.numpy as jnp
>>> ex = Experts(jnp.ones((4, 8, 16)), jnp.ones((4, 16, 8)))
>>> r = mor(jnp.ones((3, 8)), jnp.zeros((8, 4)), ex, top_k=2, implementation="dispatch")
>>> r.output.shape, float(r.load_balancing_loss)
((3, 8), 1.0)
"""

from __future__ import annotations

import jax

from capibara.kernels.base import Variant
from capibara.kernels.moe.dispatch import capacity_of, mor_dispatch
from capibara.kernels.moe.reference import mor_reference
from capibara.kernels.moe.router import Experts, MoRResult, route

__all__ = ["Experts", "MoRResult", "VARIANTS", "capacity_of", "mor", "route"]

_EVERYWHERE = ("cpu", "gpu", "tpu")

VARIANTS: dict[str, Variant] = {
    "reference": Variant("moe", "reference", mor_reference, _EVERYWHERE,
                         {"top_k": 2, "activation": "gelu"},
                         "all experts on all tokens, masked by the gates; the oracle and the anchor"),
    "dispatch": Variant("moe", "dispatch", mor_dispatch, _EVERYWHERE,
                        {"top_k": 2, "activation": "gelu", "capacity_factor": 1.25},
                        "sorted per-expert buffers with a capacity; computes only routed tokens"),
}


def mor(
    x: jax.Array,
    router_w: jax.Array,
    experts: Experts,
    *,
    top_k: int = 2,
    implementation: str = "reference",
    **static,
) -> MoRResult:
    """Route ``x`` through its ``top_k`` experts with the named variant; see the module doc."""
    return VARIANTS[implementation](x, router_w, experts, top_k=top_k, **static)
