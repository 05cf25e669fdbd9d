"""Accumulator SRAM: one int32 bank per array column, accumulating across K tiles in place."""

from __future__ import annotations

from amaranth.hdl import EnableInserter, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .cycles import acc_read_latency
from .enable import enable_copy
from .params import RillParams
from .sram import check_no_collision, sram_tile

__all__ = ["AccumulatorBanks", "acc_tag_layout"]


def acc_tag_layout(params: RillParams) -> data.StructLayout:
    """What travels through the array beside each activation row: where its sums go."""
    return data.StructLayout({
        "addr": unsigned(params.acc_addr_width),
        "accumulate": 1,   # 0: the first K tile overwrites; 1: add to what the row holds
    })


class AccumulatorBanks(wiring.Component):
    """``cols`` banks of ``acc_depth`` int32 words, one bank per array column.

    Column ``c``'s sums arrive ``c`` cycles after column 0's (the array's deskew is left to the
    banks: each bank does its read-modify-write at its own time, so no deskew registers are
    needed). A sum arriving in cycle ``t`` makes ``old + psum`` (or ``psum``) in ``t``, straight
    from the array's register, and writes it; its row is read
    ``L = hw.cycles.acc_read_latency(params)`` cycles ahead, when :attr:`upcoming` announces it.

    - ``L = 1``: the row is read in ``t - 1``, and ``old`` is the read port's data. Two sums for
      the same row are at least a weight tile (>= 2 cycles) apart, so the read for the second
      (``t + 1`` or later) already sees the write of ``t``.
    - ``L = 2`` (``params.deep_pipeline``): the row is read in ``t - 2`` and its data
      registered in ``t - 1``, so the block RAM's clock-to-out ends in a flip-flop and the adder
      starts from one; the write leaves from registers in ``t + 1``, so the adder ends in
      flip-flops too. The read of ``t - 2`` sees neither the write the port performs then nor
      the one issued then (sums two and three cycles before); the one of them to this row, if
      any, is forwarded instead.

    The store path reads all banks at one row through :attr:`read`; it never runs while sums are
    in flight (STORE waits for the array to drain), so the banks' single read port is shared.

    The banks freeze under registered copies of :attr:`enable_ahead`: one per bank on the deep
    core, so that no copy drives the clock enables of thousands of flip-flops (all banks together
    have a few thousand on a large array), one in all on the shallow core (the iCE40, where each
    copy takes a logic cell).

    Members
    -------
    enable_ahead : ``In(1)``
        The core's enable a cycle ahead (:mod:`hw.enable`): 0 freezes the banks a cycle later.
    sums : ``In(stream.Signature({psum, tag}, always_ready=True)).array(cols)``
        Column sums from the array.
    upcoming : ``In(stream.Signature(tag, always_ready=True)).array(cols)``
        ``valid`` and ``tag`` of what :attr:`sums` carries ``L`` cycles later.
    read : ``Out(memory.ReadPort.Signature(...))``
        Row read for STORE (the banks look like one memory of ``cols``-wide rows): ``addr``,
        ``en``; ``data`` holds the row's ``cols`` int32 values ``L`` cycles later.
    """

    def __init__(self, params: RillParams):
        self._params = params
        tag = acc_tag_layout(params)
        sum_layout = data.StructLayout({"psum": signed(params.psum_width), "tag": tag})
        super().__init__({
            "enable_ahead": In(1, init=1),
            "sums": In(stream.Signature(sum_layout, always_ready=True)).array(params.cols),
            "upcoming": In(stream.Signature(tag, always_ready=True)).array(params.cols),
            "read": Out(memory.ReadPort.Signature(
                addr_width=tag["addr"].shape.width,
                shape=data.ArrayLayout(signed(32), params.cols))),
        })

    def elaborate(self, platform):
        top = Module()
        p = self._params
        registered = acc_read_latency(p) == 2
        enables = ([enable_copy(top, self.enable_ahead, f"enable_bank_{c}", reset_less=True)
                    for c in range(p.cols)] if p.deep_pipeline
                   else [enable_copy(top, self.enable_ahead, "enable_banks", reset_less=False)]
                   * p.cols)
        for c in range(p.cols):
            m = Module()
            top.submodules[f"column{c}"] = EnableInserter(enables[c])(m)
            bank = m.submodules.bank = sram_tile(signed(32), p.acc_depth)
            rd = bank.read_port()
            wr = bank.write_port()
            upcoming = self.upcoming[c]
            incoming = self.sums[c]
            if not registered:
                # The sums' reads are checked (hw.sram.check_no_collision) where a row is read two
                # cycles after its write or later. The deep pipeline reads a row in the cycle it
                # is written, by design, and forwards the write; a STORE's reads run free (and
                # start only once the MATMUL has drained).
                check_no_collision(top, rd, [wr], upcoming.valid & enables[c])
            m.d.comb += [
                rd.addr.eq(Mux(upcoming.valid, upcoming.payload.addr, self.read.addr)),
                rd.en.eq(upcoming.valid | self.read.en),
            ]
            total = Signal(signed(32), name=f"total{c}")   # what the arriving sum writes
            if registered:
                # The write leaves from registers a cycle after the sum arrives: the adder's
                # carry chain then ends in flip-flops next to it, not in a block RAM's data pins
                # across the die.
                # Data registers without a reset (valids and hits keep theirs): only what must
                # start from a known value is on the reset net, which otherwise spans the die.
                wr_addr = Signal.like(wr.addr, name=f"write_addr{c}", reset_less=True)
                wr_data = Signal.like(wr.data, name=f"write_data{c}", reset_less=True)
                m.d.sync += [wr_addr.eq(incoming.payload.tag.addr), wr_data.eq(total),
                             wr.en.eq(incoming.valid)]
                m.d.comb += [wr.addr.eq(wr_addr), wr.data.eq(wr_data)]
                old = Signal(signed(32), name=f"old{c}", reset_less=True)
                m.d.sync += old.eq(rd.data)
                # The row read in cycle r misses two writes: the one the port performs in r
                # (issued in r - 1) and the one issued in r. At most one can be to this row (sums
                # for a row are two cycles apart or more); its value is forwarded in t = r + 2.
                performed = Signal(name=f"hit_performed{c}")
                issued = Signal(name=f"hit_issued{c}")
                performed_data = Signal(signed(32), name=f"performed_data{c}", reset_less=True)
                hit = Signal(name=f"hit{c}")
                forwarded = Signal(signed(32), name=f"forwarded{c}", reset_less=True)
                m.d.sync += [
                    performed.eq(upcoming.valid & wr.en & (wr.addr == upcoming.payload.addr)),
                    issued.eq(upcoming.valid & incoming.valid
                              & (incoming.payload.tag.addr == upcoming.payload.addr)),
                    performed_data.eq(wr.data),
                    # In r + 1 the write issued in r is in the port's registers.
                    hit.eq(performed | issued),
                    forwarded.eq(Mux(issued, wr.data, performed_data)),
                ]
                old = Mux(hit, forwarded, old)
            else:
                m.d.comb += [wr.addr.eq(incoming.payload.tag.addr), wr.data.eq(total),
                             wr.en.eq(incoming.valid)]
                old = rd.data
            m.d.comb += [
                self.read.data[c].eq(old),
                total.eq(Mux(incoming.payload.tag.accumulate, old, 0) + incoming.payload.psum),
            ]
        return top
