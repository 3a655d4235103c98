"""The plan: the contract between the compiler and the runtime.

- :mod:`~capibara.plan.types`: the frozen Structs (:class:`Plan`, :class:`KernelSpec`, ...);
- :mod:`~capibara.plan.codec`: canonical bytes, the digest, reading and writing plan files;
- :mod:`~capibara.plan.validate`: every value in its domain, every reference resolved;
- :mod:`~capibara.plan.freezer`: the compiler's IR → a sealed plan, and a plan → its config;
- :mod:`~capibara.plan.diff`, :mod:`~capibara.plan.explain`, :mod:`~capibara.plan.views`:
  reading plans as people do.

Names are re-exported lazily (``from capibara.plan import Plan``), so importing
the package costs nothing until a name is used; nothing here imports JAX.
"""

from capibara.lazy import lazy_exports

_TYPES = ("FORMAT", "MESH_AXES", "DTYPES", "ORIGIN_KINDS", "Plan", "CompilerInfo", "TargetInfo",
          "ModelShape", "MemoryEstimate", "Precision", "Mesh", "Batch", "Execution",
          "LossWeights", "KernelSpec", "Decision", "Origin")
_CODEC = ("MAX_PLAN_BYTES", "MAX_PLAN_DEPTH", "canonical_bytes", "compute_digest", "seal",
          "encode_plan", "decode_plan", "write_plan_file", "load_plan_file", "read_plan_bytes",
          "plan_format_for", "is_compatible")

_EXPORTS: dict[str, str] = {
    **{name: "capibara.plan.types" for name in _TYPES},
    **{name: "capibara.plan.codec" for name in _CODEC},
    "validate_plan": "capibara.plan.validate",
    "freeze": "capibara.plan.freezer",
    "config_of_plan": "capibara.plan.freezer",
    "flat_view": "capibara.plan.views",
    "Change": "capibara.plan.diff",
    "diff_plans": "capibara.plan.diff",
    "diff_configs": "capibara.plan.diff",
    "format_changes": "capibara.plan.diff",
    "explain_plan": "capibara.plan.explain",
    "resolve_path": "capibara.plan.explain",
    "summary": "capibara.plan.explain",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
