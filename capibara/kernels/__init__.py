"""Kernel families, each a reference implementation plus per-backend variants.

Importing this package imports JAX; the compile path never does. Each family
lives in ``capibara/kernels/<family>/`` and exposes ``VARIANTS``, a mapping from
implementation name to :class:`capibara.kernels.base.Variant`.
"""
