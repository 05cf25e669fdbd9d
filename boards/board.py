"""What every board has: a description (:class:`Board`), and the top it builds (:class:`BoardTop`).

A board top is the board's clock generator (PLL and reset), the UART pins, and a
:class:`SerialDevice`: the UART PHY in front of "the thing behind the UART", any component with
byte-stream ports ``rx`` (host to device) and ``tx`` (device to host). The simulation uses
:class:`SerialDevice` alone, clocked directly, so the board-level testbench runs the same gateware
as the bitstream minus the PLL.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace

from amaranth.hdl import ClockDomain, Elaboratable, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out

from hw.link import LinkedCore
from hw.link.protocol import CMD_BUFFER_BYTES, LINE_ERROR_BITS
from hw.params import RillParams
from hw.uart import Uart, baud_divisor

__all__ = ["Board", "PLACERS", "SerialDevice", "BoardTop", "serial_device"]


#: The nextpnr placers a board may name.
PLACERS = ("heap", "static")


@dataclass(frozen=True)
class Board:
    """One FPGA board Rill builds for.

    Parameters
    ----------
    name : str
        What ``python -m hw.build --board`` takes.
    platform : type
        The amaranth-boards platform class.
    params : RillParams
        The default core shape: chosen to fit the device.
    clock_hz : float
        Target core clock, made by the PLL from the board's oscillator.
    baud : int
        UART baud rate; ``clock_hz`` should be a multiple of it.
    clock : callable
        ``clock(clock_hz)`` returns the elaboratable that makes the ``sync`` domain (a PLL and its
        reset, from :mod:`boards.clocking`).
    summary : str
        One line for ``--list``.
    link_buffer : int
        Bytes of the link's command buffer and of its response ring, each (a power of two of at
        least one frame, 1 KiB): fewer block RAMs on small parts, less streaming slack.
    dsp_pes : int
        How many PEs (the first, row by row) keep their two small multipliers for the DSP blocks
        instead of LUTs: what the device's DSPs hold beside the wide multipliers elsewhere.
    placer : str
        nextpnr's placer, ``"heap"`` (its default) or ``"static"`` (its electrostatic placer,
        which spreads a full ECP5 design so that router2 can route it).
    """

    name: str
    platform: type
    params: RillParams
    clock_hz: float
    baud: int
    clock: Callable[[float], Elaboratable]
    summary: str
    uart: str = "uart"
    link_buffer: int = CMD_BUFFER_BYTES
    dsp_pes: int = 0
    placer: str = "heap"

    def __post_init__(self):
        if self.placer not in PLACERS:
            raise ValueError(f"{self.name}: placer {self.placer!r} is not one of {PLACERS}")

    def with_array(self, rows: int | None = None, cols: int | None = None) -> "Board":
        """This board with another array shape (SRAM depths unchanged)."""
        params = replace(self.params, rows=self.params.rows if rows is None else rows,
                         cols=self.params.cols if cols is None else cols)
        return replace(self, params=params)


def serial_device(params: RillParams, link_buffer: int = CMD_BUFFER_BYTES, *,
                  dsp_pes: int = 0) -> wiring.Component:
    """The component behind the UART: the core behind the framed, credit-paced link."""
    return LinkedCore(params, cmd_buffer=link_buffer, rsp_buffer=link_buffer, dsp_pes=dsp_pes)


class SerialDevice(wiring.Component):
    """A UART PHY and the device behind it. Clocked by ``sync``; no platform, no PLL.

    Members
    -------
    rx_line : ``In(1)``
        UART input pin (host to device), idle high.
    tx_line : ``Out(1)``
        UART output pin (device to host).
    framing_errors : ``Out(3)``
        The receiver's framing errors, a wrapping count, which also goes to the host in every
        device frame (:data:`~hw.link.protocol.LINE_ERROR_BITS`). (The link takes every byte
        the UART receives, so the UART never overruns.)
    """

    rx_line: In(1, init=1)
    tx_line: Out(1, init=1)
    framing_errors: Out(LINE_ERROR_BITS[1])

    def __init__(self, device: wiring.Component, divisor: int):
        self.device = device
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart = uart = Uart(self.divisor, counter_width=LINE_ERROR_BITS[1])
        m.submodules.device = self.device
        m.d.comb += [
            uart.rx_line.eq(self.rx_line),
            self.tx_line.eq(uart.tx_line),
            self.framing_errors.eq(uart.framing_errors),
            self.device.line_errors.eq(uart.framing_errors),
        ]
        wiring.connect(m, uart.rx, self.device.rx)
        wiring.connect(m, self.device.tx, uart.tx)
        return m


class BoardTop(Elaboratable):
    """Everything in a board's bitstream: PLL and reset, UART pins, UART PHY, device.

    The first two LEDs (where the board has them) show a heartbeat (about 1 Hz: the PLL runs and
    reset is released) and that the UART receiver has seen a framing error.
    """

    def __init__(self, board: Board, device: wiring.Component | None = None):
        self.board = board
        self.device = device if device is not None else serial_device(
            board.params, board.link_buffer, dsp_pes=board.dsp_pes)

    def elaborate(self, platform):
        m = Module()
        board = self.board
        m.domains.sync = ClockDomain("sync")
        m.submodules.clock = board.clock(board.clock_hz)
        divisor = baud_divisor(board.clock_hz, board.baud)
        m.submodules.serial = serial = SerialDevice(self.device, divisor)
        # Raw ports for every line the resource has (RTS, DTR on some boards; unused here).
        lines = {sub.name: "-" for sub in platform.lookup(board.uart, 0).ios}
        uart = platform.request(board.uart, 0, dir=lines)
        m.submodules.rx_pin = rx_pin = io.Buffer("i", uart.rx)
        m.submodules.tx_pin = tx_pin = io.Buffer("o", uart.tx)
        m.d.comb += [serial.rx_line.eq(rx_pin.i), tx_pin.o.eq(serial.tx_line)]

        leds = [res.number for res in platform.resources.values() if res.name == "led"]
        if len(leds) >= 2:
            m.submodules.alive = alive = io.Buffer("o", platform.request("led", 0, dir="-"))
            m.submodules.trouble = trouble = io.Buffer("o", platform.request("led", 1, dir="-"))
            heartbeat = Signal(int(board.clock_hz).bit_length())
            m.d.sync += heartbeat.eq(heartbeat + 1)
            # The count wraps; the LED stays on.
            seen_errors = Signal()
            with m.If(serial.framing_errors != 0):
                m.d.sync += seen_errors.eq(1)
            m.d.comb += [alive.o.eq(heartbeat[-1]), trouble.o.eq(seen_errors)]
        return m
