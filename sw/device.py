"""Opening a Rill device by URL and running command streams on it.

The same :class:`Device` API fronts every kind of device: ``golden`` (the numpy model in this
process), ``sim`` (the RTL in Verilator behind a co-simulation bridge) and, with the host link,
``serial://`` and ``socket://`` boards. Compiler and CLI code is written against it only.
"""

from __future__ import annotations

from hw.params import RillParams

from .device_base import Device, DeviceError, ParamsMismatch

__all__ = ["Device", "DeviceError", "ParamsMismatch", "open_device", "ask_params", "BOARD_URLS",
           "DEVICE_KINDS_GROUP", "device_kinds"]


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


def open_device(url: str = "sim", params: RillParams | None = None, *, check: bool = True,
                **options) -> Device:
    """Open a device and check that its params match ``params`` (default :class:`RillParams`;
    ``check=False`` leaves the check to the caller, as the bring-up self-test does).

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
    if not check:
        return device
    try:
        device.check_params()
    except BaseException:
        device.close()
        raise
    return device
