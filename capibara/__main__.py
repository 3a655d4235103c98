"""``python -m capibara`` is the ``capibara`` command."""

from capibara.cli.app import main

raise SystemExit(main())
