"""``capibara train``: a resumable training job from a plan or config (see :func:`train`).

    import capibara
    result = capibara.train("configs/development/development.toml", data="data/tales",
                            run_dir="runs/dev", steps=300)
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from capibara.lazy import lazy_exports

__all__ = ["train", "TrainResult", "set_up", "summary"]


def train(plan_or_config: str | os.PathLike | Sequence[str | os.PathLike], *,
          data: str | os.PathLike, run_dir: str | os.PathLike, steps: int | None = None,
          overrides: Sequence[str] = (), target: str | None = "auto",
          env: Mapping[str, str] | None = os.environ, **options: Any):
    """Train a plan (or a config, compiled first) on prepared ``data`` into ``run_dir``.

    Checks everything first (the config's diagnostics, the data against the
    plan, the run directory) and raises :class:`~capibara.ConfigError` with
    every problem before JAX starts; then resumes from the newest checkpoint
    of ``run_dir`` if there is one and trains to ``steps`` (default: the
    schedule's ``decay_steps``). ``options`` go to :func:`capibara.train.loop.run`
    (``log_every``, ``eval_every``, ``eval_batches``, ``seed``, ``progress``).
    Returns a :class:`TrainResult`.
    """
    from capibara.train.loop import run
    from capibara.train.setup import set_up as check

    inputs = [plan_or_config] if isinstance(plan_or_config, (str, os.PathLike)) else list(plan_or_config)
    setup = check(inputs, data=data, run_dir=run_dir, overrides=overrides, target=target, env=env)
    return run(setup, steps=steps, **options)


__getattr__ = lazy_exports(__name__, globals(), {
    "TrainResult": "capibara.train.loop",
    "set_up": "capibara.train.setup",
    "summary": "capibara.train.report",
})


class _CallableModule(__import__("types").ModuleType):
    # Importing any submodule binds `capibara.train` to this package, so the package
    # itself must be callable for `capibara.train(...)` to keep meaning the function.
    def __call__(self, *args: Any, **kwargs: Any):
        return train(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableModule
