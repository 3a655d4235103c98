"""The optimization passes (see :mod:`capibara.compiler.passes.registry`)."""
