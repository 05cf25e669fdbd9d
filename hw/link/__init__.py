"""The host link: framed, checked, paced byte streams between a host and a Rill core.

A core executes command bytes as they arrive, so nothing may reach it that was not checked, and
nothing may reach it twice. A board's UART has no flow control, so the device must say how much
the host may send. This package is the device's half; ``sw/link.py`` is the host's half and a
pure-Python device model; both take every constant from :mod:`hw.link.protocol`.

Wire format
-----------
Each frame is COBS-encoded and followed by one 0x00 byte, so a receiver that lost its place (noise,
a byte dropped) is back in step at the next 0x00. Before encoding, a frame is a little-endian
header, a payload and a CRC-32 (``zlib.crc32`` of everything before it, little-endian)::

    host -> device   kind u8 | seq u8 | tag u8 | rack u16 | payload (0..1024) | crc32
    device -> host   kind u8 | status u8 | seq u8 | tag u8 | next_seq u8 | flags u8 |
                     credit u16 | roff u16 | payload (0..1024) | crc32

Host kinds: ``DATA`` (payload: command bytes), ``STREAM`` (as DATA, not answered when taken),
``POLL`` (report state), ``RESEND`` (POLL, and send the responses again from ``rack``), ``SYNC``
(a host connects). Device kinds: ``REPLY``
(answers a host frame: ``status`` and ``seq`` echo what happened to it) and ``RESPONSE``
(unsolicited: response bytes or news of credit). Every device frame carries the device's whole
state, so any frame that gets through brings the host up to date:

- ``next_seq``: the DATA ``seq`` it will execute next; every DATA frame before it is acknowledged;
- ``credit``: free command-buffer bytes: the host never has more DATA payload bytes beyond
  ``next_seq`` in flight than the latest credit;
- ``roff``: where the payload sits in the core's response stream (mod 2**16);
- ``tag``: the tag of the last good host frame the device processed (the host numbers every
  transmission, retransmissions included, so it can tell answers to old and new ones apart);
- ``flags.IDLE``: the core waits for commands and this frame holds its last response byte;
- the other ``flags`` bits: rolling counts of the UART's framing errors and of the host frames
  refused for a bad CRC or broken framing (``protocol.LINE_ERROR_BITS``,
  ``REJECTED_FRAME_BITS``), which the host adds up.

Commands: exactly once
----------------------
A DATA frame's payload is written tentatively into the command buffer (its CRC never enters it)
and committed only when the whole frame has arrived, its CRC matches, its ``seq`` is the expected
one and it fitted; otherwise it is rolled back. The core reads only committed bytes. A good DATA
frame with a seq up to 128 behind the expected one is a retransmission whose acknowledgement was
lost: it is acknowledged again (``DUPLICATE``) and not executed. One ahead is ``OUT_OF_ORDER``.
Broken frames are answered ``BAD_CRC`` / ``BAD_FRAME`` (with unreliable ``seq``). The host resends
from ``next_seq`` (go-back-N) on an error status or a timeout.

Pacing
------
Credits, not RTS/CTS: the device reports its free command-buffer bytes in every frame. It also
sends a frame of its own once the credit the host does not know of (free bytes, less the room
the host was last told of minus the DATA bytes taken since) reaches half the buffer. So the host
can stream its commands as STREAM frames, which the device takes without a reply (that credit
news, or any other device frame, acknowledges them through ``next_seq``), and send only the last
frame it has for now as DATA, answered at once. With the default 4 KiB buffer four full frames can
be in flight and news comes every 2 KiB, so the link streams at one 16-byte device frame per
2 KiB of commands instead of a reply per frame. A device's response ring is as large as its
command buffer (boards with few block RAMs build both smaller); the host takes the size from the
credit of its SYNC reply and acknowledges responses at least every half of it.

Responses: go-back-N from a retransmit buffer
---------------------------------------------
The core's response bytes go into a ring and stay there until the host acknowledges them
(``rack``: response bytes the host holds, in every host frame). The device sends them in frames
of up to 1 KiB, tagged with their stream offset ``roff``, as soon as a frame is full or the
core has been quiet for :data:`~.protocol.QUIET_CYCLES`, and with every reply. The host keeps
bytes that continue its stream, drops repeats by offset, and on a gap (a lost frame) sends
``RESEND``, which moves the device's send pointer back to ``rack``. Offsets instead of frame
sequence numbers make a repeat harmless and let replies carry response bytes for free; the ring
is the only state the device needs, and the core simply waits while it is full. The host acts
(resend, timeout) and the device only answers, so the device needs no timers but the quiet one.

Blocks
------
:class:`~.cobs.CobsDecoder` -> :class:`~.receiver.LinkReceiver` (CRC, header, seq) ->
:class:`~.buffer.CommitFifo` -> core -> :class:`~.transmitter.LinkTransmitter` (ring, frames, CRC)
-> :class:`~.cobs.CobsEncoder`, composed in :class:`~.top.Link`; :class:`~.top.LinkedCore` puts
a :class:`~hw.core.RillCore` behind it.
"""

from .buffer import CommitFifo
from .cobs import CobsDecoder, CobsEncoder, DecodedByte, FrameByte
from .crc import Crc32
from .receiver import FrameEvent, LinkReceiver
from .top import Link, LinkedCore
from .transmitter import LinkTransmitter

__all__ = ["CobsDecoder", "CobsEncoder", "CommitFifo", "Crc32", "DecodedByte", "FrameByte",
           "FrameEvent", "Link", "LinkReceiver", "LinkTransmitter", "LinkedCore"]
