"""The device's half of the link in Python: the golden model behind the same frames as the
gateware (``hw/link``), so the ``golden`` device runs through the driver code a board uses."""

from __future__ import annotations

from hw.link.protocol import (
    CMD_BUFFER_BYTES,
    MAX_RESPONSE_PAYLOAD,
    OFFSET_MODULUS,
    REFUSED_STATUSES,
    REJECTED_FRAME_BITS,
    RSP_BUFFER_BYTES,
    SEQ_MODULUS,
    DeviceFlags,
    DeviceFrame,
    DeviceKind,
    HostFrame,
    HostKind,
    LinkStatus,
    carries_commands,
    classify_seq,
    credit_news_threshold,
    flag_field,
    pack_device_frame,
    parse_host_frame,
)
from hw.params import RillParams

from .link import MAX_WIRE, LinkedDevice, encode_frame, frames_in

__all__ = ["LinkModel", "LoopbackTransport", "golden_link_device"]


class LinkModel:
    """The device end of a link around a core model (default: :class:`~sw.golden.GoldenCore`).

    Same frames and rules as the gateware (``hw/link``): tentative commands executed only when
    whole, checked and in sequence; responses kept until acknowledged; STREAM frames taken
    without a reply, credit news once the host's unreported credit reaches the threshold. It
    answers every frame at once (no merged replies) and runs its core as soon as commands
    arrive, holding them back only while the response buffer is full, as the real core stalls.

    ``receive(wire bytes)`` returns the wire bytes the device sends in answer.
    """

    def __init__(self, core=None, *, params: RillParams | None = None,
                 cmd_buffer: int = CMD_BUFFER_BYTES, rsp_buffer: int = RSP_BUFFER_BYTES):
        if core is None:
            from .golden import GoldenCore
            core = GoldenCore(params or RillParams())
        self.core = core
        self.cmd_buffer, self.rsp_buffer = cmd_buffer, rsp_buffer
        self.expected = 0
        self.executed_frames = 0
        self.statuses: dict[LinkStatus, int] = dict.fromkeys(LinkStatus, 0)
        self._last_seq = self._last_tag = 0
        self._wire_in = bytearray()
        self._commands = bytearray()   # committed, not yet run (only while responses back up)
        self._ring = bytearray()       # response bytes from offset _acked on
        self._acked = self._sent = 0   # unbounded stream offsets
        self._backlog = bytearray()    # core output waiting for ring space
        self._host_room = cmd_buffer   # the credit last reported, less DATA bytes taken since

    def receive(self, data: bytes) -> bytes:
        self._wire_in += data
        out = bytearray()
        for raw in frames_in(self._wire_in, MAX_WIRE["host"]):
            out += self._frame(raw)
        return bytes(out)

    @property
    def _written(self) -> int:
        return self._acked + len(self._ring)

    def _frame(self, raw: bytes | None) -> bytes:
        parsed = parse_host_frame(raw) if raw is not None else LinkStatus.BAD_FRAME
        if isinstance(parsed, LinkStatus):
            status = parsed
            self._last_seq = raw[1] if raw is not None and len(raw) > 1 else 0
        else:
            status = self._apply(parsed)
        self.statuses[status] += 1
        self._run()
        quiet = (not isinstance(parsed, LinkStatus) and parsed.kind == HostKind.STREAM.value
                 and status == LinkStatus.OK)
        out = b"" if quiet else self._device_frame(DeviceKind.REPLY, status)
        while (self._sent < self._written
               or self._credit() >= self._host_room + credit_news_threshold(self.cmd_buffer)):
            out += self._device_frame(DeviceKind.RESPONSE, LinkStatus.OK)
        return out

    def _apply(self, frame: HostFrame) -> LinkStatus:
        self._last_seq, self._last_tag = frame.seq, frame.tag
        if frame.kind == HostKind.SYNC.value:
            self._acked = self._sent = self._written
            self._ring.clear()
        else:
            ahead = (frame.rack - self._acked) % OFFSET_MODULUS
            if ahead <= len(self._ring):
                del self._ring[:ahead]
                self._acked += ahead
                self._sent = max(self._sent, self._acked)
            if frame.kind == HostKind.RESEND.value:
                self._sent = self._acked
        if not carries_commands(frame.kind):
            return LinkStatus.OK
        status = classify_seq(frame.seq, self.expected)
        if status == LinkStatus.OK:
            if len(frame.payload) > self._credit():
                return LinkStatus.NO_SPACE
            self._commands += frame.payload
            self._host_room = max(0, self._host_room - len(frame.payload))
            self.expected = (self.expected + 1) % SEQ_MODULUS
            self.executed_frames += 1
        return status

    def _credit(self) -> int:
        return self.cmd_buffer - len(self._commands)

    def _run(self):
        self._fill_ring()
        if self._commands and not self._backlog:
            self._backlog += self.core.feed(bytes(self._commands))
            self._commands.clear()
            self._fill_ring()

    def _fill_ring(self):
        room = self.rsp_buffer - len(self._ring)
        self._ring += self._backlog[:room]
        del self._backlog[:room]

    def _flags(self, idle: bool) -> int:
        """IDLE and the rolling count of rejected host frames (no UART here: no line errors)."""
        rejected = sum(self.statuses[status] for status in REFUSED_STATUSES)
        return (DeviceFlags.IDLE.value if idle else 0) | flag_field(rejected, REJECTED_FRAME_BITS)

    def _device_frame(self, kind: DeviceKind, status: LinkStatus) -> bytes:
        start = self._sent - self._acked
        payload = bytes(self._ring[start:start + MAX_RESPONSE_PAYLOAD])
        roff = self._sent
        self._sent += len(payload)
        idle = not self._commands and not self._backlog and self._sent == self._written
        self._host_room = self._credit()
        frame = DeviceFrame(kind.value, status.value, self._last_seq, self._last_tag,
                            self.expected, self._flags(idle),
                            min(self._credit(), 0xFFFF), roff % OFFSET_MODULUS, payload)
        return encode_frame(pack_device_frame(frame))



class LoopbackTransport:
    """A :class:`LinkModel` as a transport: it answers every write at once, so a read with
    nothing waiting times out at once (no real waiting)."""

    def __init__(self, model: LinkModel):
        self.model = model
        self._inbox = bytearray()

    def write(self, data: bytes) -> None:
        self._inbox += self.model.receive(bytes(data))

    def read(self, n: int, timeout: float) -> bytes:
        data = bytes(self._inbox[:n])
        del self._inbox[:n]
        return data


def golden_link_device(params: RillParams, **host_options) -> LinkedDevice:
    """The golden model behind a :class:`LinkModel`, reached through a :class:`LinkHost`."""
    return LinkedDevice(params, LoopbackTransport(LinkModel(params=params)), **host_options)
