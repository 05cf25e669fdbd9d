"""The window walk of ``POOL`` (``hw.isa``): every pixel of every window of the map
``CONV_GEOMETRY`` describes, channel group by group, output row by row, a read address a cycle.

As the conv walk (``hw.conv_walk``) does, the walk keeps every address in a register and moves it
by additions only, each from a saved base: to the next pixel of a window row by 1, to the next
window row by ``in_w``, to the next window by the stride, to the next output row by ``stride *
in_w``, to the next channel group by the map's plane. Beside the address it walks the pixel's
coordinates, signed, so that a pixel outside the map (padding) is known in the cycle it is read;
its address wraps like the conv walk's, and its data goes unused.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value, signed
from amaranth.lib import data

from .params import RillParams

__all__ = ["PoolWalk", "pool_geometry_layout"]

#: Signed pixel coordinates, as the conv walk keeps them.
_COORD = signed(18)


def pool_geometry_layout(params: RillParams) -> data.StructLayout:
    """What ``POOL`` takes of the conv walk's geometry (``hw.conv_walk.ConvWalk``): the
    ``CONV_GEOMETRY`` fields it walks by and the registers derived from them."""
    return data.StructLayout({
        "in_w": 8, "in_h": 8, "out_w": 8, "kernel_h": 8, "kernel_w": 8, "stride": 8,
        "pad_left": 8,
        "kernel": 16,                          # kernel_h * kernel_w
        "plane": 16,                           # in_h * in_w
        "row_step": 16,                        # stride * in_w
        "origin": params.act_addr_width,       # the first window's first pixel, from act_addr
        "iy_origin": _COORD,                   # ... its row
    })


class PoolWalk:
    """The walk's registers over ``geometry`` (a :func:`pool_geometry_layout` view).

    The unit decides when it acts: :meth:`start` in a ``POOL``'s decode, :meth:`step` in each
    cycle a pixel is read (at the address register it is given).

    Attributes
    ----------
    inside : Value
        The pixel read this cycle lies inside the map.
    first : Value
        ... it is its window's first.
    final : Signal
        The window whose pixels were read last is the instruction's last (set by the
        :meth:`step` of its last pixel).
    """

    def __init__(self, params: RillParams, geometry):
        self.geometry = geo = geometry
        aw = params.act_addr_width
        # The group's first window, the output row's, the window's, the window row's.
        self.group_addr, self.row_addr, self.window_addr, self.line_addr = (
            Signal(aw, name=f"pool_{n}") for n in ("group_addr", "row_addr", "window_addr",
                                                   "line_addr"))
        self.window_iy, self.window_ix, self.iy, self.ix = (
            Signal(_COORD, name=f"pool_{n}") for n in ("window_iy", "window_ix", "iy", "ix"))
        self.dx, self.dy, self.ox, self.oy = (Signal(8, name=f"pool_{n}")
                                              for n in ("dx", "dy", "ox", "oy"))
        self.out_h_last = Signal(8, name="pool_out_h_last")
        self.groups_left = Signal(8, name="pool_groups_left")
        self.final = Signal(name="pool_final")
        self.inside = ((self.iy >= 0) & (self.iy < geo.in_h)
                       & (self.ix >= 0) & (self.ix < geo.in_w))
        self.first = (self.dx == 0) & (self.dy == 0)
        #: The pixel read this cycle is its window's last.
        self.window_end = (self.dx == geo.kernel_w - 1) & (self.dy == geo.kernel_h - 1)

    def start(self, m: Module, address: Signal, act_addr: Value, groups: Value, out_h: Value):
        """Every address at the first window's first pixel (the geometry's origin from
        ``act_addr``), its coordinates there, the counters at zero."""
        geo = self.geometry
        first = (act_addr + geo.origin)[:len(address)]
        m.d.sync += [address.eq(first),
                     *(reg.eq(first) for reg in (self.group_addr, self.row_addr,
                                                 self.window_addr, self.line_addr)),
                     self.window_iy.eq(geo.iy_origin), self.iy.eq(geo.iy_origin),
                     self.window_ix.eq(-geo.pad_left), self.ix.eq(-geo.pad_left),
                     *(counter.eq(0) for counter in (self.dx, self.dy, self.ox, self.oy)),
                     self.out_h_last.eq(out_h - 1), self.groups_left.eq(groups - 1),
                     self.final.eq(0)]

    def step(self, m: Module, address: Signal):
        """A pixel read: ``address`` on to the window's next pixel, or, after its last, to the
        next window's first (the next in the row, the next row's, the next group's)."""
        geo = self.geometry
        with m.If(self.dx != geo.kernel_w - 1):
            m.d.sync += [self.dx.eq(self.dx + 1), address.eq(address + 1),
                         self.ix.eq(self.ix + 1)]
        with m.Elif(self.dy != geo.kernel_h - 1):
            m.d.sync += [self.dx.eq(0), self.dy.eq(self.dy + 1),
                         address.eq(self.line_addr + geo.in_w),
                         self.line_addr.eq(self.line_addr + geo.in_w),
                         self.ix.eq(self.window_ix), self.iy.eq(self.iy + 1)]
        with m.Else():
            next_addr = Signal.like(address, name="pool_next_addr")
            next_ix, next_iy = (Signal(_COORD, name=f"pool_next_{n}") for n in "xy")
            m.d.sync += [self.dx.eq(0), self.dy.eq(0)]
            with m.If(self.ox != geo.out_w - 1):
                m.d.sync += self.ox.eq(self.ox + 1)
                m.d.comb += [next_addr.eq(self.window_addr + geo.stride),
                             next_ix.eq(self.window_ix + geo.stride),
                             next_iy.eq(self.window_iy)]
            with m.Elif(self.oy != self.out_h_last):
                m.d.sync += [self.ox.eq(0), self.oy.eq(self.oy + 1),
                             self.row_addr.eq(self.row_addr + geo.row_step)]
                m.d.comb += [next_addr.eq(self.row_addr + geo.row_step),
                             next_ix.eq(-geo.pad_left),
                             next_iy.eq(self.window_iy + geo.stride)]
            with m.Else():   # the next channel group's map
                m.d.sync += [self.ox.eq(0), self.oy.eq(0),
                             self.groups_left.eq(self.groups_left - 1),
                             self.final.eq(self.groups_left == 0),
                             self.group_addr.eq(self.group_addr + geo.plane),
                             self.row_addr.eq(self.group_addr + geo.plane)]
                m.d.comb += [next_addr.eq(self.group_addr + geo.plane),
                             next_ix.eq(-geo.pad_left), next_iy.eq(geo.iy_origin)]
            m.d.sync += [self.window_addr.eq(next_addr), self.line_addr.eq(next_addr),
                         address.eq(next_addr), self.window_ix.eq(next_ix),
                         self.ix.eq(next_ix), self.window_iy.eq(next_iy),
                         self.iy.eq(next_iy)]
