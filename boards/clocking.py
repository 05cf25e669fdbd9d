"""PLLs and reset for the boards: the board's oscillator in, the core's ``sync`` domain out.

The PLL settings are computed here (the same search ``icepll`` and ``ecppll`` do) so that a board
can ask for any clock; :func:`ice40_pll_config` and :func:`ecp5_pll_config` raise
:class:`ClockError` for a frequency the PLL cannot make.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import (
    ClockDomain,
    ClockSignal,
    Elaboratable,
    Instance,
    Module,
    ResetSignal,
    Signal,
)
from amaranth.lib import cdc, io

__all__ = ["ClockError", "Ice40PllConfig", "Ecp5PllConfig", "ice40_pll_config", "ecp5_pll_config",
           "Ice40Pll", "Ecp5Pll"]


class ClockError(ValueError):
    """No PLL setting makes the requested clock from the board's oscillator."""


# -- iCE40 SB_PLL40 ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ice40PllConfig:
    """``f_out = f_in * (divf + 1) / ((divr + 1) * 2 ** divq)``, feedback ``SIMPLE``."""
    f_in: float
    divr: int
    divf: int
    divq: int

    @property
    def f_pfd(self) -> float:
        return self.f_in / (self.divr + 1)

    @property
    def f_vco(self) -> float:
        return self.f_pfd * (self.divf + 1)

    @property
    def f_out(self) -> float:
        return self.f_vco / 2 ** self.divq

    @property
    def filter_range(self) -> int:
        # As icepll chooses it from the phase detector's frequency (MHz).
        f = self.f_pfd / 1e6
        return next(i for i, limit in enumerate((17, 26, 44, 66, 101), start=1) if f < limit) \
            if f < 101 else 6


def ice40_pll_config(f_in: float, f_out: float, *, tolerance: float = 0.0) -> Ice40PllConfig:
    """The SB_PLL40 setting closest to ``f_out`` (iCE40 datasheet limits: PFD 10-133 MHz, VCO
    533-1066 MHz, output 16-275 MHz)."""
    if not 16e6 <= f_out <= 275e6:
        raise ClockError(f"the iCE40 PLL makes 16-275 MHz, not {f_out / 1e6:g} MHz")
    best = None
    for divr in range(16):
        for divq in range(1, 7):
            for divf in range(128):
                cfg = Ice40PllConfig(f_in, divr, divf, divq)
                if not (10e6 <= cfg.f_pfd <= 133e6 and 533e6 <= cfg.f_vco <= 1066e6):
                    continue
                key = (abs(cfg.f_out - f_out), divr)
                if best is None or key < best[0]:
                    best = (key, cfg)
    return _accept(best, f_in, f_out, tolerance, "iCE40 PLL")


def _accept(best, f_in, f_out, tolerance, what):
    if best is None or best[0][0] > tolerance * f_out:
        got = f" (nearest {best[1].f_out / 1e6:.4f} MHz)" if best else ""
        raise ClockError(f"the {what} cannot make {f_out / 1e6:g} MHz from "
                         f"{f_in / 1e6:g} MHz{got}: choose another clock")
    return best[1]


class Ice40Pll(Elaboratable):
    """Drives the ``sync`` domain (which the top defines) from a board clock pin through
    ``SB_PLL40_PAD``, held in reset until the PLL locks
    and then for :attr:`hold` seconds more: iCE40 block RAMs read as zero for ~3 us after
    configuration (see amaranth's ``LatticeICE40Platform.create_missing_domain``)."""

    hold = 15e-6

    def __init__(self, resource: str, f_out: float):
        self.resource = resource
        self.f_out = f_out

    def elaborate(self, platform):
        m = Module()
        pin = platform.request(self.resource, dir="-")
        f_in = platform.lookup(self.resource).clock.frequency
        cfg = ice40_pll_config(f_in, self.f_out)
        clk, locked = Signal(name="pll_clk"), Signal(name="pll_locked")
        m.submodules.pll = Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE",
            p_DIVR=cfg.divr, p_DIVF=cfg.divf, p_DIVQ=cfg.divq,
            p_FILTER_RANGE=cfg.filter_range,
            i_PACKAGEPIN=pin.io,
            i_RESETB=1, i_BYPASS=0,
            o_PLLOUTGLOBAL=clk,
            o_LOCK=locked,
        )
        m.d.comb += ClockSignal("sync").eq(clk)
        platform.add_clock_constraint(clk, cfg.f_out)
        m.submodules.reset = _LockReset(locked, int(self.hold * cfg.f_out))
        return m


# -- ECP5 EHXPLLL --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ecp5PllConfig:
    """``f_out = f_in / clki_div * clkfb_div``, feedback from ``CLKOP``."""
    f_in: float
    clki_div: int
    clkfb_div: int
    clkop_div: int

    @property
    def f_pfd(self) -> float:
        return self.f_in / self.clki_div

    @property
    def f_out(self) -> float:
        return self.f_pfd * self.clkfb_div

    @property
    def f_vco(self) -> float:
        return self.f_out * self.clkop_div


def ecp5_pll_config(f_in: float, f_out: float, *, tolerance: float = 0.0) -> Ecp5PllConfig:
    """The EHXPLLL setting closest to ``f_out``, VCO nearest 600 MHz as ``ecppll`` picks it
    (limits: PFD 3.125-400 MHz, VCO 400-800 MHz)."""
    best = None
    for clki_div in range(1, 129):
        if f_in / clki_div < 3.125e6:
            break
        for clkfb_div in range(1, 81):
            for clkop_div in range(1, 129):
                cfg = Ecp5PllConfig(f_in, clki_div, clkfb_div, clkop_div)
                if not 400e6 <= cfg.f_vco <= 800e6:
                    continue
                key = (abs(cfg.f_out - f_out), abs(cfg.f_vco - 600e6), clki_div)
                if best is None or key < best[0]:
                    best = (key, cfg)
    return _accept(best, f_in, f_out, tolerance, "ECP5 PLL")


class Ecp5Pll(Elaboratable):
    """Drives the ``sync`` domain (which the top defines) from a board clock through ``EHXPLLL``,
    in reset until the PLL locks."""

    def __init__(self, resource: str, f_out: float):
        self.resource = resource
        self.f_out = f_out

    def elaborate(self, platform):
        m = Module()
        m.submodules.clk_buffer = clk_in = io.Buffer("i", platform.request(self.resource, dir="-"))
        f_in = platform.lookup(self.resource).clock.frequency
        cfg = ecp5_pll_config(f_in, self.f_out)
        clk, locked = Signal(name="pll_clk"), Signal(name="pll_locked")
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{f_in / 1e6:g}",
            a_FREQUENCY_PIN_CLKOP=f"{cfg.f_out / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED",
            p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=cfg.clki_div,
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=cfg.clkop_div,
            p_CLKOP_CPHASE=(cfg.clkop_div - 1) // 2, p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=cfg.clkfb_div,
            i_RST=0, i_STDBY=0,
            i_CLKI=clk_in.i,
            i_CLKFB=clk,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=clk,
            o_LOCK=locked,
        )
        m.d.comb += ClockSignal("sync").eq(clk)
        platform.add_clock_constraint(clk, cfg.f_out)
        # The reset onto a global network (a DCCA, as the clock's), as nextpnr-ecp5 promotes
        # only clocks: through fabric routing it would reach thousands of flip-flops across the
        # die in one net.
        m.submodules.reset = _LockReset(locked, 16, global_buffer="DCCA")
        return m


class _LockReset(Elaboratable):
    """Drives ``sync``'s reset: asserted until ``locked`` has been high for ``cycles`` clocks.

    ``locked`` comes from the PLL, asynchronous to its own output clock, so it is synchronized
    first; a loss of lock resets the core again. ``global_buffer`` names the device's global
    buffer primitive (ports ``CLKI``, ``CE``, ``CLKO``) to drive the reset net through, if any.
    """

    def __init__(self, locked: Signal, cycles: int, *, global_buffer: str | None = None):
        self.locked = locked
        self.cycles = max(1, cycles)
        self.global_buffer = global_buffer

    def elaborate(self, platform):
        m = Module()
        m.domains.por = ClockDomain("por", reset_less=True)
        m.d.comb += ClockSignal("por").eq(ClockSignal("sync"))
        locked = Signal()
        m.submodules.locked_sync = cdc.FFSynchronizer(self.locked, locked, o_domain="por")
        count = Signal(range(self.cycles + 1))
        reset = Signal(init=1)   # a register: the reset net never glitches
        with m.If(~locked):
            m.d.por += count.eq(0)
        with m.Elif(count != self.cycles):
            m.d.por += count.eq(count + 1)
        m.d.por += reset.eq(count != self.cycles)
        if self.global_buffer is None:
            m.d.comb += ResetSignal("sync").eq(reset)
        else:
            m.submodules.reset_buffer = Instance(self.global_buffer, i_CLKI=reset, i_CE=1,
                                                 o_CLKO=ResetSignal("sync"))
        return m
