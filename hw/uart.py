"""An 8N1 UART: a receiver and a transmitter with byte streams on the inside, one pin each outside.

The boards talk to the host through an FTDI bridge with no flow control, so the receiver must
survive what a real line does: a baud rate a little off, glitches, a byte cut in half when a
cable is plugged, a break. It samples every clock (the system clock is the oversampling clock),
votes over three samples at the middle of each bit, checks the start bit before committing to a
frame and the stop bit after it, counts what went wrong, and never wedges: after a bad stop bit it
waits for the line to go idle and picks up the next start bit.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import cdc, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BaudError", "baud_divisor", "UartRx", "UartTx", "Uart", "MIN_DIVISOR"]

#: Clocks per bit below which the three-sample vote no longer fits inside the middle of a bit.
MIN_DIVISOR = 4


class BaudError(ValueError):
    """The clock does not divide into the requested baud rate closely enough."""


def baud_divisor(clk_hz: float, baud: int, *, tolerance: float = 0.01) -> int:
    """Clocks per bit for ``baud`` at ``clk_hz``: the nearest integer, if within ``tolerance``.

    Each end of an 8N1 link may be off by a few percent before the stop bit's middle moves out of
    its bit (half a bit over ten bits: 5% in total); we keep our share to ``tolerance``.
    """
    divisor = round(clk_hz / baud)
    if divisor < MIN_DIVISOR:
        raise BaudError(f"{baud} baud at {clk_hz / 1e6:g} MHz is {clk_hz / baud:.2f} clocks per "
                        f"bit; the receiver needs at least {MIN_DIVISOR}: lower the baud rate")
    error = abs(clk_hz / divisor / baud - 1)
    if error > tolerance:
        raise BaudError(f"{clk_hz / 1e6:g} MHz / {divisor} = {clk_hz / divisor:.0f} baud is "
                        f"{error:.2%} off {baud} baud (more than {tolerance:.1%}): choose a clock "
                        f"that is a multiple of the baud rate")
    return divisor


def _check_divisor(divisor: int) -> int:
    if not isinstance(divisor, int) or divisor < MIN_DIVISOR:
        raise BaudError(f"divisor must be an integer >= {MIN_DIVISOR}, not {divisor!r}")
    return divisor


class UartRx(wiring.Component):
    """8N1 receiver.

    The line passes a two-flop synchronizer. A low sample in the idle state starts a frame; the
    start bit is confirmed by a majority vote over three samples around its middle (a shorter low
    glitch is ignored), then each data bit and the stop bit are voted the same way, one bit period
    apart. A received byte waits in an output register until :attr:`data` takes it.

    Parameters
    ----------
    divisor : int
        Clocks per bit (see :func:`baud_divisor`), at least :data:`MIN_DIVISOR`.
    counter_width : int
        Width of the error counters. They wrap: a reader takes differences (the link reports
        the framing errors' count so, ``hw.link.protocol.LINE_ERROR_BITS``).

    Members
    -------
    line : ``In(1)``
        The RX pin (idle high). Asynchronous: it is synchronized here.
    data : ``Out(stream.Signature(8))``
        Received bytes. A byte that completes while the previous one is still waiting is dropped
        and counted in :attr:`overruns`.
    framing_errors : ``Out(counter_width)``
        Frames whose stop bit was low, counted modulo ``2**counter_width``. The byte is dropped
        and the receiver waits for the line to return high before it looks for the next start
        bit.
    overruns : ``Out(counter_width)``
        Bytes dropped because :attr:`data` was not taken in time, counted so too.
    """

    def __init__(self, divisor: int, *, counter_width: int = 8):
        self.divisor = _check_divisor(divisor)
        super().__init__({
            "line": In(1, init=1),
            "data": Out(stream.Signature(8)),
            "framing_errors": Out(counter_width),
            "overruns": Out(counter_width),
        })

    def elaborate(self, platform):
        m = Module()
        d = self.divisor

        line = Signal(init=1)
        m.submodules.sync = cdc.FFSynchronizer(self.line, line, init=1)
        # The last three samples; their majority is the bit value centered one clock ago.
        history = Signal(3, init=0b111)
        m.d.sync += history.eq(Cat(line, history[:2]))
        vote = Signal()
        m.d.comb += vote.eq((history[0] & history[1]) | (history[0] & history[2])
                            | (history[1] & history[2]))

        timer = Signal(range(d + 2))
        bits = Signal(range(8))
        shreg = Signal(8)

        def count_up(counter):
            m.d.sync += counter.eq(counter + 1)

        with m.If(self.data.ready):
            m.d.sync += self.data.valid.eq(0)

        with m.FSM(init="WAIT_IDLE"):
            with m.State("WAIT_IDLE"):
                # After a framing error (or at power-up) the line may sit low in a break; a low
                # level is a start bit only once the line has been seen idle.
                with m.If(vote):
                    m.next = "IDLE"
            with m.State("IDLE"):
                with m.If(~line):
                    # This first low sample comes half a clock after the edge on average, so the
                    # middle of the start bit is (d - 1) / 2 clocks later; the vote taken when the
                    # timer runs out is centered on the sample two clocks before it.
                    m.d.sync += timer.eq((d + 1) // 2)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(vote):
                        m.next = "IDLE"   # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(d - 1), bits.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(d - 1), bits.eq(bits + 1), shreg.eq(Cat(shreg[1:], vote))]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(~vote):
                        count_up(self.framing_errors)
                        m.next = "WAIT_IDLE"
                    with m.Else():
                        # Back to IDLE half a bit early: the next start bit may follow at once.
                        with m.If(self._byte_waiting()):
                            count_up(self.overruns)
                        with m.Else():
                            m.d.sync += [self.data.valid.eq(1), self.data.payload.eq(shreg)]
                        m.next = "IDLE"
        return m

    def _byte_waiting(self):
        """Whether the last byte is still on :attr:`data`, not taken (a seam the formal proofs
        break on purpose, sim/proofs.py)."""
        return self.data.valid & ~self.data.ready


class UartTx(wiring.Component):
    """8N1 transmitter.

    A byte taken from :attr:`data` goes out as one start bit, eight data bits (LSB first) and one
    stop bit, each ``divisor`` clocks long. The next byte is taken in the last clock of the stop
    bit, so a stream that keeps ``valid`` high is sent back to back at the full baud rate.

    Parameters
    ----------
    divisor : int
        Clocks per bit.

    Members
    -------
    data : ``In(stream.Signature(8))``
        Bytes to send. ``ready`` depends only on the transmitter's state.
    line : ``Out(1)``
        The TX pin (idle high).
    """

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({
            "data": In(stream.Signature(8)),
            "line": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        d = self.divisor

        frame = Signal(10, init=0b11_1111_1111)   # bits still to send, LSB first; idle is high
        left = Signal(range(11))                  # bits left in the frame, the current one included
        timer = Signal(range(d))

        # Registered output: the pin never glitches on the combinational path.
        m.d.sync += self.line.eq(frame[0])
        last_clock = Signal()
        m.d.comb += [
            last_clock.eq((left == 0) | ((left == 1) & (timer == 0))),
            self.data.ready.eq(last_clock),
        ]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [frame.eq(Cat(0, self.data.payload, 1)), left.eq(10), timer.eq(d - 1)]
        with m.Elif(left != 0):
            m.d.sync += timer.eq(timer - 1)
            with m.If(timer == 0):
                m.d.sync += [frame.eq(Cat(frame[1:], 1)), left.eq(left - 1), timer.eq(d - 1)]
        return m


class Uart(wiring.Component):
    """A receiver and a transmitter at one baud rate: pins outside, byte streams inside.

    Members
    -------
    rx_line : ``In(1)``
    tx_line : ``Out(1)``
    rx : ``Out(stream.Signature(8))``
        Bytes received (see :class:`UartRx`).
    tx : ``In(stream.Signature(8))``
        Bytes to transmit (see :class:`UartTx`).
    framing_errors, overruns : ``Out(counter_width)``
        The receiver's wrapping error counts.
    """

    def __init__(self, divisor: int, *, counter_width: int = 8):
        self.divisor = _check_divisor(divisor)
        self._counter_width = counter_width
        super().__init__({
            "rx_line": In(1, init=1),
            "tx_line": Out(1, init=1),
            "rx": Out(stream.Signature(8)),
            "tx": In(stream.Signature(8)),
            "framing_errors": Out(counter_width),
            "overruns": Out(counter_width),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = rx = UartRx(self.divisor, counter_width=self._counter_width)
        m.submodules.transmitter = tx = UartTx(self.divisor)
        m.d.comb += [
            rx.line.eq(self.rx_line),
            self.tx_line.eq(tx.line),
            self.framing_errors.eq(rx.framing_errors),
            self.overruns.eq(rx.overruns),
        ]
        wiring.connect(m, rx.data, wiring.flipped(self.rx))
        wiring.connect(m, wiring.flipped(self.tx), tx.data)
        return m
