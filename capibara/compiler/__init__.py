"""The compiler: a config in, a frozen plan out.

Stages, each a module: :mod:`~capibara.compiler.check` (resolve and validate:
what ``capibara check`` runs), :mod:`~capibara.compiler.lower` (the config on a
target: shapes, mesh, memory, kernel uses), :mod:`~capibara.compiler.passes`
(the named passes), :mod:`~capibara.compiler.driver` (the stage list, ``compile``
and freezing into a :class:`~capibara.plan.Plan`). :mod:`~capibara.compiler.model_spec`
is the model a plan describes, shared with the runtime.
"""

from capibara.lazy import lazy_exports

_EXPORTS = {
    "compile": "capibara.compiler.driver",
    "compile_config": "capibara.compiler.driver",
    "compile_sources": "capibara.compiler.driver",
    "CompileResult": "capibara.compiler.driver",
    "STAGES": "capibara.compiler.driver",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
