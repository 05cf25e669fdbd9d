"""Both ends of the core's byte streams, one cycle at a time, for any simulator.

:class:`ByteExchange` decides what the testbench drives each cycle: the command bytes offered on
``cmd`` (with random idle cycles, and pauses after chosen bytes) and ``ready`` on ``rsp`` (with
random backpressure); it then takes what the core did in that cycle. The Amaranth simulator's
testbench (``tests/test_core_amaranth.py``) and the cocotb one (:mod:`sim.testbenches.core_tb`)
only move these values to and from their signals. It imports no simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["ByteExchange"]


@dataclass
class ByteExchange:
    """Stream ``program`` in and collect ``response_bytes`` bytes out.

    ``chance`` draws a float in ``[0, 1)`` (``numpy.random.Generator.random``,
    ``random.Random.random``); an idle input cycle happens with probability ``idle_in``, a
    not-ready output cycle with ``busy_out``. The command stream goes quiet for ``pause_cycles``
    after each byte offset in ``pauses`` (the offset just past a byte).
    """

    program: bytes
    response_bytes: int
    chance: Callable[[], float]
    idle_in: float = 0.0
    busy_out: float = 0.0
    pauses: frozenset[int] = frozenset()
    pause_cycles: int = 0
    sent: int = 0
    received: bytearray = field(default_factory=bytearray)
    offering: bool = False
    taking: bool = False
    _quiet: int = 0

    def drive(self) -> tuple[int, int, int]:
        """This cycle's ``(cmd.valid, cmd.payload, rsp.ready)``. An offered byte stays offered
        until it is taken (a producer never withdraws ``valid``)."""
        self._quiet = max(0, self._quiet - 1)
        if (not self.offering and self.sent < len(self.program) and not self._quiet
                and self.chance() >= self.idle_in):
            self.offering = True
        self.taking = self.chance() >= self.busy_out
        payload = self.program[self.sent] if self.offering else 0
        return int(self.offering), payload, int(self.taking)

    def sample(self, cmd_ready: int, rsp_valid: int, rsp_payload: Callable[[], int]) -> None:
        """What the core did with this cycle's values, read before the clock edge that ends it;
        ``rsp_payload`` is read only when a byte is transferred."""
        if self.offering and cmd_ready:
            self.sent, self.offering = self.sent + 1, False
            self._quiet = self.pause_cycles if self.sent in self.pauses else 0
        if self.taking and rsp_valid:
            self.received.append(int(rsp_payload()))

    @property
    def done(self) -> bool:
        return self.sent == len(self.program) and len(self.received) >= self.response_bytes

    def hung(self, cycles: int) -> str:
        return (f"hung: sent {self.sent}/{len(self.program)} bytes, received "
                f"{len(self.received)}/{self.response_bytes} after {cycles} cycles")
