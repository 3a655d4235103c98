"""The model a plan describes, built from its kernels (imports JAX).

:mod:`~capibara.model.facade` (``Model``: forward, loss, train step, generate,
runtime settings), :mod:`~capibara.model.training` (optimizer and schedule),
:mod:`~capibara.model.checkpoint` (saving and restoring parameters).
"""

from capibara.lazy import lazy_exports

_EXPORTS = {
    "Model": "capibara.model.facade",
    "Kernels": "capibara.model.facade",
    "init_params": "capibara.model.facade",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
