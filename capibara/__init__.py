"""capibara: a compiler for machine-learning model configurations.

    capibara check configs/production/tpu_v4.toml

Public API (imported lazily, so ``import capibara`` stays cheap and the
compile path never imports JAX):

- :class:`ConfigError`, :class:`Diagnostic`, :class:`Span`: errors with places.
- :mod:`capibara.toml`: the exact TOML 1.0 front end with spans.
- :mod:`capibara.config`: ``ModularModelConfig``, ``ConfigValidator``, ``ConfigMigrator``.
- ``compile(config_or_paths, *, target=None, overrides=None) -> Plan``.
- ``load_plan(path_or_plan) -> CompiledPlan`` (imports JAX), ``Model`` (imports JAX).
- ``serve(plan_or_config, *, host, port, tokenizer, ...)``: ``capibara serve`` in this
  process, until SIGTERM (imports JAX).
- ``train(plan_or_config, *, data, run_dir, steps=None)``: a resumable training job (imports JAX).

The stages live in subpackages named after them: :mod:`capibara.toml` →
:mod:`capibara.config` → :mod:`capibara.compiler` → :mod:`capibara.plan` →
:mod:`capibara.runtime` (with :mod:`capibara.kernels`) → :mod:`capibara.model`;
:mod:`capibara.cli` is the command line.
"""

from __future__ import annotations

from capibara.diagnostics import ConfigError, Diagnostic, Span
from capibara.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "compile": "capibara.compiler.driver",
    "Plan": "capibara.plan",
    "load_plan_file": "capibara.plan",
    "diff_plans": "capibara.plan",
    "explain_plan": "capibara.plan",
    "load_plan": "capibara.runtime.loader",
    "CompiledPlan": "capibara.runtime.loader",
    "Model": "capibara.model.facade",
    "train": "capibara.train",  # the package is callable too: importing it binds `capibara.train`
    "ModularModelConfig": "capibara.config.model_config",
    "ConfigValidator": "capibara.config.validate",
    "ConfigMigrator": "capibara.config.legacy",
    "serve": "capibara.serve",
}

__all__ = ["ConfigError", "Diagnostic", "Span", "__version__", *_EXPORTS]

__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
