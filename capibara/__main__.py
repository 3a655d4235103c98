"""``python -m capibara`` is the ``capibara`` command."""

from capibara.cli import main

raise SystemExit(main())
