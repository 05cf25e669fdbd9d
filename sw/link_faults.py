"""Transports that damage what passes, for tests and demonstrations: random loss, duplication
and byte errors both ways (:class:`LossyTransport`), and a script of fuzzed host frames
(:class:`Fault`, :class:`FaultInjector`)."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from cobs import cobs

from hw.link.protocol import HostKind

from .link import Transport

__all__ = ["LossyTransport", "Fault", "FaultInjector"]


class LossyTransport:
    """Wraps a transport and damages what passes, both ways, at random: whole writes or reads
    lost or duplicated, bytes dropped, flipped or inserted. For tests and demonstrations."""

    def __init__(self, inner: Transport, rng: random.Random, *, p_lose: float = 0.02,
                 p_duplicate: float = 0.02, p_byte: float = 0.002, writes: bool = True,
                 reads: bool = True):
        self.inner, self.rng = inner, rng
        self.p_lose, self.p_duplicate, self.p_byte = p_lose, p_duplicate, p_byte
        self.writes, self.reads = writes, reads
        self.damaged = 0

    def _damage(self, data: bytes) -> bytes:
        rng = self.rng
        if data and rng.random() < self.p_lose:
            self.damaged += 1
            return b""
        if data and rng.random() < self.p_duplicate:
            self.damaged += 1
            data = data + data
        out = bytearray()
        for byte in data:
            r = rng.random()
            if r < self.p_byte:                       # dropped
                self.damaged += 1
                continue
            if r < 2 * self.p_byte:                   # flipped
                self.damaged += 1
                byte ^= 1 << rng.randrange(8)
            elif r < 3 * self.p_byte:                 # a byte of noise before it
                self.damaged += 1
                out.append(rng.randrange(256))
            out.append(byte)
        return bytes(out)

    def write(self, data: bytes) -> None:
        self.inner.write(self._damage(data) if self.writes else data)

    def read(self, n: int, timeout: float) -> bytes:
        data = self.inner.read(n, timeout)
        return self._damage(data) if data and self.reads else data


@dataclass(frozen=True)
class Fault:
    """One fuzzed frame, applied to the host's next write by :class:`FaultInjector`.

    ``kind``: ``garbage`` (send ``data``, then a delimiter, before the write), ``truncate``
    (the write cut after ``at`` bytes, delimited), ``corrupt`` (byte ``at`` xor ``data[0]``),
    ``drop`` (byte ``at`` removed), ``replay`` (a copy of an earlier DATA write, ``at`` back, sent
    before the write), ``lose`` (the write lost), ``none``.
    """
    kind: str
    at: int = 0
    data: bytes = b"\x01"


class FaultInjector:
    """Applies a script of :class:`Fault` s to the host's writes, one per write."""

    def __init__(self, inner: Transport, faults):
        self.inner = inner
        self.faults = deque(faults)
        self.applied: dict[str, int] = {}
        self._history: list[bytes] = []

    def write(self, data: bytes) -> None:
        data = bytes(data)
        fault = self.faults.popleft() if self.faults else Fault("none")
        if fault.kind != "none":
            self.applied[fault.kind] = self.applied.get(fault.kind, 0) + 1
        at = fault.at % max(1, len(data) - 1)   # never the delimiter itself
        if fault.kind == "garbage":
            self.inner.write(fault.data.replace(b"\x00", b"") + b"\x00")
        elif fault.kind == "replay" and self._history:
            self.inner.write(self._history[-1 - fault.at % len(self._history)])
        is_data = data and cobs.decode(data[:-1])[:1] == bytes([HostKind.DATA.value])
        if is_data:
            self._history = (self._history + [data])[-64:]
        if fault.kind == "truncate":
            data = data[:at] + b"\x00"
        elif fault.kind == "corrupt":
            data = data[:at] + bytes([data[at] ^ (fault.data[0] or 1)]) + data[at + 1:]
        elif fault.kind == "drop":
            data = data[:at] + data[at + 1:]
        elif fault.kind == "lose":
            data = b""
        if data:
            self.inner.write(data)

    def read(self, n: int, timeout: float) -> bytes:
        return self.inner.read(n, timeout)
