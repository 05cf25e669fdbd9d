"""The device API every kind of Rill device implements, and its errors.

:class:`Device` is what the compiler, the ONNX import and the CLI are written against; the link
(:mod:`sw.link`) and the transports build on it, and :mod:`sw.device` opens devices by URL. Kept
apart from :mod:`sw.device` so that the modules it opens devices with do not import it back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from hw import isa
from hw.isa import Opcode
from hw.params import RillParams

__all__ = ["Device", "DeviceError", "ParamsMismatch"]


class DeviceError(RuntimeError):
    """The device answered with an error status, or did not answer as the protocol requires."""

    def __init__(self, message: str, *, status: int | None = None, opcode: int | None = None):
        super().__init__(message)
        self.status, self.opcode = status, opcode


class ParamsMismatch(DeviceError):
    """The device's params differ from the ones the program was compiled for."""


class Device(ABC):
    """A connection to one Rill core. Use as a context manager.

    Subclasses implement :meth:`_exchange` (send command bytes, return exactly ``n`` response
    bytes; ``cuts`` are offsets where a framed link should end a frame, a hint) and
    :meth:`close`.
    """

    params: RillParams
    #: What a resident model has placed in the device's SRAMs (set by
    #: :meth:`sw.model_ir.QuantizedModel.run`); any command stream not marked as keeping it
    #: forgets it, since it may have overwritten those SRAMs.
    resident: object | None = None

    def __init__(self, params: RillParams):
        self.params = params

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):  # noqa: B027 - a device with nothing to release needs no override
        """Release the connection (the transport, a simulator process)."""

    @abstractmethod
    def _exchange(self, commands: bytes, response_bytes: int, cuts=()) -> bytes:
        """Send ``commands``; return exactly ``response_bytes`` response bytes."""

    def execute(self, commands: bytes, response_bytes: int, cuts=(), *,
                keeps_resident: bool = False) -> bytes:
        """Send a command stream and return its ``response_bytes`` response bytes. ``cuts``:
        offsets to end link frames at (:meth:`sw.program.Program.frame_cuts`), for speed.
        ``keeps_resident``: the stream leaves a resident model's SRAM contents alone."""
        if not keeps_resident:
            self.resident = None
        return self._exchange(commands, response_bytes, cuts)

    def read_info(self) -> RillParams:
        """The device's params (checked to speak this ISA); sets :attr:`program_tag` too."""
        response = self.execute(isa.encode(Opcode.INFO),
                                isa.RESPONSE_HEADER_BYTES + isa.INFO_BYTES, keeps_resident=True)
        if response[0] != isa.Status.OK.value:
            raise DeviceError(f"INFO failed with status {response[0]}", status=response[0])
        payload = response[isa.RESPONSE_HEADER_BYTES:]
        params, version = RillParams.from_info_bytes(payload)
        #: The tag of the last LOAD_PROGRAM (0 after the device's reset).
        self.program_tag = int.from_bytes(payload[-2:], "little")
        if version != isa.ISA_VERSION:
            raise ParamsMismatch(f"device speaks ISA v{version}, this driver v{isa.ISA_VERSION}")
        return params

    def check_params(self):
        """Refuse a device whose shape differs from the driver's params (call on connect)."""
        reported = self.read_info()
        if reported != self.params:
            raise ParamsMismatch(
                f"device reports {reported}, but the driver was set up for {self.params}; "
                f"rebuild the bitstream or pass matching --rows/--cols")

    def read_counters(self) -> dict[str, int]:
        response = self.execute(isa.encode(Opcode.READ_COUNTERS),
                                isa.RESPONSE_HEADER_BYTES + 4 * len(isa.COUNTER_NAMES),
                                keeps_resident=True)
        payload = response[isa.RESPONSE_HEADER_BYTES:]
        return {name: int.from_bytes(payload[4 * i:4 * i + 4], "little")
                for i, name in enumerate(isa.COUNTER_NAMES)}
