"""The runtime: a plan in, jitted kernels for this device out (imports JAX).

:mod:`~capibara.runtime.loader` (``load_plan``: verify, bind, warm up),
:mod:`~capibara.runtime.executables` (compiled kernels kept between processes),
:mod:`~capibara.runtime.hugepages` (transparent huge pages for XLA's buffers).
"""

from capibara.lazy import lazy_exports

_EXPORTS = {
    "load_plan": "capibara.runtime.loader",
    "CompiledPlan": "capibara.runtime.loader",
    "BoundKernel": "capibara.runtime.loader",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
