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
>>> from capibara.kernels.moe import Experts, mor
>>> ex = Experts(jnp.ones((4, 8, 16)), jnp.ones((4, 16, 8)))
>>> r = mor(jnp.ones((3, 8)), jnp.zeros((8, 4)), ex, top_k=2, implementation="dispatch")
>>> r.output.shape, float(r.load_balancing_loss)
((3, 8), 1.0)

The compile path imports :mod:`.spec` (selectors, tile tables) without JAX,
so the exports below load from :mod:`.api` on first use.
"""

from __future__ import annotations

from capibara.lazy import lazy_exports

# The JAX half loads on first use, not when spec.py is imported.
_EXPORTS = {name: "capibara.kernels.moe.api" for name in (
    "Experts", "MoRResult", "VARIANTS", "capacity_of", "mor", "route",
)}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
