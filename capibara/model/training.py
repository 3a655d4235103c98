"""Training: the optimizer and schedule a config's ``[training]`` section asks for, and the step.

The ``[training]`` fields map onto optax like this:

- ``optimizer``: ``adamw`` (``beta1``, ``beta2``, ``epsilon``, decoupled
  ``weight_decay``), ``sgd`` or ``rmsprop`` (``beta2`` is the decay ρ,
  ``epsilon`` its ε; ``beta1`` is unused, and a check warns when it is set), both
  with ``weight_decay`` added to the gradient.
- ``lr_scheduler``: a linear warmup from 0 to ``learning_rate`` over
  ``warmup_steps``, then ``cosine``, ``linear`` or ``polynomial`` decay to 0 at
  ``decay_steps``, the total length including warmup (so warmup must end
  before it). ``polynomial`` uses power 1 (the HF/PyTorch default; no field
  sets a power), so it equals ``linear`` until a power field exists.
- ``gradient_clip_norm``: clip by global norm first; ``None`` turns it off.

Weight decay skips the RMSNorm scales: shrinking a normalization gain toward
zero only fights the normalization, it does not regularize.

    optimizer = make_optimizer(config)
    step = make_train_step(loss_fn, optimizer, learning_rate_schedule(config))
    params, opt_state, metrics = step(params, opt_state, batch, step_number)
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import optax

__all__ = ["learning_rate_schedule", "make_optimizer", "make_train_step", "decay_mask"]


def learning_rate_schedule(config: Any) -> optax.Schedule:
    """Learning rate as a function of the step number (see the module doc)."""
    peak, warmup = config.learning_rate, config.warmup_steps
    decay = max(config.decay_steps - warmup, 1)
    if config.lr_scheduler == "cosine":
        after = optax.cosine_decay_schedule(peak, decay, alpha=0.0)
    else:  # "linear", and "polynomial" with power 1 (no field sets a power)
        after = optax.polynomial_schedule(peak, 0.0, power=1.0, transition_steps=decay)
    if warmup == 0:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), after], [warmup])


def decay_mask(params: Any) -> Any:
    """True for every parameter weight decay applies to: all but the norm scales."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: not jax.tree_util.keystr(path).endswith("norm']"), params)


def make_optimizer(config: Any) -> optax.GradientTransformation:
    """The optax transformation for ``config``'s ``[training]`` section."""
    schedule = learning_rate_schedule(config)
    decay = config.weight_decay
    if config.optimizer == "adamw":
        core = optax.adamw(schedule, b1=config.beta1, b2=config.beta2, eps=config.epsilon,
                           weight_decay=decay, mask=decay_mask)
    elif config.optimizer == "sgd":
        core = optax.chain(optax.add_decayed_weights(decay, decay_mask), optax.sgd(schedule))
    elif config.optimizer == "rmsprop":
        core = optax.chain(optax.add_decayed_weights(decay, decay_mask),
                           optax.rmsprop(schedule, decay=config.beta2, eps=config.epsilon))
    else:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; expected adamw, sgd or rmsprop")
    if config.gradient_clip_norm is None:
        return core
    return optax.chain(optax.clip_by_global_norm(config.gradient_clip_norm), core)


def make_train_step(loss_fn: Callable[..., Any], optimizer: optax.GradientTransformation,
                    schedule: optax.Schedule,
                    prune: Callable[[Any, Any], Any] | None = None) -> Callable[..., Any]:
    """A pure training step around ``loss_fn(params, batch, **static) -> LossParts``.

    The step returns the new parameters and optimizer state and a metrics dict:
    every loss part, the gradient's global norm (before clipping) and the
    learning rate used. ``prune(params, steps_done)``, when given, projects the
    updated parameters (magnitude pruning, :mod:`capibara.model.sparsity`).
    """

    def step(params, opt_state, batch, step_number, **static):
        def total(p):
            parts = loss_fn(p, batch, **static)
            return parts.total, parts

        (_, parts), grads = jax.value_and_grad(total, has_aux=True)(params)
        return apply_gradients(params, opt_state, grads, parts, step_number, optimizer,
                               schedule, prune)

    return step


def apply_gradients(params: Any, opt_state: Any, grads: Any, parts: Any, step_number: Any,
                    optimizer: optax.GradientTransformation, schedule: optax.Schedule,
                    prune: Callable[[Any, Any], Any] | None = None) -> tuple[Any, Any, dict]:
    """The end of every train step (the jitted and the ``shard_map`` one): the optimizer
    update, pruning, and the metrics (loss parts, gradient norm, learning rate)."""
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    if prune is not None:
        params = prune(params, step_number + 1)
    metrics = {**parts._asdict(), "grad_norm": optax.tree.norm(grads),
               "learning_rate": schedule(step_number)}
    return params, opt_state, metrics
