"""The link protocol's constants and frame layouts: the one place both ends take them from.

Imported by the gateware (``hw/link/``), the host (``sw/link.py``) and the device model. The
protocol itself is described in the package docstring (``hw/link/__init__.py``).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from amaranth.lib import enum

__all__ = [
    "HostKind", "DeviceKind", "LinkStatus", "DeviceFlags", "ERROR_STATUSES",
    "LINE_ERROR_BITS", "REJECTED_FRAME_BITS", "REFUSED_STATUSES", "flag_count", "flag_field",
    "HOST_HEADER_FORMAT", "HOST_HEADER_BYTES", "DEVICE_HEADER_FORMAT", "DEVICE_HEADER_BYTES",
    "CRC_BYTES", "CRC_RESIDUE", "MAX_PAYLOAD", "MAX_RESPONSE_PAYLOAD", "MAX_HOST_FRAME",
    "MAX_DEVICE_FRAME", "CMD_BUFFER_BYTES", "RSP_BUFFER_BYTES", "QUIET_CYCLES",
    "SEQ_MODULUS", "DUPLICATE_WINDOW", "credit_news_threshold", "OFFSET_MODULUS", "COBS_BLOCK",
    "HostFrame", "DeviceFrame", "crc32", "seal", "unseal", "pack_host_frame",
    "parse_host_frame", "pack_device_frame", "carries_commands", "parse_device_frame",
    "classify_seq",
    "offset_delta",
]


class HostKind(enum.Enum, shape=8):
    """Host -> device frame kinds."""
    DATA = 0x01     #: payload: command bytes for the core, executed once, in ``seq`` order
    POLL = 0x02     #: no payload: "tell me your state" (and take my ``rack``)
    RESEND = 0x03   #: as POLL, and send the response stream again from ``rack``
    SYNC = 0x04     #: a host (re)connects: drop unacknowledged response bytes, report state
    #: as DATA, but taken without a reply: the device's next frame (credit news, responses)
    #: acknowledges it. Refusals (errors, DUPLICATE) are answered as for DATA. The host sends
    #: the last frame it has for now as DATA, so that one is answered at once.
    STREAM = 0x05


class DeviceKind(enum.Enum, shape=8):
    """Device -> host frame kinds. Disjoint from :class:`HostKind`: an echo is never mistaken."""
    REPLY = 0x81      #: answers one host frame (``status`` and ``seq`` are about that frame)
    RESPONSE = 0x82   #: unsolicited: response bytes, or news of more credit


class LinkStatus(enum.Enum, shape=8):
    OK = 0x00
    DUPLICATE = 0x01      #: a DATA frame already executed (its ACK was lost): acked again only
    OUT_OF_ORDER = 0x02   #: a DATA frame ahead of the expected one (one before it was lost)
    BAD_CRC = 0x03        #: the frame's CRC-32 did not match; nothing in it was used
    BAD_FRAME = 0x04      #: broken COBS, too short, too long or an unknown kind
    NO_SPACE = 0x05       #: a DATA frame larger than the free command buffer; not executed


#: Statuses that say a host frame was not taken (the host should send it again).
ERROR_STATUSES = frozenset({LinkStatus.OUT_OF_ORDER, LinkStatus.BAD_CRC, LinkStatus.BAD_FRAME,
                            LinkStatus.NO_SPACE})


class DeviceFlags(enum.Flag, shape=8):
    #: The core waits for command bytes, the command buffer is empty and this frame carries the
    #: last response byte produced: nothing more will come until more commands are sent.
    IDLE = 0x01


#: The flags byte's other bits: two rolling counts, since the device's reset, of what its
#: receiver threw away, each modulo ``2**bits``. Line errors are the UART's framing errors (a
#: start bit without its stop bit: noise, or another baud rate); rejected frames, host frames
#: with a bad CRC or broken framing. Every device frame carries both as they were when it
#: started, and the host adds up the steps (``LinkStats.device_line_errors`` and
#: ``device_rejected_frames``): exact while fewer than ``2**bits`` happen between two device
#: frames the host receives; each rejected frame is answered by one.
LINE_ERROR_BITS = (1, 3)       #: (first bit, bits)
REJECTED_FRAME_BITS = (4, 3)


#: What a host frame is refused for when it counts as rejected (:data:`REJECTED_FRAME_BITS`).
REFUSED_STATUSES = (LinkStatus.BAD_CRC, LinkStatus.BAD_FRAME)


def flag_count(flags: int, bits: tuple[int, int]) -> int:
    """One of the rolling counts in a device frame's flags byte."""
    first, width = bits
    return (flags >> first) & ((1 << width) - 1)


def flag_field(count: int, bits: tuple[int, int]) -> int:
    """``count``, rolled over, where :func:`flag_count` finds it in the flags byte."""
    first, width = bits
    return (count % (1 << width)) << first


#: kind, seq, tag, rack (u16: response bytes the host holds, mod 2**16).
HOST_HEADER_FORMAT = "<BBBH"
HOST_HEADER_BYTES = struct.calcsize(HOST_HEADER_FORMAT)
#: kind, status, seq, tag, next_seq, flags, credit (u16), roff (u16: stream offset of the
#: payload's first byte, mod 2**16).
DEVICE_HEADER_FORMAT = "<BBBBBBHH"
DEVICE_HEADER_BYTES = struct.calcsize(DEVICE_HEADER_FORMAT)

CRC_BYTES = 4
#: zlib.crc32 of any byte string followed by its own CRC-32 (little-endian): a receiver checks a
#: frame without knowing where its payload ends.
CRC_RESIDUE = 0x2144DF1C

#: Largest DATA payload; a bigger host frame is BAD_FRAME. A frame costs 15 bytes besides its
#: payload (header, CRC, COBS, delimiter); STREAM frames need no reply of their own.
MAX_PAYLOAD = 1024
#: Largest response payload in one device frame.
MAX_RESPONSE_PAYLOAD = 1024
MAX_HOST_FRAME = HOST_HEADER_BYTES + MAX_PAYLOAD + CRC_BYTES
MAX_DEVICE_FRAME = DEVICE_HEADER_BYTES + MAX_RESPONSE_PAYLOAD + CRC_BYTES
#: COBS code blocks hold at most this many data bytes.
COBS_BLOCK = 254

#: Default sizes of the device's buffers (powers of two). The command buffer's free space is the
#: credit; the response buffer keeps every response byte until the host acknowledges it.
#: Four full DATA frames fit, so the host streams instead of waiting a round trip per frame.
CMD_BUFFER_BYTES = 4096
RSP_BUFFER_BYTES = 4096
#: A partial response frame goes out once the core has produced nothing for this many cycles.
QUIET_CYCLES = 16


def credit_news_threshold(cmd_buffer: int) -> int:
    """Unreported credit that makes the device send a frame of its own: half the command buffer.

    Unreported credit is the device's free command-buffer bytes minus the room the host believes
    it has (the last credit reported, less the DATA bytes taken since). Half the buffer keeps the
    host streaming (the news leaves while the host still has the other half to send) at one
    16-byte frame per half buffer of commands."""
    return max(1, cmd_buffer // 2)

SEQ_MODULUS = 256
#: A DATA seq up to this many behind the expected one is a duplicate; further ones and any ahead
#: are out of order. The host keeps far fewer frames in flight.
DUPLICATE_WINDOW = 128
OFFSET_MODULUS = 1 << 16


def crc32(data: bytes) -> int:
    return zlib.crc32(data)


def seal(body: bytes) -> bytes:
    """``body`` followed by its CRC-32, little-endian."""
    return body + crc32(body).to_bytes(CRC_BYTES, "little")


def unseal(frame: bytes) -> bytes | None:
    """The body of a sealed frame, or None when it is too short or its CRC does not match."""
    if len(frame) < CRC_BYTES or crc32(frame) != CRC_RESIDUE:
        return None
    return frame[:-CRC_BYTES]


@dataclass(frozen=True)
class HostFrame:
    kind: int
    seq: int
    tag: int
    rack: int
    payload: bytes = b""


@dataclass(frozen=True)
class DeviceFrame:
    kind: int
    status: int
    seq: int
    tag: int
    next_seq: int
    flags: int
    credit: int
    roff: int
    payload: bytes = b""

    @property
    def idle(self) -> bool:
        return bool(self.flags & DeviceFlags.IDLE.value)

    @property
    def line_errors(self) -> int:
        return flag_count(self.flags, LINE_ERROR_BITS)

    @property
    def rejected_frames(self) -> int:
        return flag_count(self.flags, REJECTED_FRAME_BITS)


def pack_host_frame(frame: HostFrame) -> bytes:
    return seal(struct.pack(HOST_HEADER_FORMAT, frame.kind, frame.seq, frame.tag,
                            frame.rack % OFFSET_MODULUS) + frame.payload)


def parse_host_frame(raw: bytes) -> HostFrame | LinkStatus:
    """A decoded (un-COBSed) host frame, or the status the device answers a bad one with."""
    if len(raw) < HOST_HEADER_BYTES + CRC_BYTES or len(raw) > MAX_HOST_FRAME:
        return LinkStatus.BAD_FRAME
    body = unseal(raw)
    if body is None:
        return LinkStatus.BAD_CRC
    kind, seq, tag, rack = struct.unpack_from(HOST_HEADER_FORMAT, body)
    if kind not in {k.value for k in HostKind}:
        return LinkStatus.BAD_FRAME
    return HostFrame(kind, seq, tag, rack, body[HOST_HEADER_BYTES:])


def pack_device_frame(frame: DeviceFrame) -> bytes:
    return seal(struct.pack(DEVICE_HEADER_FORMAT, frame.kind, frame.status, frame.seq, frame.tag,
                            frame.next_seq, frame.flags, frame.credit, frame.roff % OFFSET_MODULUS)
                + frame.payload)


def parse_device_frame(raw: bytes) -> DeviceFrame | None:
    """A decoded device frame, or None when it is malformed or fails its CRC."""
    if len(raw) < DEVICE_HEADER_BYTES + CRC_BYTES or len(raw) > MAX_DEVICE_FRAME:
        return None
    body = unseal(raw)
    if body is None:
        return None
    fields = struct.unpack_from(DEVICE_HEADER_FORMAT, body)
    if fields[0] not in {k.value for k in DeviceKind}:
        return None
    return DeviceFrame(*fields, payload=body[DEVICE_HEADER_BYTES:])


def carries_commands(kind: int) -> bool:
    """DATA and STREAM frames carry command bytes."""
    return kind in (HostKind.DATA.value, HostKind.STREAM.value)


def classify_seq(seq: int, expected: int) -> LinkStatus:
    """What the device does with a good DATA frame: OK (execute), DUPLICATE or OUT_OF_ORDER."""
    behind = (expected - seq) % SEQ_MODULUS
    if behind == 0:
        return LinkStatus.OK
    return LinkStatus.DUPLICATE if behind <= DUPLICATE_WINDOW else LinkStatus.OUT_OF_ORDER


def offset_delta(offset: int, reference: int) -> int:
    """``offset - reference`` for 16-bit stream offsets, in ``[-2**15, 2**15)``."""
    return (offset - reference + OFFSET_MODULUS // 2) % OFFSET_MODULUS - OFFSET_MODULUS // 2
