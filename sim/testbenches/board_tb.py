"""cocotb testbench for a board's gateware minus the PLL: UART pins in and out.

Not collected by pytest: ``tests/test_boards.py`` launches it through ``sim.runner`` on
``boards.board.SerialDevice`` clocked directly. A bit-level UART model drives ``rx_line`` with its
own bit clock (a little off the design's baud rate, and asynchronous to the design's clock, as an
FTDI chip's is) and decodes ``tx_line``.

The JSON file named by ``RILL_BOARD_TB`` gives the clock period, the clocks per bit, the model's
baud-rate error and the jobs: a program, its response's size, the golden model's response and
the offsets not compared (the ``stalls`` counter depends on the link's timing).

``board_over_link`` runs the real host driver, ``sw.link.LinkHost``, in a thread: its transport
hands bytes to the UART model through queues. ``noise_after`` bytes into the host's stream the
model drives ``noise_bits`` bit times of random levels onto the line instead, and the link must
recover. (One-clock glitches on the line are the UART receiver's unit test's,
``tests/test_uart.py``.)
"""

import json
import os
import queue
import random
import threading
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, Timer


class UartModel:
    """The host end of the line: 8N1 at ``bit_ns`` per bit."""

    def __init__(self, rx_pin, tx_pin, bit_ns: float):
        self.rx_pin = rx_pin      # the design's input: we drive it
        self.tx_pin = tx_pin      # the design's output: we decode it
        self.bit_ns = bit_ns
        self.received = bytearray()

    async def _hold(self, level: int, bits: float = 1.0):
        self.rx_pin.value = level
        await Timer(round(self.bit_ns * bits * 1000), unit="ps")

    async def noise(self, bits: int, rng: random.Random):
        """A break (the line low for a whole character: a framing error for sure), then random
        levels, each a random fraction of a bit long, then the line idle again."""
        await self._hold(0, 10)
        await self._hold(1, 2)
        end = bits
        while end > 0:
            length = rng.uniform(0.1, 1.5)
            await self._hold(rng.randrange(2), length)
            end -= length
        await self._hold(1, 12)

    async def send(self, data: bytes):
        for byte in data:
            await self._hold(0)
            for i in range(8):
                await self._hold((byte >> i) & 1)
            await self._hold(1)

    async def receive_forever(self):
        while True:
            await FallingEdge(self.tx_pin)
            await Timer(round(self.bit_ns * 500), unit="ps")     # to the middle of the start bit
            assert int(self.tx_pin.value) == 0, "a start bit shorter than half a bit on tx_line"
            byte = 0
            for i in range(8):
                await Timer(round(self.bit_ns * 1000), unit="ps")
                byte |= int(self.tx_pin.value) << i
            await Timer(round(self.bit_ns * 1000), unit="ps")
            assert int(self.tx_pin.value) == 1, f"bad stop bit after {byte:#04x} on tx_line"
            self.received.append(byte)

    async def receive_into(self, sink: "queue.Queue[int]"):
        seen = 0
        while True:
            await Timer(round(self.bit_ns * 1000), unit="ps")
            while seen < len(self.received):
                sink.put(self.received[seen])
                seen += 1


def compare(name: str, expected: bytes, received: bytes, ignore: set[int]):
    bad = [i for i in range(max(len(expected), len(received))) if i not in ignore
           and (i >= len(expected) or i >= len(received) or expected[i] != received[i])]
    assert not bad, (f"{name}: {len(bad)} byte(s) differ from the golden model, first at offset "
                     f"{bad[0]}: expected {expected[bad[0]:bad[0] + 8].hex()} "
                     f"got {received[bad[0]:bad[0] + 8].hex()}")


class ThreadTransport:
    """``sw.link.Transport`` for a host in another thread: queues to and from the UART model."""

    def __init__(self):
        self.to_device: queue.Queue[bytes] = queue.Queue()
        self.from_device: queue.Queue[int] = queue.Queue()

    def write(self, data: bytes) -> None:
        self.to_device.put(bytes(data))

    def read(self, n: int, timeout: float) -> bytes:
        try:
            out = bytearray([self.from_device.get(timeout=timeout)])
        except queue.Empty:
            return b""
        while len(out) < n:
            try:
                out.append(self.from_device.get_nowait())
            except queue.Empty:
                break
        return bytes(out)


@cocotb.test()
async def board_over_link(dut):
    from sw.link import LinkHost

    config = json.loads(Path(os.environ["RILL_BOARD_TB"]).read_text())
    clock_ns = config["clock_ns"]
    bit_ns = config["divisor"] * clock_ns * (1 + config.get("baud_error", 0.0))
    rng = random.Random(config.get("seed", 0))
    Clock(dut.clk, clock_ns, unit="ns").start()
    dut.rx_line.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 4)

    uart = UartModel(dut.rx_line, dut.tx_line, bit_ns)
    transport = ThreadTransport()
    cocotb.start_soon(uart.receive_forever())
    cocotb.start_soon(uart.receive_into(transport.from_device))

    results: dict = {}

    def host():
        try:
            link = LinkHost(transport, timeout=config.get("host_timeout", 2.0))
            results["responses"] = [link.exchange(Path(job["program"]).read_bytes(),
                                                  job["response_bytes"])
                                    for job in config["jobs"]]
            results["stats"] = link.stats
            results["ack_every"] = link.ack_every
        except BaseException as error:   # reported in the simulator's thread
            results["error"] = error

    thread = threading.Thread(target=host, daemon=True)
    thread.start()
    sent, noisy = 0, False
    deadline = time.monotonic() + config.get("wall_timeout", 300)
    while thread.is_alive():
        assert time.monotonic() < deadline, "the host did not finish in time"
        try:
            chunk = transport.to_device.get_nowait()
        except queue.Empty:
            await Timer(round(bit_ns * 1000), unit="ps")
            continue
        if not noisy and sent + len(chunk) > config["noise_after"]:
            cut = config["noise_after"] - sent
            await uart.send(chunk[:cut])
            await uart.noise(config["noise_bits"], rng)   # replaces the rest of this write
            noisy, sent = True, sent + len(chunk)
            continue
        await uart.send(chunk)
        sent += len(chunk)
    if "error" in results:
        raise results["error"]
    assert noisy, f"the host sent only {sent} bytes: no noise was injected"
    for job, got in zip(config["jobs"], results["responses"]):
        compare(job["name"], Path(job["expected"]).read_bytes(), got, set(job["ignore"]))
    stats = results["stats"]
    dut._log.info(f"link statistics: {stats}")
    if "link_buffer" in config:   # the host acknowledges at half the size it learned
        assert results["ack_every"] == config["link_buffer"] // 2, results["ack_every"]
    assert stats.retransmissions + stats.error_replies + stats.timeouts > 0, \
        f"the noise burst cost the link nothing: did it hit the line? {stats}"
    # The device counted the break and the frame the noise cut, and told the host.
    assert stats.device_line_errors >= 1 and stats.device_rejected_frames >= 1, stats
