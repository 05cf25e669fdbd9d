"""``python -m sw``: the Rill command line (see ``python -m sw --help``)."""

from .cli import main

raise SystemExit(main())
