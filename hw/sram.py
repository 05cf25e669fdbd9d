"""The core's SRAM tiles: how they are made, and the promise that lets them map to bare block RAM.

No tile is ever read at the address written in the same cycle, or nobody uses what such a read
returns: loads and the matmul/store engines that read the tiles are different instructions, an
accumulator row is read again at least two cycles after it is written (see hw/accumulator.py), and
the program memory, read in every cycle, is fetched from only by a RUN, a header after any
LOAD_PROGRAM.
Without that promise Yosys keeps each block RAM's "a read returns the old data" behaviour by
delaying every write a cycle (a register per write-data and address bit) and bypassing the read
data (a register and a multiplexer per bit): ~600 of the UP5K's 5,280 logic cells for a 2x2 core.

Simulations check the promise where the readers say when they use a read
(:func:`check_no_collision`: the activation and weight tiles, and a shallow core's accumulator
banks).

Yosys' attribute for the promise, ``no_rw_check``, only acts when it merges an output register
into an asynchronous read port; Amaranth emits synchronous read ports directly, so
:func:`apply_no_rw_check` carries the attribute to the read ports of the RTLIL before synthesis.
"""

from __future__ import annotations

import re

from amaranth.hdl import Assert, Module, ShapeLike, Value
from amaranth.lib import memory

__all__ = ["sram_tile", "check_no_collision", "apply_no_rw_check"]

_NO_RW_CHECK = "no_rw_check"


def sram_tile(shape: ShapeLike, depth: int) -> memory.Memory:
    """An uninitialised memory of ``depth`` words of ``shape``, read and written as above."""
    return memory.Memory(shape=shape, depth=depth, init=[], attrs={_NO_RW_CHECK: True})


def check_no_collision(m: Module, read, writes: list, read_used: Value,
                       domain: str = "sync") -> None:
    """Check the promise in simulation: an assertion in ``m`` fires at a clock edge where a
    tile's ``read`` port reads, with ``read_used`` (its data will be used: the reads often run
    free, their data taken only sometimes), the address one of its ``writes`` ports writes.
    Synthesis drops it (``chformal -remove`` in ``flow/build.py``), and ``read_used`` with it."""
    for write in writes:
        m.d[domain] += Assert(
            ~(read_used & write.en.any() & (read.addr == write.addr)),
            "an SRAM tile's read whose data is used met a write to its address")


_MODULE = re.compile(r"(?m)^(?=module )")
_MARKED_MEMORY = re.compile(rf"attribute \\{_NO_RW_CHECK} 1\n\s*memory [^\n]*?\\(\S+)\n")
_READ_PORT = re.compile(r"cell \$memrd_v2 .*?\n\s*end\n", re.S)
_MEMID = re.compile(r'parameter \\MEMID "\\\\(\S+)"')
_COLLISION_MASK = re.compile(r"parameter \\COLLISION_X_MASK (\d+)'[01]+\n")


def apply_no_rw_check(rtlil: str) -> tuple[str, int]:
    """``rtlil`` with every read port of a ``no_rw_check`` memory marked "undefined when it reads
    the address a write port writes" (``COLLISION_X_MASK`` all ones); and how many ports."""
    changed = 0

    def mark(port: re.Match, marked: set[str]) -> str:
        nonlocal changed
        if _MEMID.search(port[0])[1] not in marked:
            return port[0]
        changed += 1
        return _COLLISION_MASK.sub(
            lambda mask: f"parameter \\COLLISION_X_MASK {mask[1]}'{'1' * int(mask[1])}\n",
            port[0])

    modules = []
    for module in _MODULE.split(rtlil):
        marked = set(_MARKED_MEMORY.findall(module))
        if marked:
            module = _READ_PORT.sub(lambda port, marked=marked: mark(port, marked), module)
        modules.append(module)
    return "".join(modules), changed
