"""What every core testbench does first."""

from cocotb.clock import Clock
from cocotb.triggers import ClockCycles


async def reset_core(dut, *, rsp_ready: int):
    """Start the 100 MHz clock and hold reset for two cycles with both byte streams quiet."""
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.cmd__valid.value = 0
    dut.rsp__ready.value = rsp_ready
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
