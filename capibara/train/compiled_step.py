"""The training job's train step, compiled before the first step or loaded from the kernel cache.

The step is the job's largest program: tracing and lowering it take seconds,
compiling it more. :func:`prepare_train_step` compiles it ahead of time for
the job's batch shape and keeps it beside the plan's kernels in the kernel
cache (:class:`capibara.runtime.executables.ExecutableCache`, a
``jax.export`` of the whole step keyed by the plan digest, the capibara
source, the devices and the runtime settings), so the next ``capibara
train`` (a resumed run) of the same plan skips tracing and lowering; XLA's
compilation of the saved program is then a hit in JAX's persistent cache
beside it. Without the cache (``cache_compiled_functions = false``, several
processes) the step is compiled ahead of time all the same, and JAX's
persistent cache, when on, still skips XLA's part.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

__all__ = ["StepCompile", "prepare_train_step"]


@dataclass(frozen=True)
class StepCompile:
    """How the train step came to be: ``from_cache`` (loaded from the kernel cache)
    or compiled, in ``seconds``; ``not_kept`` says why a compiled step was not
    saved for the next run (``None`` when it was, or loaded, or there is no cache)."""

    seconds: float
    from_cache: bool
    not_kept: str | None = None

    def describe(self) -> str:
        """One line for the job's output."""
        if self.from_cache:
            return f"train step: loaded from the kernel cache in {self.seconds:.2f} s"
        kept = f" (not kept: {self.not_kept})" if self.not_kept else ""
        return f"train step: compiled in {self.seconds:.2f} s{kept}"


def prepare_train_step(model: Any, executables: Any, batch_shape: tuple[int, int]) -> StepCompile | None:
    """Compile ``model``'s train step for token batches of ``batch_shape``, or load it
    from ``executables`` (the plan's kernel cache, ``None`` for none), and have
    the model run it. ``None`` when the plan runs op by op (``jit = false``)."""
    from capibara.runtime.executables import Loaded, Program, package_fingerprint

    if not model.policy.jit:
        return None
    start = time.perf_counter()
    fn, args, static = model.train_step_program(batch_shape)
    if executables is not None:
        import optax

        program = Program(
            fn=fn, static=static, mesh=model.mesh,
            donate_argnums=(0, 1) if model.policy.donate else (),
            identity=("train_step", package_fingerprint(), optax.__version__,
                      tuple(sorted(static.items())), model.policy.donate))
        loaded = executables.load(program, args)
        if loaded is not None:
            model.use_compiled_train_step(loaded.compiled, args, static)
            return StepCompile(time.perf_counter() - start, True)
        stored = executables.store(program, args)
        if isinstance(stored, Loaded):
            model.use_compiled_train_step(stored.compiled, args, static)
            return StepCompile(time.perf_counter() - start, False, stored.not_kept)
        not_kept = stored
    else:
        not_kept = None
    model.use_compiled_train_step(fn.lower(*args, **static).compile(), args, static)
    return StepCompile(time.perf_counter() - start, False, not_kept)
