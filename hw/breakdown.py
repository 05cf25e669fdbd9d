"""``python -m hw.breakdown --board NAME``: a board's cells block by block (see ``--help``).

The implementation is :mod:`flow.breakdown`, in the build flow above the gateware and the boards;
this entry imports it only inside :func:`main`, so that nothing in :mod:`hw` depends on the
layers above it.
"""

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    from flow.breakdown import main as breakdown_main  # the layer above hw: imported on use only
    return breakdown_main(argv)


if __name__ == "__main__":
    sys.exit(main())
