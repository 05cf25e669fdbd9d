"""What installed packages register for the host under entry-point groups.

The host sits below the simulator and the boards (imports flow ``hw`` <- ``sw`` <- ``sim``, and
``boards`` above ``hw``): it reaches them only through what they register in ``pyproject.toml``'s
entry points, read here.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from importlib.metadata import entry_points

__all__ = ["registered", "BOARDS_GROUP", "BOARD_LINKS_GROUP"]

#: Board name -> the ``RillParams`` of the core its bitstream carries.
BOARDS_GROUP = "rill.boards"
#: Board name -> ``(core clock in Hz, UART baud)``.
BOARD_LINKS_GROUP = "rill.board_links"


def registered(group: str) -> ChainMap:
    """Every mapping registered under ``group``, as one; values are looked up only when asked
    for (a board's module is imported on use)."""
    mappings: list[Mapping] = [point.load() for point in entry_points(group=group)]
    return ChainMap(*mappings)
