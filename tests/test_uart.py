"""The UART against a bit-level line model, in the Amaranth simulator.

The line model draws an 8N1 waveform at any (fractional) number of clocks per bit, with a random
phase against the clock, so the receiver is tested at baud rates that do not divide the clock; it
also decodes a transmitter's pin on its own, without the receiver under test.
"""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from hw.uart import BaudError, Uart, UartRx, UartTx, baud_divisor

#: Divisors the tests run at: the smallest the receiver takes, the simulation's, and the boards'
#: (iCEBreaker 36 MHz / 3 Mbaud = 12; ULX3S at 3 Mbaud is 35 or more).
DIVISORS = [4, 5, 8, 12, 35]


# -- line model ----------------------------------------------------------------------------------

def frame_bits(byte: int, stop: int = 1) -> list[int]:
    return [0, *((byte >> i) & 1 for i in range(8)), stop]


def line_levels(frames: list[list[int]], bit_clocks: float, *, phase: float = 0.3,
                idle_before: int = 3, gap_bits: float = 0.0) -> list[int]:
    """The line's level in each clock for frames sent back to back at ``bit_clocks`` per bit.

    Clock ``t`` sees the level at time ``t + phase`` (in clocks); ``gap_bits`` of idle separate
    frames.
    """
    edges = []            # (start time, level) of each bit
    time = float(idle_before)
    for bits in frames:
        for bit in bits:
            edges.append((time, bit))
            time += bit_clocks
        time += gap_bits * bit_clocks
    end = int(time) + 2 * int(bit_clocks) + 4
    levels, i = [], -1
    for t in range(end):
        while i + 1 < len(edges) and edges[i + 1][0] <= t + phase:
            i += 1
        in_bit = i >= 0 and t + phase < edges[i][0] + bit_clocks
        levels.append(edges[i][1] if in_bit else 1)
    return levels


def decode_line(levels: list[int], divisor: int) -> tuple[list[int], list[int]]:
    """Bytes on a transmitter's pin sampled each clock: ``(bytes, start clock of each frame)``."""
    out, starts, t = [], [], 0
    while t < len(levels):
        if levels[t] == 0:
            if t + 10 * divisor > len(levels):
                break
            bits = [levels[t + b * divisor + divisor // 2] for b in range(10)]
            assert bits[0] == 0 and bits[9] == 1, f"bad frame at clock {t}: {bits}"
            out.append(sum(bit << i for i, bit in enumerate(bits[1:9])))
            starts.append(t)
            t += 10 * divisor - divisor // 2   # look for the next start bit from the stop's middle
            while t < len(levels) and levels[t] == 0:
                raise AssertionError(f"line low in the stop bit at clock {t}")
        else:
            t += 1
    return out, starts


# -- harness -------------------------------------------------------------------------------------

def run_rx(levels: list[int], divisor: int, *, counter_width: int = 8, ready_at=None):
    """Drive ``levels`` into a UartRx; returns ``(bytes, framing_errors, overruns)``.

    ``ready_at(cycle)`` says whether the consumer takes a byte in that cycle (default: always).
    """
    dut = UartRx(divisor, counter_width=counter_width)
    received, counters = [], {}

    async def drive(ctx):
        for level in levels:
            ctx.set(dut.line, level)
            await ctx.tick()
        counters.update(framing=ctx.get(dut.framing_errors), overruns=ctx.get(dut.overruns))

    async def consume(ctx):
        cycle = 0
        async for _clk, _rst, valid, ready, payload in ctx.tick().sample(
                dut.data.valid, dut.data.ready, dut.data.payload):
            if valid and ready:
                received.append(payload)
            cycle += 1
            ctx.set(dut.data.ready, 1 if ready_at is None else ready_at(cycle))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(drive)
    sim.add_testbench(consume, background=True)
    sim.run()
    return received, counters["framing"], counters["overruns"]


def run_tx(payload: list[int], divisor: int, *, p_idle: float = 0.0, seed: int = 0):
    """Feed a UartTx with pauses of probability ``p_idle``; returns the pin's level per clock."""
    dut = UartTx(divisor)
    rng = random.Random(seed)
    levels = []
    done = []

    async def produce(ctx):
        for byte in payload:
            while rng.random() < p_idle:
                ctx.set(dut.data.valid, 0)
                await ctx.tick()
            ctx.set(dut.data.valid, 1)
            ctx.set(dut.data.payload, byte)
            await ctx.tick().until(dut.data.ready)
        ctx.set(dut.data.valid, 0)
        await ctx.tick().repeat(12 * divisor)
        done.append(True)

    async def watch(ctx):
        async for _clk, _rst, line in ctx.tick().sample(dut.line):
            levels.append(line)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(produce)
    sim.add_testbench(watch, background=True)
    sim.run_until(1e-6 * (len(payload) * 10 * divisor * (1 + 4 * p_idle) + 20 * divisor + 100))
    assert done, "the transmitter did not take every byte"
    return levels


def random_bytes(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [0x00, 0xFF, 0x55, 0xAA] + [rng.randrange(256) for _ in range(n - 4)]


# -- tests ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("divisor", DIVISORS)
def test_loopback_back_to_back(divisor):
    """TX straight into RX, the source never idle: every byte arrives, none is lost or late."""
    payload = random_bytes(24, seed=divisor)
    m = Module()
    m.submodules.uart = uart = Uart(divisor)
    m.d.comb += uart.rx_line.eq(uart.tx_line)
    received, sent_at = [], []
    cycle_count = Signal(32)
    m.d.sync += cycle_count.eq(cycle_count + 1)

    async def produce(ctx):
        for byte in payload:
            ctx.set(uart.tx.valid, 1)
            ctx.set(uart.tx.payload, byte)
            await ctx.tick().until(uart.tx.ready)
            sent_at.append(ctx.get(cycle_count))
        ctx.set(uart.tx.valid, 0)


    async def consume(ctx):
        ctx.set(uart.rx.ready, 1)
        async for _clk, _rst, valid, byte in ctx.tick().sample(uart.rx.valid, uart.rx.payload):
            if valid:
                received.append(byte)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(produce)
    sim.add_testbench(consume, background=True)
    sim.run_until(1e-6 * (len(payload) + 2) * 10 * divisor)
    assert received == payload
    # Full rate: one byte taken every 10 bit periods exactly.
    assert [b - a for a, b in zip(sent_at, sent_at[1:])] == [10 * divisor] * (len(payload) - 1)


@pytest.mark.parametrize("divisor", DIVISORS)
def test_tx_waveform_with_backpressure(divisor):
    """The pin, decoded by the line model: right bytes, exact bit timing, idle high between."""
    payload = random_bytes(16, seed=100 + divisor)
    levels = run_tx(payload, divisor, p_idle=0.4, seed=divisor)
    decoded, starts = decode_line(levels, divisor)
    assert decoded == payload
    assert all(b - a >= 10 * divisor for a, b in zip(starts, starts[1:]))
    assert levels[-1] == 1


@pytest.mark.parametrize("divisor", [8, 12, 16, 35])
@pytest.mark.parametrize("mismatch", [-0.02, 0.02])
def test_rx_tolerates_baud_mismatch(divisor, mismatch):
    payload = random_bytes(20, seed=divisor)
    for phase in (0.0, 0.5, 0.9):
        levels = line_levels([frame_bits(b) for b in payload], divisor * (1 + mismatch),
                             phase=phase)
        assert run_rx(levels, divisor) == (payload, 0, 0), f"phase {phase}"


def test_rx_ignores_glitches():
    """One-clock spikes in the middle of the idle gaps and of every bit change nothing."""
    divisor, gap = 12, 1.5
    payload = random_bytes(12, seed=7)
    levels = line_levels([frame_bits(b) for b in payload], divisor, gap_bits=gap, phase=0.0)
    period = (10 + gap) * divisor
    spikes = []
    for i in range(len(payload)):
        start = 3 + i * period
        spikes += [int(start + (b + 0.5) * divisor) for b in range(10)]   # the votes' centers
        spikes.append(int(start + (10 + gap / 2) * divisor))              # the idle gap
    for t in spikes:
        levels[t] ^= 1
    assert run_rx(levels, divisor) == (payload, 0, 0)


def test_rx_counts_framing_errors_and_recovers():
    divisor = 8
    good = random_bytes(6, seed=9)
    frames = [frame_bits(b) for b in good[:3]]
    frames.append(frame_bits(0x5A, stop=0) + [1])    # a bad stop bit
    frames.append([0] * 30 + [1])                     # a break: one error, not three
    frames += [frame_bits(b) for b in good[3:]]       # one idle bit, then the next frames
    levels = line_levels(frames, divisor)
    received, framing, overruns = run_rx(levels, divisor)
    assert received == good
    assert (framing, overruns) == (2, 0)


def test_rx_resynchronizes_mid_frame():
    """The line starts in the middle of a frame; the receiver locks onto real frames after it."""
    divisor = 8
    payload = random_bytes(8, seed=11)
    levels = line_levels([frame_bits(b) for b in payload], divisor, idle_before=0)
    tail = [frame_bits(0xC3), frame_bits(0x3C)]
    received, _, _ = run_rx(levels[int(4.5 * divisor):] + [1] * 12 * divisor
                            + line_levels(tail, divisor), divisor)
    assert received[-2:] == [0xC3, 0x3C]


def test_rx_error_counter_wraps():
    divisor = 5
    frames = [frame_bits(0xFF, stop=0) + [1] * 3 for _ in range(6)] + [frame_bits(0x42)]
    received, framing, _ = run_rx(line_levels(frames, divisor), divisor, counter_width=2)
    assert received == [0x42]
    assert framing == 6 % 4


def test_rx_overrun_keeps_first_byte():
    """A byte arriving before the previous one is taken is dropped and counted."""
    divisor = 6
    payload = [0x11, 0x22, 0x33]
    levels = line_levels([frame_bits(b) for b in payload], divisor)
    last_stop = len(levels) - 2 * divisor - 4
    # The consumer sleeps until well after the second byte, then takes everything.
    received, framing, overruns = run_rx(levels + [1] * 8, divisor,
                                         ready_at=lambda cycle: cycle > last_stop)
    assert received == [0x11]
    assert (framing, overruns) == (0, 2)


def test_baud_divisor():
    assert baud_divisor(36e6, 3_000_000) == 12
    assert baud_divisor(12e6, 3_000_000) == 4
    with pytest.raises(BaudError, match="off"):
        baud_divisor(100e6, 3_000_000)
    with pytest.raises(BaudError, match="at least"):
        baud_divisor(8e6, 3_000_000)
