"""The ``capibara`` command: :func:`~capibara.cli.app.main` (the parser and the
dispatch) and one module per verb group (:mod:`~capibara.cli.plan`: compile,
diff, explain a plan; :mod:`~capibara.cli.run`: run a plan)."""

from capibara.lazy import lazy_exports

__all__ = ["main", "program"]

__getattr__ = lazy_exports(__name__, globals(), {"main": "capibara.cli.app", "program": "capibara.cli.app"})
