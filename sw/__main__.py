"""``python -m sw``: the Rill command line (see ``python -m sw --help``)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
