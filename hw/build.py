"""``python -m hw.build --board NAME``: build a board's bitstream (see ``--help``).

The command's home is the gateware package, where users look for it; its implementation is the
build flow, :mod:`flow.cli`, which sits above the gateware and the boards. This entry imports it
only inside :func:`main`, so that nothing in :mod:`hw` depends on the layers above it.
"""

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    from flow.cli import main as build_main  # the layer above hw: imported on use only
    return build_main(argv)


if __name__ == "__main__":
    sys.exit(main())
