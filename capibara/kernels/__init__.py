"""Kernel families, each a reference implementation plus per-backend variants.

Each family lives in ``capibara/kernels/<family>/``: ``spec.py`` is what the
compiler knows about it without JAX (selectors, tile tables, platform ranking,
work estimate; :mod:`capibara.kernels.specs` is their registry), and the
package exposes ``VARIANTS``, a mapping from implementation name to
:class:`capibara.kernels.base.Variant`, loaded with JAX on first use.
"""
