"""The host's half of the link, and a :class:`~sw.device.Device` that talks through it.

:class:`LinkHost` turns ``exchange(commands, response_bytes)`` into DATA frames over any byte
transport (a serial port, a socket, a simulation), paced by the device's credits, retried on
timeouts and error replies, and never applied twice (the device drops repeated sequence numbers).
The device's half in Python is :mod:`sw.link_model`; transports that damage what passes, for
tests, are in :mod:`sw.link_faults`. The protocol is described in :mod:`hw.link`; every constant
comes from :mod:`hw.link.protocol`.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from cobs import cobs

from hw.link.protocol import (
    ERROR_STATUSES,
    LINE_ERROR_BITS,
    MAX_DEVICE_FRAME,
    MAX_HOST_FRAME,
    MAX_PAYLOAD,
    REJECTED_FRAME_BITS,
    RSP_BUFFER_BYTES,
    SEQ_MODULUS,
    DeviceFrame,
    DeviceKind,
    HostFrame,
    HostKind,
    LinkStatus,
    offset_delta,
    pack_host_frame,
    parse_device_frame,
)
from hw.params import RillParams

from .device_base import Device, DeviceError

__all__ = [
    "LinkError", "LinkTimeout", "LinkStalled", "Transport", "LinkStats", "LinkHost",
    "LinkedDevice", "encode_frame", "frames_in", "MAX_WIRE",
]


class LinkError(DeviceError):
    """The link could not deliver: the device is silent, or keeps refusing what we send."""


class LinkTimeout(LinkError):
    """No valid frame came back within the retries."""


class LinkStalled(LinkError):
    """The device answers but refuses to take our frames."""


class Transport(Protocol):
    """A byte pipe. ``read`` returns at least one byte, or ``b""`` once ``timeout`` seconds
    passed with nothing to read."""

    def write(self, data: bytes) -> None: ...

    def read(self, n: int, timeout: float) -> bytes: ...


def encode_frame(frame: bytes) -> bytes:
    """A sealed frame as it goes on the wire: COBS, then the 0x00 delimiter."""
    return cobs.encode(frame) + b"\x00"


#: An encoded frame is at most one byte per 254 longer, plus the delimiter.
MAX_WIRE = {name: size + size // 254 + 2 for name, size in
             (("host", MAX_HOST_FRAME), ("device", MAX_DEVICE_FRAME))}
#: Rewinds in a row without progress before the host gives up on a device that keeps refusing.
_FUTILE_REWINDS = 32
#: A frame ends at a cut (:meth:`LinkHost.exchange`) only this far in or more: cuts cost framing.
_MIN_CUT = 256


def frames_in(buffer: bytearray, limit: int):
    """Pop the delimited chunks in ``buffer``; yields each chunk's decoded bytes, or None when it
    is not valid COBS (or longer than any frame)."""
    while True:
        end = buffer.find(0)
        if end < 0:
            if len(buffer) > limit:        # no delimiter for too long: garbage
                del buffer[:]
                yield None
            return
        chunk = bytes(buffer[:end])
        del buffer[:end + 1]
        if not chunk:
            continue
        if len(chunk) > limit:
            yield None
            continue
        try:
            yield cobs.decode(chunk)
        except cobs.DecodeError:
            yield None


@dataclass
class LinkStats:
    """What one :class:`LinkHost` sent and received: for link efficiency and fault counts."""
    frames_sent: int = 0
    data_frames_sent: int = 0
    retransmissions: int = 0
    command_bytes: int = 0          #: payload bytes, counted once per frame
    wire_bytes_sent: int = 0
    frames_received: int = 0
    bad_frames_received: int = 0
    response_bytes: int = 0         #: new response bytes, in order
    wire_bytes_received: int = 0
    timeouts: int = 0
    error_replies: int = 0
    rewinds: int = 0
    resend_requests: int = 0
    #: What the device's receiver threw away while this host listened, from the rolling counts
    #: in its frames (``hw.link.protocol.LINE_ERROR_BITS``): UART framing errors, and host frames
    #: it refused for a bad CRC or broken framing.
    device_line_errors: int = 0
    device_rejected_frames: int = 0


@dataclass
class _Pending:
    seq: int
    payload: bytes


class LinkHost:
    """The host end of a link.

    Parameters
    ----------
    transport : Transport
        Any byte pipe (``write``, ``read(n, timeout)``).
    timeout : float
        Seconds without a byte from the device before the host retries.
    retries : int
        Timeouts in a row before :class:`LinkTimeout`.
    window : int
        DATA frames in flight at most (besides the credit limit).
    sync : bool
        Connect at once (``SYNC``): learn the device's sequence number and response offset,
        dropping response bytes an earlier connection left unread.
    ack_every : int, optional
        Acknowledge responses (with a POLL when there is nothing else to send) at least every
        this many bytes, so the device's response ring drains before it fills: at most half
        the ring. By default half the command buffer the device reported (the credit of its
        SYNC reply): a device's ring is as large as its command buffer (``hw/link``).
    """

    def __init__(self, transport: Transport, *, timeout: float = 0.5, retries: int = 8,
                 window: int = 16, sync: bool = True, ack_every: int | None = None):
        if not 1 <= window < SEQ_MODULUS // 4:
            raise ValueError(f"window must be between 1 and {SEQ_MODULUS // 4 - 1}")
        self.transport = transport
        self.timeout, self.retries, self.window = timeout, retries, window
        self._ack_every = ack_every
        self.stats = LinkStats()
        self._wire_in = bytearray()
        self._tag = 0                  # tag of the next transmission
        self._last_store = 0           # the current exchange's last STORE end (exchange)
        self._base = 0                 # the device's next_seq as far as we know
        self._next_seq = 0
        self._pending: deque[_Pending] = deque()   # unacknowledged, seq base, base + 1, ...
        self._resend_from = 0          # _pending[_resend_from:] must go out again
        self._credit = 0
        self._largest_credit = 0       # the command buffer's size, as far as we have seen
        self._held = bytearray()       # response bytes received, not yet returned
        self._received = 0             # response stream offset after _held (unbounded)
        self._acked = 0                # the last rack we sent
        self._data_rewind_tag: int | None = None
        self._rsp_rewind_tag: int | None = None
        self._device_counts: tuple[int, int] | None = None   # as the last device frame said
        if sync:
            self.sync()

    # -- public ---------------------------------------------------------------------------------

    @property
    def ack_every(self) -> int:
        if self._ack_every is not None:
            return self._ack_every
        return max(1, (self._largest_credit or RSP_BUFFER_BYTES) // 2)

    def sync(self) -> None:
        """Connect (``SYNC``); raises :class:`LinkTimeout` when the device does not answer."""
        for _ in range(self.retries + 1):
            tag = self._send(HostKind.SYNC)
            while (frame := self._receive()) is not None:
                if (frame.kind == DeviceKind.REPLY.value and frame.tag == tag
                        and frame.status == LinkStatus.OK.value):
                    self._base = self._next_seq = frame.next_seq
                    self._pending.clear()
                    self._resend_from = 0
                    self._credit = frame.credit
                    self._largest_credit = max(self._largest_credit, frame.credit)
                    self._held.clear()
                    self._received = self._acked = frame.roff
                    self._take_responses(frame)
                    return
            self.stats.timeouts += 1
        raise self._timeout_error()

    def exchange(self, commands: bytes, response_bytes: int, cuts=()) -> bytes:
        """Deliver ``commands`` (each byte exactly once) and return the next ``response_bytes``
        bytes of the core's response stream (later ones are kept for the next call). ``cuts``:
        offsets where ending a frame lets the device start on its outputs sooner (it runs a frame
        only once all of it has arrived); see :meth:`_frame_size`."""
        commands = bytes(commands)
        # The last STORE's end: a last frame holding it is answered by its outputs.
        self._last_store = max(cuts, default=0)
        cuts = sorted(c for c in cuts if 0 < c < len(commands))
        cursor = silent = futile = 0
        while True:
            cursor = self._pump(commands, cursor, cuts)
            delivered = cursor == len(commands) and not self._pending
            if delivered and len(self._held) >= response_bytes:
                break
            if self._received - self._acked >= self.ack_every and not self._resendable():
                self._send(HostKind.POLL)
            frame = self._receive()
            if frame is None:
                silent += 1
                self.stats.timeouts += 1
                if silent > self.retries:
                    raise self._timeout_error()
                self._rewind_after_timeout()
                continue
            silent = 0
            progress, rewound = self._absorb(frame)
            futile = 0 if progress else futile + rewound
            if futile > _FUTILE_REWINDS:
                raise LinkStalled(f"the device answered {futile} retransmissions in a row "
                                  f"without taking a frame (last status "
                                  f"{LinkStatus(frame.status).name}); reset it and reconnect")
            delivered = cursor == len(commands) and not self._pending
            if (delivered and frame.idle and frame.next_seq == self._base
                    and offset_delta(frame.roff + len(frame.payload), self._received) == 0
                    and len(self._held) < response_bytes):
                raise DeviceError(f"the device ran every command and sent {len(self._held)} of "
                                  f"the {response_bytes} response bytes expected; the command "
                                  f"stream asks for fewer responses than the caller expects")
        result = bytes(self._held[:response_bytes])
        del self._held[:response_bytes]
        return result

    # -- sending ------------------------------------------------------------------------------

    def _send(self, kind: HostKind, seq: int = 0, payload: bytes = b"") -> int:
        tag = self._tag
        self._tag = (self._tag + 1) % SEQ_MODULUS
        wire = encode_frame(pack_host_frame(HostFrame(kind.value, seq, tag, self._received,
                                                      payload)))
        self._acked = self._received
        self.transport.write(wire)
        self.stats.frames_sent += 1
        self.stats.wire_bytes_sent += len(wire)
        return tag

    def _resendable(self) -> bool:
        return self._resend_from < len(self._pending)

    def _pump(self, commands: bytes, cursor: int, cuts: list[int]) -> int:
        """Send what may be sent: retransmissions first (their bytes are already counted against
        the credit), then new frames while the credit and the window allow."""
        while self._resendable():
            frame = self._pending[self._resend_from]
            last = self._resend_from == len(self._pending) - 1 and cursor == len(commands)
            self._send(self._data_kind(last), frame.seq, frame.payload)
            self.stats.data_frames_sent += 1
            self.stats.retransmissions += 1
            self._resend_from += 1
        in_flight = sum(len(p.payload) for p in self._pending)
        while cursor < len(commands) and len(self._pending) < self.window:
            room = self._credit - in_flight
            want = min(MAX_PAYLOAD, len(commands) - cursor)
            # Short of credit, send a shorter frame only when the room is worth it; else wait
            # for the credit news that is sure to come (the device sends it once half its buffer
            # is free that we do not know of, and our room is then under half the buffer).
            if room < want and room < max(1, min(MAX_PAYLOAD, self._largest_credit) // 2):
                break
            size = self._frame_size(cursor, cuts, min(want, room))
            payload = commands[cursor:cursor + size]
            frame = _Pending(self._next_seq, payload)
            self._next_seq = (self._next_seq + 1) % SEQ_MODULUS
            self._pending.append(frame)
            self._resend_from = len(self._pending)
            last = cursor + size == len(commands) or len(self._pending) == self.window
            answered = cursor + size == len(commands) and cursor < self._last_store
            self._send(self._data_kind(last and not answered), frame.seq, payload)
            self.stats.data_frames_sent += 1
            self.stats.command_bytes += size
            cursor += size
            in_flight += size
        return cursor

    @staticmethod
    def _frame_size(cursor: int, cuts: list[int], limit: int) -> int:
        """``limit`` bytes, or fewer to end at the first cut at least :data:`_MIN_CUT` bytes in:
        then the device starts sending that STORE's outputs while the next frame arrives."""
        first = bisect.bisect_left(cuts, cursor + _MIN_CUT)
        if first < len(cuts) and cuts[first] <= cursor + limit:
            return cuts[first] - cursor
        return limit

    @staticmethod
    def _data_kind(last: bool) -> HostKind:
        """DATA (answered at once) for the last frame the host can send for now, STREAM (taken
        silently; the device's credit news and responses acknowledge it) for the others, and
        for a last frame that holds the exchange's last STORE: its outputs answer it."""
        return HostKind.DATA if last else HostKind.STREAM

    def _after(self, tag: int, since: int | None) -> bool:
        """Whether the device had processed a transmission made at or after tag ``since``."""
        if since is None:
            return True
        return (tag - since) % SEQ_MODULUS < (self._tag - since) % SEQ_MODULUS

    def _rewind_after_timeout(self) -> None:
        # RESEND first: its reply brings the device's state; then every unacknowledged frame.
        self._rsp_rewind_tag = self._data_rewind_tag = self._send(HostKind.RESEND)
        self.stats.resend_requests += 1
        if self._pending:
            self._resend_from = 0
            self.stats.rewinds += 1

    # -- receiving ---------------------------------------------------------------------------

    def _receive(self) -> DeviceFrame | None:
        """The next valid device frame, or None after ``timeout`` with nothing (or only noise)."""
        noise = 0
        while True:
            for raw in frames_in(self._wire_in, MAX_WIRE["device"]):
                frame = parse_device_frame(raw) if raw is not None else None
                if frame is None:
                    self.stats.bad_frames_received += 1
                    continue
                self.stats.frames_received += 1
                self._count_device_errors(frame)
                return frame
            data = self.transport.read(4 * MAX_WIRE["device"], self.timeout)
            if not data:
                return None
            self.stats.wire_bytes_received += len(data)
            self._wire_in += data
            noise += len(data)
            if noise > 8 * MAX_WIRE["device"]:   # a line full of noise is as good as silence
                return None

    def _count_device_errors(self, frame: DeviceFrame) -> None:
        """Add the steps of the device's rolling error counts since its last frame (the first
        frame sets where they start)."""
        counts = (frame.line_errors, frame.rejected_frames)
        if self._device_counts is not None:
            for name, now, before, bits in zip(
                    ("device_line_errors", "device_rejected_frames"), counts,
                    self._device_counts, (LINE_ERROR_BITS, REJECTED_FRAME_BITS)):
                step = (now - before) % (1 << bits[1])
                setattr(self.stats, name, getattr(self.stats, name) + step)
        self._device_counts = counts

    def _absorb(self, frame: DeviceFrame) -> tuple[bool, bool]:
        """Update from one device frame; returns ``(progress, rewound)``."""
        progress = rewound = False
        acked = (frame.next_seq - self._base) % SEQ_MODULUS
        if acked <= len(self._pending):     # otherwise an old frame (or a replayed one)
            if acked:
                for _ in range(acked):
                    self._pending.popleft()
                self._base = frame.next_seq
                self._resend_from = max(0, self._resend_from - acked)
                progress = True
            self._credit = frame.credit
            self._largest_credit = max(self._largest_credit, frame.credit)
        if frame.kind == DeviceKind.REPLY.value and LinkStatus(frame.status) in ERROR_STATUSES:
            self.stats.error_replies += 1
            # Act once per loss: answers to frames sent before the last rewind are echoes of it.
            if self._pending and self._after(frame.tag, self._data_rewind_tag):
                self._resend_from = 0
                self._data_rewind_tag = self._tag
                self.stats.rewinds += 1
                rewound = True
        progress |= self._take_responses(frame)
        return progress, rewound

    def _take_responses(self, frame: DeviceFrame) -> bool:
        behind = -offset_delta(frame.roff, self._received)
        if behind >= 0:
            fresh = frame.payload[behind:]
            self._held += fresh
            self._received += len(fresh)
            self.stats.response_bytes += len(fresh)
            return bool(fresh)
        # A gap: a response frame was lost. Ask once; frames sent before the device saw the
        # request show the same gap.
        if self._after(frame.tag, self._rsp_rewind_tag):
            self._rsp_rewind_tag = self._send(HostKind.RESEND)
            self.stats.resend_requests += 1
        return False

    def _timeout_error(self) -> LinkTimeout:
        return LinkTimeout(f"device did not answer after {self.retries} retries of "
                           f"{self.timeout:g} s: is it powered and configured, is the baud rate "
                           f"right, is this the right port?")


# -- a Device over a link -----------------------------------------------------------------------

class LinkedDevice(Device):
    """A :class:`~sw.device.Device` whose command and response streams go through a
    :class:`LinkHost`: the same driver path for the golden model, the simulation and boards."""

    def __init__(self, params: RillParams, transport: Transport, **host_options):
        super().__init__(params)
        self.transport = transport
        self.host = LinkHost(transport, **host_options)

    def _exchange(self, commands: bytes, response_bytes: int, cuts=()) -> bytes:
        return self.host.exchange(commands, response_bytes, cuts)

    def close(self):
        close = getattr(self.transport, "close", None)
        if close is not None:
            close()
