"""Legacy (v2.x) configurations and their rewrite to v3.

CapibaraGPT v2.x described a model with three coarse keys; v3 spells out what
they meant.  :data:`LEGACY_KEYS` (in :mod:`.rules`) is the one table of those
rules, and it has two readers:

- :meth:`ConfigMigrator.migrate_from_legacy` (:mod:`.mapping`) takes the seed's
  plain dict (``{"model_size": "600m", "use_quantum": True, "device": "tpu_v4"}``)
  and returns a ``ModularModelConfig``;
- :func:`rewrite_document` (:mod:`.rewrite`) is the legacy-rewrite stage of the
  compiler: it turns a parsed v2 TOML file into the v3 layout, remembers where
  each moved value came from, and warns once per rule at the old key.
  :func:`migrate_toml` (:mod:`.edits`) and :func:`write_migrated`
  (:mod:`.inplace`), ``capibara migrate``, edit the file itself, keeping
  comments and untouched lines.

A v2 TOML file is recognised by its keys, never by ``version`` (the model's
release number, not the format's)::

    # CapibaraGPT v2.x
    model_size = "600m"      # → [model] hidden_size, num_layers, num_heads, model_name
    use_quantum = true       # → [vector_quantization] enabled
    device = "tpu"           # → [hardware] device = "tpu_v4", [tpu_v4_optimizations] enabled

The three legacy keys may sit at the top level or in ``[model]``; any v3 key
may appear beside them (an explicit v3 shape or name wins over the one implied
by ``model_size``).  The v2 device names ``"tpu"`` and ``"cuda"`` are also
rewritten where v3 keeps the device, ``[hardware] device``.  A v3 document
contains none of this and passes through untouched.

Names resolve on first use: a check loads only the table and the rewrite.
"""

from __future__ import annotations

from capibara.lazy import lazy_exports

_RULES = ("ModelShape", "MODEL_SIZES", "LegacyKey", "LEGACY_KEYS", "LEGACY_DEVICES",
          "LEGACY_TABLES", "parse_model_size")

_EXPORTS: dict[str, str] = {
    **{name: "capibara.config.legacy.rules" for name in _RULES},
    "LegacyRewrite": "capibara.config.legacy.rewrite",
    "rewrite_document": "capibara.config.legacy.rewrite",
    "find_legacy_paths": "capibara.config.legacy.rewrite",
    "is_legacy_mapping": "capibara.config.legacy.mapping",
    "translate_mapping": "capibara.config.legacy.mapping",
    "Migration": "capibara.config.legacy.mapping",
    "ConfigMigrator": "capibara.config.legacy.mapping",
    "migrate_document": "capibara.config.legacy.edits",
    "migrate_toml": "capibara.config.legacy.edits",
    "write_migrated": "capibara.config.legacy.inplace",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, globals(), _EXPORTS)
