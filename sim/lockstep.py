"""Programs on the core and link RTL over a UART-paced link, timed in simulated cycles.

``run_paced`` is how ``python -m sw bench`` measures end-to-end throughput: the host driver
(:class:`sw.link.LinkHost`) talks to the C++ harness in lockstep mode (``sim/harness/lockstep.h``),
where simulated time moves only while the host reads, so the figures depend on the program and the
wire's pace alone, never on how fast this machine runs the host. The wire carries at most one byte
each way every ``cycles_per_byte`` cycles, as a UART does (a 3 Mbaud UART at 36 MHz: 10 bits x 12
cycles = 120). Every response is checked against the golden model byte for byte.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

from hw.link.protocol import RSP_BUFFER_BYTES
from hw.params import RillParams
from sw.golden import GoldenCore
from sw.link import LinkHost
from sw.program import Program

from .harness import SimSpeed, harness_binary
from .link_cases import assert_same, golden_answer
from .served import ServedProcess

__all__ = ["LockstepTransport", "run_paced", "CYCLES_PER_SECOND"]

#: Simulated cycles per second of the host's timeouts (the host's timeouts are in seconds).
CYCLES_PER_SECOND = 1_000_000


class LockstepTransport:
    """A :class:`~sw.link.Transport` to a harness in lockstep mode: ``cycles`` is the simulated
    time so far. Use as a context manager; closing ends the harness."""

    def __init__(self, params: RillParams, *, rx_gap: int = 0, tx_gap: int = 0,
                 link_options: dict | None = None):
        binary = harness_binary(params, link_options=link_options)
        self._server = ServedProcess([str(binary), "--lockstep", "--port-file", "{port_file}"])
        try:
            self._socket = socket.create_connection(("127.0.0.1", self._server.port))
        except BaseException:
            self._server.stop()
            raise
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pace(rx_gap, tx_gap)
        self.cycles = 0
        self.speed: SimSpeed | None = None

    def pace(self, rx_gap: int, tx_gap: int) -> None:
        """From now on, cycles between bytes each way (bytes the wire holds are dropped: call it
        between exchanges; the link recovers a lost frame)."""
        self._socket.sendall(struct.pack("<cII", b"P", rx_gap, tx_gap))

    def write(self, data: bytes) -> None:
        self._socket.sendall(struct.pack("<cI", b"W", len(data)) + bytes(data))

    def read(self, n: int, timeout: float) -> bytes:
        budget = max(1, int(timeout * CYCLES_PER_SECOND))
        self._socket.sendall(struct.pack("<cIQ", b"R", n, budget))
        self.cycles, length = struct.unpack("<QI", self._receive(12))
        return self._receive(length)

    def _receive(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self._socket.recv(n - len(data))
            if not chunk:
                raise RuntimeError("the harness closed the connection")
            data += chunk
        return bytes(data)

    def close(self) -> None:
        self._socket.close()
        self._server.stop()
        self.speed = self._server.speed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_paced(params: RillParams, jobs: list[tuple[str, Program]], cycles_per_byte: int, *,
              on_speed: Callable[[SimSpeed], None] | None = None,
              paced_from: int = 0) -> list[dict]:
    """Run ``jobs`` in order on one device, the wire paced from job ``paced_from`` on (the ones
    before set the device up at full speed: loading a model's weights over a paced wire would
    take most of the run). Per job: ``cycles`` (first byte sent to last response byte
    received), ``response`` (hex), ``wire_bytes_sent``/``wire_bytes_received`` and the rest of
    :class:`sw.link.LinkStats`, as deltas. ``on_speed`` is given the simulator's speed over the
    whole run."""
    golden = GoldenCore(params)
    gap = cycles_per_byte - 1
    results = []
    with LockstepTransport(params, rx_gap=0 if paced_from else gap,
                           tx_gap=0 if paced_from else gap) as wire:
        # Timeouts in the host's seconds at CYCLES_PER_SECOND: longer than any MATMUL here, so a
        # long computation is not mistaken for a lost frame.
        host = LinkHost(wire, timeout=0.2, retries=12, ack_every=RSP_BUFFER_BYTES // 2)
        for index, (name, program) in enumerate(jobs):
            if index == paced_from and paced_from:
                wire.pace(gap, gap)
            expected, ignore = golden_answer(golden, program)
            start, before = wire.cycles, dict(vars(host.stats))
            got = host.exchange(program.to_bytes(), len(expected), program.frame_cuts())
            assert_same(name, got, expected, ignore)
            stats = vars(host.stats)
            results.append({"name": name, "cycles": wire.cycles - start, "response": got.hex(),
                            **{k: stats[k] - before[k] for k in stats}})
    if on_speed is not None and wire.speed is not None:
        on_speed(wire.speed)
    return results
