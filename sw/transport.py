"""Byte transports for the link: a serial port or a TCP socket, through pyserial.

``serial:///dev/ttyUSB1?baud=3000000`` opens a board's UART; ``socket://HOST:PORT`` a TCP
connection (pyserial's ``socket://`` handler), which is also how the ``sim`` device's co-simulation
bridge is reached. A :class:`~sw.link.LinkHost` needs only ``write`` and ``read(n, timeout)``.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import serial

from .device_base import DeviceError

__all__ = ["SerialTransport", "open_transport", "DEFAULT_BAUD"]

#: The iCEBreaker's FT2232H and the ULX3S's FT231X both run 3 Mbaud.
DEFAULT_BAUD = 3_000_000


class SerialTransport:
    """A pyserial port (any of its URL handlers) as a link transport."""

    def __init__(self, port: serial.SerialBase):
        self.port = port

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def read(self, n: int, timeout: float) -> bytes:
        """Wait up to ``timeout`` seconds for a first byte, then return it with whatever else has
        arrived (up to ``n`` bytes) without waiting further."""
        self.port.timeout = timeout
        first = self.port.read(1)
        if not first or n == 1:
            return first
        self.port.timeout = 0
        return first + self.port.read(n - 1)

    def close(self) -> None:
        self.port.close()


def open_transport(url: str) -> SerialTransport:
    """``serial://PATH[?baud=N]`` or ``socket://HOST:PORT``; raises :class:`DeviceError` with what
    to check when the port cannot be opened."""
    parts = urlsplit(url)
    try:
        if parts.scheme == "serial":
            query = parse_qs(parts.query)
            unknown = set(query) - {"baud"}
            if unknown:
                raise DeviceError(f"{url}: unknown option(s) {', '.join(sorted(unknown))}; "
                                  f"the one option is baud=N")
            try:
                baud = int(query.get("baud", [DEFAULT_BAUD])[0])
            except ValueError:
                raise DeviceError(f"{url}: baud must be an integer") from None
            if not parts.path:
                raise DeviceError(f"{url}: no port; write serial:///dev/ttyUSB1?baud=3000000")
            return SerialTransport(serial.Serial(parts.path, baudrate=baud, timeout=0))
        if parts.scheme == "socket":
            if not parts.hostname or not parts.port:
                raise DeviceError(f"{url}: write socket://HOST:PORT")
            return SerialTransport(serial.serial_for_url(url, timeout=0))
    except serial.SerialException as error:
        raise DeviceError(f"cannot open {url}: {error}; check the cable, the port name and that "
                          f"nothing else holds the port") from None
    raise DeviceError(f"{url}: not a serial:// or socket:// URL")
