"""Board support: one small module per FPGA board (platform, clock, reset, UART pins).

Adding a board is one module that defines a :class:`~boards.board.Board` and one line in
:data:`REGISTRY`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from hw.params import RillParams

from .board import Board

__all__ = ["REGISTRY", "UnknownBoard", "board_names", "get_board", "BOARD_PARAMS", "BOARD_LINKS"]

#: Board name -> ``"module:attribute"`` of its :class:`Board` (imported on first use).
REGISTRY = {
    "icebreaker": "boards.icebreaker:BOARD",
    "ulx3s-12f": "boards.ulx3s:ULX3S_12F",
    "ulx3s-25f": "boards.ulx3s:ULX3S_25F",
    "ulx3s-45f": "boards.ulx3s:ULX3S_45F",
    "ulx3s-85f": "boards.ulx3s:ULX3S_85F",
}


class UnknownBoard(KeyError):
    def __str__(self):
        return f"no board named {self.args[0]!r}; boards: {', '.join(REGISTRY)}"


def board_names() -> list[str]:
    return list(REGISTRY)


def get_board(name: str) -> Board:
    try:
        module, attribute = REGISTRY[name].split(":")
    except KeyError:
        raise UnknownBoard(name) from None
    board = getattr(importlib.import_module(module), attribute)
    assert board.name == name, (name, board.name)
    return board


class _BoardParams(Mapping[str, RillParams]):
    """Board name -> the params of the core its bitstream carries (each board imported on use)."""

    def __getitem__(self, name: str) -> RillParams:
        return get_board(name).params

    def __iter__(self) -> Iterator[str]:
        return iter(REGISTRY)

    def __len__(self) -> int:
        return len(REGISTRY)


#: The boards' params for the host's ``--board-params``, registered as the ``rill.boards`` entry
#: point (the host sits below the boards and reaches them only through that registry).
BOARD_PARAMS = _BoardParams()


class _BoardLinks(Mapping[str, tuple[float, int]]):
    """Board name -> ``(core clock in Hz, UART baud)``: the pace of its serial link in core
    cycles, for the host's benchmarks (each board imported on use)."""

    def __getitem__(self, name: str) -> tuple[float, int]:
        board = get_board(name)
        return board.clock_hz, board.baud

    def __iter__(self) -> Iterator[str]:
        return iter(REGISTRY)

    def __len__(self) -> int:
        return len(REGISTRY)


#: The boards' links, registered as the ``rill.board_links`` entry point.
BOARD_LINKS = _BoardLinks()
