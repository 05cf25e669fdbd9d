"""The MATMUL engine's loops: which activation row and which weight row the sequencer reads in
each cycle, and where they are in the SRAM tiles.

Two sides run together (``hw.cycles.matmul_tile_cycles`` gives the schedule). The activation side
walks ``n_tiles`` output tiles, each over ``k_tiles`` reduction tiles of ``max(m, rows, cols)``
cycles, issuing the tile's ``m`` activation rows. The weight side runs a row ahead of it: each
tile's ``rows`` weight rows into the shadow buffer, which the next activation tile uses.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, Value

from . import isa
from .conv_walk import ConvWalk
from .loop import AddressedLoop, CountedLoop
from .params import RillParams

__all__ = ["MatmulLoops"]


class MatmulLoops:
    """The MATMUL engine's state. The sequencer decides when it loads, starts and steps.

    Attributes
    ----------
    act : AddressedLoop
        The row within an activation tile; its address is the activation tile's read address.
    k_tiles, n_tiles : CountedLoop
        The reduction tile, then the output tile.
    weight : AddressedLoop
        The weight row within a tile, one ahead of :attr:`act`; its address is the weight tile's
        read address.
    acc_base : Signal
        The output tile's first accumulator row (``acc_addr + nt * m``).
    tile_buf : Signal
        The weight buffer the activation tile being issued uses (the weight side wrote it a tile
        earlier). It persists from one MATMUL to the next, so the next one's first weights go to
        the buffer the last tile, still in the array, does not use.
    weight_buf : Signal
        The weight buffer the weight side is writing.
    act_row_valid, weight_row_valid : Value
        Whether the current activation row and weight row are issued (a tile may be longer than
        ``m`` or than ``rows``, and the weight side stops after the last tile).
    finishing : Value
        The last cycle of the activation side.
    halves : Signal
        Set by the sequencer: activations are packed INT8, two K tiles a word (the even tile
        reads the low half, the odd one the high half at the same address).
    half : Value
        The activation row being read is its word's high half.
    diagonal : Signal
        A depthwise MATMUL: each weight tile is one word, its diagonal, read for every row of
        the tile (the sequencer keeps row ``r``'s byte ``r`` only).
    """

    def __init__(self, params: RillParams):
        self._params = p = params
        #: The convolution walk (``RillParams.conv_addressing``), and whether this MATMUL uses
        #: it: then it, not the row loop, moves the activation address.
        self.halves = Signal(name="mm_halves")
        self.conv_walk = ConvWalk(p, self.halves) if p.conv_addressing else None
        self.conv = Signal(name="mm_conv")
        self.diagonal = Signal(name="mm_diagonal")
        self.act_rows = Signal(p.matmul_m_width, name="mm_m")   # m, the rows a tile issues
        self.accumulate = Signal(name="mm_accumulate")
        self.act_origin = Signal(p.act_addr_width, name="mm_act_addr")   # the first k tile
        self.act = AddressedLoop(p.tile_cycles_width, "mm_i", address_width=p.act_addr_width)
        self.k_tiles, self.n_tiles = CountedLoop(8, "mm_kt"), CountedLoop(8, "mm_nt")
        self.acc_base = Signal(p.acc_addr_width, name="mm_acc_base")
        self.tile_buf = Signal(name="tile_buf")
        self.weight = AddressedLoop(p.tile_cycles_width, "w_i", address_width=p.weight_addr_width)
        self.weight_tile = Signal(p.matmul_tiles_width, name="w_tile")   # tiles finished
        self.weight_buf = Signal(name="w_buf")
        self.tiles = Signal(p.matmul_tiles_width, name="mm_tiles")
        # From the header, a cycle before the start (load_header).
        self._cycles_last = Signal(p.tile_cycles_width, name="mm_cycles_last")
        self._k_single, self._n_single = Signal(name="mm_k_single"), Signal(name="mm_n_single")
        self._weight_single = Signal(name="w_single")

        self.act_row_valid = self.act.index < self.act_rows
        self.weight_row_valid = (self.weight.index < p.rows) & (self.weight_tile < self.tiles)
        self.finishing = self.act.at_last & self.k_tiles.at_last & self.n_tiles.at_last
        self.half = self.halves & self.k_tiles.index[0]
        if self.conv_walk is not None:
            self.half = Mux(self.conv, self.conv_walk.half, self.half)

    def load_header(self, m: Module, fields: dict[str, Value]):
        """Take what the loops need from the instruction's header ``fields``, a cycle before
        :meth:`start`: the tiles' addresses, the tile length's bound and whether each loop has a
        single iteration, all into registers, so that neither a mux of header fields onto the
        read addresses nor a compare such as ``k_tiles == 1`` lies in :meth:`start`'s cycle."""
        p = self._params
        self.act.load_base(m, fields["act_addr"])
        if self.conv_walk is not None:
            conv = fields["flags"] & isa.MatmulFlags.CONV.value
            m.d.sync += [self.conv.eq(conv.any()), self.diagonal.eq(
                (fields["flags"] & isa.MatmulFlags.DEPTHWISE.value).any())]
            with m.If(conv.any()):
                self.act.load_base(m, self.conv_walk.first_address(fields["act_addr"]))
                self.conv_walk.begin(m, fields["act_addr"],
                                     (fields["flags"] & isa.MatmulFlags.DEPTHWISE.value).any())
        self.weight.load_base(m, fields["weight_addr"])
        side = max(p.rows, p.cols)   # >= 2, so the row loops pass 1
        rows = fields["m"]
        m.d.sync += [
            self.act_origin.eq(fields["act_addr"]),
            self._cycles_last.eq(Mux(rows > side, rows, side) - 1),
            self._k_single.eq(fields["k_tiles"] == 1),
            self._n_single.eq(fields["n_tiles"] == 1),
            # The weight side starts at row 1: with side == 2 its first row is its last.
            self._weight_single.eq((rows <= 2) if side == 2 else 0),
        ]

    def start(self, m: Module, fields: dict[str, Value], tiles: Value):
        """Start a MATMUL with header ``fields`` (the same as :meth:`load_header` took a cycle
        earlier) and ``tiles = k_tiles * n_tiles``. In this cycle the sequencer reads weight row
        0 of the first tile (into :attr:`tile_buf`); the weight side goes on from row 1."""
        self.act.start(m, self._cycles_last, first_is_last=0)
        self.weight.start(m, self._cycles_last, first=1, first_is_last=self._weight_single)
        if self.conv_walk is not None:
            with m.If(self.diagonal):   # row 1 of a diagonal tile reads its one word again
                m.d.sync += self.weight.address.eq(self.weight.base)
        self.k_tiles.start(m, fields["k_tiles"] - 1, first_is_last=self._k_single)
        self.n_tiles.start(m, fields["n_tiles"] - 1, first_is_last=self._n_single)
        m.d.sync += [
            self.act_rows.eq(fields["m"]), self.tiles.eq(tiles),
            self.accumulate.eq(fields["flags"][0]),
            self.acc_base.eq(fields["acc_addr"]),
            self.weight_tile.eq(0), self.weight_buf.eq(self.tile_buf),
        ]

    def step(self, m: Module):
        """One working cycle of the MATMUL."""
        p = self._params
        # Weight side: at a tile's last row, on to the next tile, into the other buffer.
        self.weight.step(m)
        with m.If(self.weight.at_last):
            tile_words = p.rows if self.conv_walk is None else Mux(self.diagonal, 1, p.rows)
            self.weight.load_base(m, self.weight.base + tile_words)
            m.d.sync += [self.weight_tile.eq(self.weight_tile + 1),
                         self.weight_buf.eq(~self.weight_buf)]
        if self.conv_walk is not None:
            with m.Elif(self.diagonal):
                m.d.sync += self.weight.address.eq(self.weight.base)
        # Activation side: the next k tile (and the weights it uses), then the next output tile.
        self.act.step(m)
        with m.If(self.act.at_last):
            self.k_tiles.step(m)
            with m.If(~self.halves | self.k_tiles.index[0]):   # the word's last K tile
                self.act.load_base(m, self.act.base + self.act_rows)
            with m.Else():
                self.act.load_base(m, self.act.base)
            m.d.sync += self.tile_buf.eq(~self.tile_buf)
            with m.If(self.k_tiles.at_last):
                self.n_tiles.step(m)
                self.act.load_base(m, self.act_origin)
                m.d.sync += self.acc_base.eq(self.acc_base + self.act_rows)
        if self.conv_walk is not None:
            with m.If(self.conv):   # after the row loop's, so its address wins
                self.conv_walk.step(m, self.act.address, self.act.at_last,
                                    self.k_tiles.at_last)
