"""What every testbench does first: start the clock and reset the DUT with its streams quiet; the
inputs' writer they drive the streams through; and their sleep while nothing moves."""

from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, RisingEdge, Timer
from cocotb.utils import get_sim_time

#: The testbenches' clock period: 100 MHz.
CLOCK_NS = 10


async def reset_core(dut, *, rsp_ready: int):
    """Start the 100 MHz clock and hold reset for two cycles with both byte streams quiet."""
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rst.value = 1
    dut.cmd__valid.value = 0
    dut.rsp__ready.value = rsp_ready
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0


async def reset_wire(dut):
    """The same for a device with ``rx``/``tx`` wire streams (``LinkedCore``)."""
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rst.value = 1
    dut.rx__valid.value = 0
    dut.rx__payload.value = 0
    dut.tx__ready.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0


class InputWriter:
    """Writes DUT inputs only when their values change. A testbench that drives a stream every
    cycle spends its time in Python, and most cycles repeat the last cycle's values."""

    def __init__(self):
        self._last = {}

    def __call__(self, handle, value: int) -> None:
        if self._last.get(handle) != value:
            handle.value = value
            self._last[handle] = value


async def cycles_until_rise(signals, budget: int) -> int:
    """From a clock edge, sleep until one of ``signals`` rises (they change on edges) or
    ``budget`` cycles have nearly passed: one trigger instead of a Python wake-up per cycle.
    Returns the clock edges passed, at most ``budget - 1``: the timer ends half a clock before
    the edge the caller's next cycle waits for."""
    start = get_sim_time(unit="ns")
    await First(*(RisingEdge(signal) for signal in signals),
                Timer(budget * CLOCK_NS - CLOCK_NS // 2, unit="ns"))
    return int((get_sim_time(unit="ns") - start) // CLOCK_NS)
