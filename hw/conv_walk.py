"""Convolutions addressed on the device: the activation addresses a ``MATMUL`` with the ``CONV``
flag reads, walked over a feature map (``hw.isa.ConvGeometry`` gives the layout and the order).

The walk keeps every address in a register and moves it by additions only: along an output row by
the stride, to the next output row by ``stride * in_w``, to the next K tile by a word's plane
(``in_h * in_w``), a kernel column (1) or a kernel row (``in_w``), each from a saved base; with
packed INT8 activations two channel chunks share a word, so an even chunk's next one stays at its
address and reads the high half (:attr:`ConvWalk.half`). A depthwise walk
(``MatmulFlags.DEPTHWISE``) keeps its chunk over a tile's kernel offsets and moves to the next chunk
with the next output tile, from a chunk origin it keeps beside the MATMUL's. Beside the address it
walks the input pixel's coordinates, signed, so that a pixel outside the map (padding) is known in
the cycle it is read and the array gets the zero point instead of the word. Addresses wrap modulo
the SRAM's size: a row that starts left of or above the map reaches it by the same additions, and
only pixels inside it are used.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, Value, signed

from . import isa
from .isa import Opcode
from .params import RillParams

__all__ = ["ConvWalk"]

#: Signed pixel coordinates: a stride and a width of up to 255, plus the kernel.
_COORD = signed(18)


class ConvWalk:
    """The geometry ``CONV_GEOMETRY`` sets and the walk of one MATMUL over it.

    The sequencer decides when each method acts, by where it calls it: :meth:`set_geometry` in
    a ``CONV_GEOMETRY`` decode, :meth:`begin` when a MATMUL's header is in (its ``CHECK``
    cycle), :meth:`step` in each of its working cycles, with the activation loop's wraps.

    Attributes
    ----------
    address : Value
        The first read address of a conv MATMUL at ``act_addr`` (for :meth:`begin`'s cycle).
    inside : Value
        The current row's input pixel lies inside the map (else it reads the zero point).
    zero_point : Signal(signed(8))
    halves : Value
        Activations are packed INT8, two channel chunks a word (the MATMUL engine's signal).
    half : Value
        The current K tile reads its word's high half.
    depthwise : Signal
        This MATMUL walks depthwise (set by :meth:`begin`).
    chunks : Signal
        The geometry's channel chunks.
    out_w, plane : Signal
        The geometry's output row and the map's pixels (``in_h * in_w``).
    k_tiles, words : Signal
        The geometry's K tiles (``kernel_h * kernel_w * chunks``) and the words the map spans,
        for decode's checks; settled a few cycles after :meth:`set_geometry`.
    """

    def __init__(self, params: RillParams, halves: Value):
        self._params = p = params
        self.halves = halves
        # After reset, the golden model's default geometry (hw.isa.ConvGeometry).
        defaults = isa.ConvGeometry().fields()
        self._fields = {name: Signal(8 * size, name=f"cg_{name}", init=defaults[name])
                        for name, size in isa.FIELDS[Opcode.CONV_GEOMETRY]}
        self.zero_point = Signal(signed(8), name="cg_zero_point_s")
        aw = p.act_addr_width
        # Derived, registered, from the fields (settled long before a MATMUL can use them).
        self.plane = Signal(16, name="cg_plane")
        self.words = Signal(24, name="cg_words")
        self.kernel = Signal(16, name="cg_kernel")
        self.k_tiles = Signal(24, name="cg_k_tiles")
        self.row_step = Signal(16, name="cg_row_step")
        self.iy_origin = Signal(_COORD, name="cg_iy_origin")
        self.origin = Signal(aw, name="cg_origin")   # (iy_origin * in_w - pad_left) mod depth
        # The walk: K tile counters and bases, the row's coordinates.
        self.cc, self.dx, self.dy = (Signal(8, name=f"cw_{n}") for n in ("cc", "dx", "dy"))
        self.origin_addr = Signal(aw, name="cw_origin_addr")   # chunk 0's, or depthwise, cc's
        self.depthwise = Signal(name="cw_depthwise")
        self.tile_addr, self.dx_addr, self.dy_addr = (
            Signal(aw, name=f"cw_{n}") for n in ("tile_addr", "dx_addr", "dy_addr"))
        self.tile_ix, self.tile_iy = Signal(_COORD, name="cw_tile_ix"), \
            Signal(_COORD, name="cw_tile_iy")
        self.ox = Signal(8, name="cw_ox")
        self.ix, self.iy = Signal(_COORD, name="cw_ix"), Signal(_COORD, name="cw_iy")
        self.row_addr = Signal(aw, name="cw_row_addr")
        f = self._fields
        self.inside = ((self.iy >= 0) & (self.iy < f["in_h"])
                       & (self.ix >= 0) & (self.ix < f["in_w"]))
        self.half = self.halves & self.cc[0]
        self.chunks = f["chunks"]
        self.out_w = f["out_w"]

    def set_geometry(self, m: Module, fields: dict[str, Value]):
        m.d.sync += [reg.eq(fields[name]) for name, reg in self._fields.items()]

    def elaborate_into(self, m: Module):
        """The derived registers (every cycle, from the geometry's registers)."""
        f = self._fields
        m.d.comb += self.zero_point.eq(f["zero_point"])
        m.d.sync += [
            self.plane.eq(f["in_w"] * f["in_h"]),
            self.words.eq(self.plane * Mux(self.halves, (f["chunks"] + 1) >> 1, f["chunks"])),
            self.kernel.eq(f["kernel_h"] * f["kernel_w"]),
            self.k_tiles.eq(self.kernel * f["chunks"]),
            self.row_step.eq(f["stride"] * f["in_w"]),
            self.iy_origin.eq(f["first_row"] * f["stride"] - f["pad_top"]),
            self.origin.eq(self.iy_origin * f["in_w"] - f["pad_left"]),
        ]

    def pool_geometry(self, geometry) -> list:
        """Assignments of the geometry to a ``hw.pool_walk.pool_geometry_layout`` view."""
        f = self._fields
        return [*(getattr(geometry, name).eq(f[name])
                  for name in ("in_w", "in_h", "out_w", "kernel_h", "kernel_w", "stride",
                               "pad_left")),
                geometry.kernel.eq(self.kernel), geometry.plane.eq(self.plane),
                geometry.row_step.eq(self.row_step), geometry.origin.eq(self.origin),
                geometry.iy_origin.eq(self.iy_origin)]

    def first_address(self, act_addr: Value) -> Value:
        """The first read of a conv MATMUL at ``act_addr``: output pixel 0 at kernel offset
        (0, 0), channel chunk 0."""
        return (act_addr + self.origin)[:len(self.origin)]

    def begin(self, m: Module, act_addr: Value, depthwise: Value):
        """A conv MATMUL at ``act_addr``: the walk at K tile 0, row 0."""
        start = self.first_address(act_addr)
        self._restart(m, start, 0)
        m.d.sync += [self.origin_addr.eq(start), self.depthwise.eq(depthwise)]

    def _restart(self, m: Module, start: Value, chunk: Value):
        f = self._fields
        m.d.sync += [self.cc.eq(chunk), self.dx.eq(0), self.dy.eq(0),
                     self.tile_addr.eq(start), self.dx_addr.eq(start), self.dy_addr.eq(start),
                     self.tile_ix.eq(-f["pad_left"]), self.tile_iy.eq(self.iy_origin),
                     self.ox.eq(0), self.ix.eq(-f["pad_left"]), self.iy.eq(self.iy_origin),
                     self.row_addr.eq(start)]

    def step(self, m: Module, address: Signal, tile_wrap: Value, restart: Value):
        """One working cycle: on to the next row, or at ``tile_wrap`` to the next K tile, or
        with ``restart`` (the last K tile's wrap) back to the first. Drives ``address`` (the
        activation loop's address register) to the next read."""
        f = self._fields
        # The next chunk's first word: the same word's high half, else the next plane.
        chunk_step = Mux(self.half | ~self.halves, self.plane, 0)
        with m.If(tile_wrap & restart & self.depthwise):   # the next output tile's chunk
            next_origin = (self.origin_addr + chunk_step)[:len(self.origin_addr)]
            self._restart(m, next_origin, self.cc + 1)
            m.d.sync += [self.origin_addr.eq(next_origin), address.eq(next_origin)]
        with m.Elif(tile_wrap & restart):
            self._restart(m, self.origin_addr, 0)
            m.d.sync += address.eq(self.origin_addr)
        with m.Elif(tile_wrap):
            # The next K tile: the next channel chunk, else kernel column, else kernel row.
            next_addr = Signal.like(self.tile_addr, name="cw_next_addr")
            next_ix = Signal.like(self.tile_ix, name="cw_next_ix")
            next_iy = Signal.like(self.tile_iy, name="cw_next_iy")
            # A depthwise walk keeps its chunk.
            first_chunk = Mux(self.depthwise, self.cc, 0)
            with m.If((self.cc != f["chunks"] - 1) & ~self.depthwise):
                m.d.sync += self.cc.eq(self.cc + 1)
                m.d.comb += [next_addr.eq(self.tile_addr + chunk_step),
                             next_ix.eq(self.tile_ix), next_iy.eq(self.tile_iy)]
            with m.Elif(self.dx != f["kernel_w"] - 1):
                m.d.sync += [self.cc.eq(first_chunk), self.dx.eq(self.dx + 1),
                             self.dx_addr.eq(self.dx_addr + 1)]
                m.d.comb += [next_addr.eq(self.dx_addr + 1),
                             next_ix.eq(self.tile_ix + 1), next_iy.eq(self.tile_iy)]
            with m.Else():
                m.d.sync += [self.cc.eq(first_chunk), self.dx.eq(0), self.dy.eq(self.dy + 1),
                             self.dy_addr.eq(self.dy_addr + f["in_w"]),
                             self.dx_addr.eq(self.dy_addr + f["in_w"])]
                m.d.comb += [next_addr.eq(self.dy_addr + f["in_w"]),
                             next_ix.eq(-f["pad_left"]), next_iy.eq(self.tile_iy + 1)]
            m.d.sync += [self.tile_addr.eq(next_addr), self.tile_ix.eq(next_ix),
                         self.tile_iy.eq(next_iy),
                         self.ox.eq(0), self.ix.eq(next_ix), self.iy.eq(next_iy),
                         self.row_addr.eq(next_addr), address.eq(next_addr)]
        with m.Elif(self.ox == f["out_w"] - 1):   # the next output row
            m.d.sync += [self.ox.eq(0), self.row_addr.eq(self.row_addr + self.row_step),
                         address.eq(self.row_addr + self.row_step),
                         self.ix.eq(self.tile_ix), self.iy.eq(self.iy + f["stride"])]
        with m.Else():
            m.d.sync += [self.ox.eq(self.ox + 1), address.eq(address + f["stride"]),
                         self.ix.eq(self.ix + f["stride"])]
