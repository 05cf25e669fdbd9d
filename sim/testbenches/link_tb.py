"""cocotb testbench for ``LinkedCore``: the real :class:`~sw.link.LinkHost` drives the RTL.

Not collected by pytest: ``tests/test_link_rtl.py`` launches it through ``sim.runner``, one cocotb
test per simulator run (the SRAMs must start from zero, as the golden model does). The host code
runs in a thread started with ``cocotb.task.bridge``; :class:`SimTransport` is its byte pipe: a
write queues bytes for ``rx``, a read runs the clock (``cocotb.task.resume``) until ``tx`` has
produced a byte or the line has been idle for the read's timeout, converted to cycles. Simulated
time stands still while the host computes, as a real host's time does not matter to the device.

Configuration: JSON in ``RILL_LINK_TB``: ``params`` (``RillParams`` fields), ``seed``, ``report``
(a JSON file the test writes its numbers to) and per-test settings (see each test).
"""

import json
import os
import random
from pathlib import Path

import cocotb
from cocotb.task import bridge, resume
from cocotb.triggers import ReadOnly, RisingEdge, Timer

from hw.params import RillParams
from sim.link_cases import random_programs_through
from sim.testbenches.common import CLOCK_NS, InputWriter, cycles_until_rise, reset_wire

CONFIG = json.loads(os.environ.get("RILL_LINK_TB", "{}"))
#: Simulated cycles per second of host timeout (the host's timeouts are in seconds).
CYCLES_PER_SECOND = 1_000_000
#: A read returns once the device has sent nothing for this many cycles (or ``n`` bytes came);
#: longer than the pauses inside a device frame (its encoder works in blocks), so a read is a frame.
BURST_QUIET_CYCLES = 64
#: ... and at most this many cycles after its first byte (a serial port's latency timer).
READ_WINDOW_CYCLES = 4096


class SimTransport:
    """The DUT's ``rx``/``tx`` streams as a :class:`~sw.link.Transport`, for a bridged thread.

    ``rx_gap`` idle cycles follow every byte into ``rx`` (a UART's pace: 10 bit times per byte);
    ``tx_gap`` > 0 makes ``tx.ready`` a slot every ``tx_gap + 1`` cycles (the same pace the
    other way, at a byte's granularity);
    ``p_tx_busy`` is the probability that ``tx.ready`` is low in a cycle. Stretches in which both
    directions are waiting out a gap are simulated in one step, without Python in every cycle.
    """

    def __init__(self, dut, rng: random.Random, *, rx_gap: int = 0, tx_gap: int = 0,
                 p_tx_busy: float = 0.0):
        self.dut, self.rng = dut, rng
        self.rx_gap, self.tx_gap, self.p_tx_busy = rx_gap, tx_gap, p_tx_busy
        self.to_dut = bytearray()
        self.from_dut = bytearray()
        self.cycles = 0
        self._offering = False
        self._gap = 0
        self._tx_wait = 0
        # Handles looked up once, and the inputs' last values: a write only when one changes
        # (the per-cycle Python is what these tests spend their time in).
        self._rx_valid, self._rx_payload = dut.rx__valid, dut.rx__payload
        self._rx_ready, self._tx_ready = dut.rx__ready, dut.tx__ready
        self._tx_valid, self._tx_payload = dut.tx__valid, dut.tx__payload
        self._drive = InputWriter()
        self._tx_was_valid = False

    def write(self, data: bytes) -> None:
        self.to_dut += data

    def read(self, n: int, timeout: float) -> bytes:
        return resume(self._read)(n, max(1, int(timeout * CYCLES_PER_SECOND)))

    async def _read(self, n: int, idle_budget: int) -> bytes:
        idle = 0
        while not self.from_dut and idle < idle_budget:
            if self._quiet():
                idle += await self._wait_for_tx(idle_budget - idle)
            sending = bool(self.to_dut)
            cycles = await self._cycle()
            if not sending:
                idle += cycles
        # Then take the rest of the burst, as an OS read after a serial port's latency timer
        # returns what arrived together (so damage applies per burst, not per byte), but no
        # longer than the latency window: the host answers while a long frame still arrives.
        quiet = window = 0
        quiet_limit = max(BURST_QUIET_CYCLES, 2 * self.tx_gap)
        while (self.from_dut and len(self.from_dut) < n and window < READ_WINDOW_CYCLES
               and quiet < quiet_limit):
            before = len(self.from_dut)
            cycles = 0
            if self._quiet():
                cycles = await self._wait_for_tx(min(quiet_limit - quiet,
                                                     READ_WINDOW_CYCLES - window))
            cycles += await self._cycle()
            window += cycles
            quiet = 0 if len(self.from_dut) > before else quiet + cycles
        data = bytes(self.from_dut[:n])
        del self.from_dut[:n]
        return data

    def _quiet(self) -> bool:
        """Nothing to send, and the device sent nothing in the last cycle: :meth:`_wait_for_tx`
        may sleep (while the device streams, it would stall every byte)."""
        return not self.to_dut and not self._offering and not self._tx_was_valid

    async def _wait_for_tx(self, budget: int) -> int:
        """With nothing to send and nothing received, hold ``tx.ready`` low and sleep until
        ``tx.valid`` rises or ``budget`` cycles pass: one timer, not a Python wake-up per cycle,
        for the host's timeouts (the fuzz test's lost frames spent half its cycles in them) and a
        read's quiet end. Returns the cycles passed; the device's byte, if one came, transfers
        in the :meth:`_cycle` that follows, after a stall the stream allows."""
        await RisingEdge(self.dut.clk)
        self._drive(self._rx_valid, 0)
        self._drive(self._tx_ready, 0)
        await ReadOnly()
        cycles = 1   # the edge above, and those passed asleep
        if not self._tx_valid.value and budget > 1:
            cycles += await cycles_until_rise([self._tx_valid], budget)
        self.cycles += cycles
        return cycles

    async def _cycle(self) -> int:
        """Run one cycle, or a stretch in which neither direction can move; returns how many."""
        dut = self.dut
        rx_wait = self._gap if (self.to_dut and not self._offering) else (
            0 if self._offering else 1 << 30)
        skip = min(rx_wait, self._tx_wait) - 1
        if skip > 0:
            await RisingEdge(dut.clk)   # out of the last cycle's read-only phase
            self._drive(self._rx_valid, 0)
            self._drive(self._tx_ready, 0)
            # One timer instead of a Python wake-up per cycle; it ends half a clock before the
            # edge that the normal cycle below waits for, so exactly ``skip`` cycles pass.
            await Timer(skip * CLOCK_NS - CLOCK_NS // 2, unit="ns")
            self.cycles += skip
            self._gap = max(0, self._gap - skip) if self.to_dut else self._gap
            self._tx_wait -= skip
        await RisingEdge(dut.clk)
        self.cycles += 1
        if not self._offering and self.to_dut:
            if self._gap:
                self._gap -= 1
            else:
                self._offering = True
        self._drive(self._rx_valid, int(self._offering))
        if self._offering:
            self._drive(self._rx_payload, self.to_dut[0])
        if self._tx_wait:
            self._tx_wait -= 1
            tx_ready = False
        else:
            tx_ready = self.p_tx_busy == 0 or self.rng.random() >= self.p_tx_busy
            self._tx_wait = self.tx_gap
        self._drive(self._tx_ready, int(tx_ready))
        await ReadOnly()
        if self._offering and self._rx_ready.value:
            del self.to_dut[0]
            self._offering = False
            self._gap = self.rx_gap
        self._tx_was_valid = bool(self._tx_valid.value)
        if tx_ready and self._tx_was_valid:
            self.from_dut.append(int(self._tx_payload.value))
        return max(skip, 0) + 1


# -- harness ------------------------------------------------------------------------------------

def params_from_config() -> RillParams:
    return RillParams(**CONFIG.get("params", {}))


def write_report(**numbers):
    if "report" in CONFIG:
        Path(CONFIG["report"]).write_text(json.dumps(numbers, indent=1))


def host_options() -> dict:
    return {"timeout": CONFIG.get("timeout", 0.002), "retries": CONFIG.get("retries", 12),
            "ack_every": CONFIG["ack_every"]}


# -- tests --------------------------------------------------------------------------------------

@cocotb.test()
async def end_to_end(dut):
    """Random programs through the host, optionally over a lossy pipe; byte-exact vs golden
    (:func:`sim.link_cases.random_programs_through`). Settings: ``programs``, ``rx_gap``,
    ``p_tx_busy``, ``lossy`` (LossyTransport keywords or null)."""
    await reset_wire(dut)
    params = params_from_config()
    sim = SimTransport(dut, random.Random(CONFIG.get("seed", 1)), rx_gap=CONFIG.get("rx_gap", 0),
                       p_tx_busy=CONFIG.get("p_tx_busy", 0.0))

    def body():
        return random_programs_through(sim, params, seed_value=CONFIG.get("seed", 1),
                                       programs=CONFIG.get("programs", 6),
                                       lossy=CONFIG.get("lossy"), **host_options())

    stats, damaged = await bridge(body)()
    write_report(cycles=sim.cycles, damaged=damaged, **vars(stats))
