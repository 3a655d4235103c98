"""``python -m capibara`` is the ``capibara`` command."""

from capibara.cli.app import program

raise SystemExit(program())
