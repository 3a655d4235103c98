"""The input contract every scan variant shares, and its custom VJP.

``h_t = a_t * h_{t-1} + b_t`` over axis 1 of ``[batch, seq, dim]`` from
``h_{-1} = 0``. Every variant computes in float32 (a recurrence accumulated in
bf16 drifts by 2^-8 per step) and returns ``result_type(a, b)``.

The gradient of a linear recurrence is the same recurrence run backwards:
with ``g_t`` the cotangent of ``h_t``, ``lam_t = a_{t+1} * lam_{t+1} + g_t``,
then ``db_t = lam_t`` and ``da_t = lam_t * h_{t-1}``. :func:`with_recurrence_vjp`
gives a variant that gradient by running its own forward kernel in reverse,
so the backward pass is exactly as fast as the forward one and needs only
``a`` and the output saved.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

__all__ = ["check_inputs", "with_recurrence_vjp"]

# forward(a, b, reverse, **static) -> h, on float32 [batch, seq, dim] arrays.
# reverse=True runs t = seq-1 .. 0: h_t = a_t * h_{t+1} + b_t.
Forward = Callable[..., jax.Array]


def check_inputs(a: jax.Array, b: jax.Array) -> None:
    """Raise ``ValueError`` for inputs no variant can scan."""
    if a.ndim != 3 or a.shape != b.shape:
        raise ValueError(f"a and b must both be [batch, seq, dim], got shapes {a.shape} and {b.shape}")
    if a.shape[1] == 0:
        raise ValueError(f"empty sequence: shape {a.shape}")


def with_recurrence_vjp(forward: Forward, name: str, doc: str) -> Callable[..., jax.Array]:
    """``name(a, b, **static)`` from a float32 forward kernel, differentiable by
    running the same kernel in reverse (see the module docstring)."""

    @functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
    def run(a, b, static, b_dtype):
        return _forward32(forward, a, b, False, static).astype(jnp.result_type(a, b))

    def run_fwd(a, b, static, b_dtype):
        h = run(a, b, static, b_dtype)
        return h, (a, h)

    def run_bwd(static, b_dtype, residuals, g):
        a, h = residuals
        # lam_t = a_{t+1} * lam_{t+1} + g_t: shift a left by one step. Its last
        # entry multiplies the zero initial state of the reverse run, so 0 is fine.
        a_next = jnp.pad(a[:, 1:], ((0, 0), (0, 1), (0, 0)))
        lam = _forward32(forward, a_next, g, True, static)
        h_prev = jnp.pad(h[:, :-1], ((0, 0), (1, 0), (0, 0))).astype(jnp.float32)
        return (lam * h_prev).astype(a.dtype), lam.astype(b_dtype)

    run.defvjp(run_fwd, run_bwd)

    def scan(a: jax.Array, b: jax.Array, **static) -> jax.Array:
        a, b = jnp.asarray(a), jnp.asarray(b)
        check_inputs(a, b)
        return run(a, b, tuple(sorted(static.items())), b.dtype.name)

    scan.__name__ = scan.__qualname__ = name
    scan.__doc__ = doc
    return scan


def _forward32(forward: Forward, a, b, reverse: bool, static) -> jax.Array:
    return forward(a.astype(jnp.float32), b.astype(jnp.float32), reverse, **dict(static))
