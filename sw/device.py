"""Opening a Rill device by URL and running command streams on it.

The same :class:`Device` API fronts every kind of device: ``golden`` (the numpy model in this
process), ``sim`` (the RTL in Verilator behind a co-simulation bridge) and, with the host link,
``serial://`` and ``socket://`` boards. Compiler and CLI code is written against it only.
"""

from __future__ import annotations

from hw import isa
from hw.isa import Opcode
from hw.params import RillParams

__all__ = ["Device", "DeviceError", "ParamsMismatch", "open_device", "ask_params", "BOARD_URLS",
           "DEVICE_KINDS_GROUP", "device_kinds"]


class DeviceError(RuntimeError):
    """The device answered with an error status, or did not answer as the protocol requires."""

    def __init__(self, message: str, *, status: int | None = None, opcode: int | None = None):
        super().__init__(message)
        self.status, self.opcode = status, opcode


class ParamsMismatch(DeviceError):
    """The device's params differ from the ones the program was compiled for."""


class Device:
    """A connection to one Rill core. Use as a context manager.

    Subclasses implement :meth:`_exchange` (send command bytes, return exactly ``n`` response
    bytes; ``cuts`` are offsets where a framed link should end a frame, a hint) and
    :meth:`close`.
    """

    params: RillParams

    def __init__(self, params: RillParams):
        self.params = params

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        pass

    def _exchange(self, commands: bytes, response_bytes: int, cuts=()) -> bytes:
        raise NotImplementedError

    def execute(self, commands: bytes, response_bytes: int, cuts=()) -> bytes:
        """Send a command stream and return its ``response_bytes`` response bytes. ``cuts``:
        offsets to end link frames at (:meth:`sw.program.Program.frame_cuts`), for speed."""
        return self._exchange(commands, response_bytes, cuts)

    def read_info(self) -> RillParams:
        response = self.execute(isa.encode(Opcode.INFO), isa.RESPONSE_HEADER_BYTES + 16)
        if response[0] != isa.Status.OK.value:
            raise DeviceError(f"INFO failed with status {response[0]}", status=response[0])
        params, version = RillParams.from_info_bytes(response[isa.RESPONSE_HEADER_BYTES:])
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
                                isa.RESPONSE_HEADER_BYTES + 4 * len(isa.COUNTER_NAMES))
        payload = response[isa.RESPONSE_HEADER_BYTES:]
        return {name: int.from_bytes(payload[4 * i:4 * i + 4], "little")
                for i, name in enumerate(isa.COUNTER_NAMES)}


class GoldenDevice(Device):
    """The golden model in this process."""

    def __init__(self, params: RillParams):
        super().__init__(params)
        from .golden import GoldenCore
        self.core = GoldenCore(params)
        self._pending = b""

    def _exchange(self, commands, response_bytes, cuts=()):
        out = self._pending + self.core.feed(commands)
        if len(out) < response_bytes:
            raise DeviceError(f"device sent {len(out)} of {response_bytes} expected bytes")
        self._pending = out[response_bytes:]
        return out[:response_bytes]


#: Device URLs that reach a board (or anything serving the link), rather than a model.
BOARD_URLS = ("serial://", "socket://")


def _link_device(url: str, params: RillParams) -> Device:
    from .link import LinkedDevice
    from .transport import open_transport
    transport = open_transport(url)
    try:
        return LinkedDevice(params, transport)
    except BaseException:
        transport.close()
        raise


def ask_params(url: str) -> RillParams:
    """A board's params, as it reports them (``INFO``): its array, SRAM depths, requantizer."""
    with _link_device(url, RillParams()) as device:
        return device.read_info()


#: The entry-point group in which packages register device kinds: ``name = "module:factory"``,
#: ``factory(params, **options)`` returning an open :class:`Device`. Rill's simulator registers
#: ``sim`` and ``sim+cocotb`` there (``pyproject.toml``), so this module never imports it.
DEVICE_KINDS_GROUP = "rill.devices"


def device_kinds() -> dict[str, object]:
    """The registered device kinds, by name (entry points of :data:`DEVICE_KINDS_GROUP`)."""
    from importlib.metadata import entry_points
    return {point.name: point for point in entry_points(group=DEVICE_KINDS_GROUP)}


def open_device(url: str = "sim", params: RillParams | None = None, **options) -> Device:
    """Open a device and check that its params match ``params`` (default :class:`RillParams`).

    ``golden``: the numpy model behind the link protocol's device half, in this process;
    ``sim``: the core and link RTL in Verilator, clocked by a C++ harness (started here, stopped on
    close); ``sim+cocotb``: the same RTL under cocotb; ``serial:///dev/ttyUSB1?baud=3000000``: a
    board's UART; ``socket://HOST:PORT``: a device served over TCP. Every one of them speaks the
    same framed link protocol. ``options`` go to a registered kind's factory (the ``sim``
    device's ``trace``, ``trace_cycles``); the other devices take none.
    """
    params = params or RillParams()
    kinds = device_kinds()
    if url in kinds:
        device = kinds[url].load()(params, **options)
    elif options:
        raise DeviceError(f"the {url} device takes no options ({', '.join(sorted(options))}); "
                          f"waveforms come from the simulated device (--device sim)")
    elif url == "golden":
        from .link_model import golden_link_device
        device = golden_link_device(params)
    elif url.startswith(BOARD_URLS):
        device = _link_device(url, params)
    elif url.startswith("sim"):
        raise DeviceError(f"device {url!r} is not installed here (registered kinds: "
                          f"{', '.join(sorted(kinds)) or 'none'}); install Rill with its "
                          "simulator: bash scripts/setup.sh")
    else:
        raise DeviceError(f"unknown device URL {url!r}: use golden, sim, sim+cocotb, "
                          "serial:///dev/ttyUSB1?baud=3000000 or socket://HOST:PORT")
    try:
        device.check_params()
    except BaseException:
        device.close()
        raise
    return device
