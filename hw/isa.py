"""The Rill instruction set: opcodes, field layouts, responses and the state instructions set.
Each instruction's exact cycle cost is :mod:`hw.cycles`'s.

Imported by the gateware decoder (``hw/sequencer.py``), the golden model (``sw/golden.py``) and the
driver's encoder. Nothing here is restated anywhere else.

Wire form
---------
Every instruction is a fixed :data:`HEADER_BYTES`-byte header: one opcode byte followed by the
opcode's operand fields, little-endian, unsigned, zero-padded. ``LOAD_*`` headers are followed by
``count`` words of data. A fixed header keeps the decoder a byte counter and a register; it costs a
few bytes on the wire per instruction, against kilobytes of data per tile.

Responses (device → host) start with a 4-byte header ``status, opcode, index_lo, index_hi``
where ``index`` is the instruction's number (instructions decoded before it, mod 2**16). Only
``STORE`` (unless to the activation SRAM), ``READ_COUNTERS``, ``SYNC``, ``INFO``, ``READ_ACTS``
and failed instructions respond.

Programs
--------
``LOAD_PROGRAM`` stores instruction headers in the program memory (``RillParams.program_depth``
headers); ``RUN`` then executes ``count`` of them from ``addr`` as if they had come over the link,
one header byte a cycle, so every cycle cost (:mod:`hw.cycles`) holds unchanged. A ``LOAD_*``
in a program takes its data from the link: a resident model's program loads its input,
computes and stores its output, and one ``RUN`` header plus the input is all an inference
sends. ``LOAD_PROGRAM`` also sets the device's program tag, which ``INFO`` reports (0 after
reset): the host learns what is loaded, and whether a reset lost it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from amaranth.lib import enum

__all__ = [
    "ISA_VERSION", "HEADER_BYTES", "RESPONSE_HEADER_BYTES", "QPARAM_BYTES", "INFO_BYTES",
    "COUNTER_NAMES",
    "Opcode", "Status", "Precision", "Rounding", "OutType", "MatmulFlags", "StoreFlags",
    "ConvGeometry", "VectorStage", "VECTOR_SLOTS", "ADD_LEFT_SHIFT", "VECTOR_OPCODES",
    "FIELDS", "field_offsets", "encode", "decode_fields", "Config",
    "pack_qparam", "LOAD_OPCODES", "QPARAM_FORMAT", "RELU_NONE", "RELU_ZERO_POINT", "RELU_CLAMP",
]

ISA_VERSION = 9
HEADER_BYTES = 12
RESPONSE_HEADER_BYTES = 4
#: ``INFO`` payload: the params (``RillParams.to_info_bytes``) and the program tag (u16).
INFO_BYTES = 20
#: One requantization entry on the wire: bias i32, multiplier i32, shift (u8 in ONNX mode, i8 in
#: TFLITE mode), one pad byte, zero point i16. See sw/requant.py for the arithmetic.
QPARAM_BYTES = 12
QPARAM_FORMAT = "<iiBxh"
#: ``READ_COUNTERS`` payload: four little-endian u32 in this order.
COUNTER_NAMES = ("cycles", "busy", "stalls", "instructions")

#: The vector unit's scaling stages (``VECTOR_CONFIG``'s ``slot``): ADD's first input, its second
#: input, its output.
VECTOR_SLOTS = 3
#: TFLite's int8 ADD shifts both inputs left by this much before scaling them (``left_shift``).
ADD_LEFT_SHIFT = 20


class Opcode(enum.Enum, shape=8):
    CONFIG = 0x01         #: set precision, rounding mode, ReLU or clamp, output type
    LOAD_WEIGHTS = 0x02   #: ``count`` weight words (``cols`` bytes each) at ``addr``
    #: ``count`` activation words at ``addr``, ``lanes`` bytes each (0: all
    #: ``values_per_word``); a narrow word's other lanes keep what they held (an unpacked INT8
    #: word's upper half reads as zero), so a layer of few channels sends only those
    LOAD_ACTS = 0x03
    LOAD_QPARAMS = 0x04   #: ``count`` requant entries (:data:`QPARAM_BYTES` each) at ``addr``
    MATMUL = 0x05         #: activation tiles x weight tiles -> accumulator rows
    STORE = 0x06          #: accumulators -> (requant | raw int32) -> output stream
    READ_COUNTERS = 0x07  #: the four performance counters
    SYNC = 0x08           #: waits for the array to drain, then echoes ``tag``
    INFO = 0x09           #: the device's params (``RillParams.to_info_bytes``)
    #: ``count`` int32 biases (4 bytes each) at ``addr``; multiplier, shift and zero point come
    #: once in the header and go to every entry (per-tensor requantization at a third of the bytes)
    LOAD_BIASES = 0x0A
    #: ``count`` instruction headers (:data:`HEADER_BYTES` each) into the program memory at
    #: ``addr``; sets the program tag to ``tag``
    LOAD_PROGRAM = 0x0B
    #: execute ``count`` headers of the program memory from ``addr``
    RUN = 0x0C
    #: the feature map a ``MATMUL`` with :data:`MatmulFlags.CONV` walks (:class:`ConvGeometry`)
    CONV_GEOMETRY = 0x0D
    #: the vector unit's (``RillParams.vector_unit``, as the three below; docs/vector-unit.md)
    #: scaling stage ``slot`` (:class:`VectorStage`)
    VECTOR_CONFIG = 0x0E
    #: TFLite's int8 ADD of ``words`` words at ``a_addr`` and ``b_addr`` into ``out_addr``, lane
    #: by lane, with the three stages (:class:`VectorStage`): each word's first ``lanes`` lanes
    #: (1 to ``2 * rows``; the others of an output word keep what they held)
    ADD = 0x0F
    #: per block of ``pixels`` words at ``act_addr``, lane sums ``s``, then ``sign(s) * ((|s| +
    #: pixels // 2) * reciprocal >> shift)`` clamped to int8 into word ``out_addr + block``
    AVGPOOL = 0x10
    #: ``count`` activation words from ``addr`` back to the host, ``2 * rows`` bytes each
    READ_ACTS = 0x11
    #: TFLite's MEAN over a map's pixels (``QuantizedMeanOrSum``): per block of ``pixels`` words
    #: at ``act_addr``, lane sums ``s`` of ``x + offset`` (stage 0's offset: the input's negated
    #: zero point), then the output stage, ``clamp(mbqm(s) + offset, lo, hi)`` (stage 2), into
    #: word ``out_addr + block``
    MEAN = 0x12
    #: MAX_POOL_2D (``average`` 0) or AVERAGE_POOL_2D (``average`` 1) over windows of the map
    #: ``CONV_GEOMETRY`` describes (its sizes, kernel, stride and padding, output rows from
    #: ``first_row``; ``zero_point`` and ``chunks`` unused) at ``act_addr``, ``groups`` blocks
    #: of ``in_h * in_w`` words, into ``groups`` blocks of ``out_h * out_w`` words from
    #: ``out_addr`` (the two may not share a word): per window the lanes' maximum over the
    #: pixels inside the map,
    #: or ``sign(s) * ((|s| + kernel // 2) * reciprocal >> shift)`` of their sum ``s`` clamped
    #: to int8, then clamped to stage 2's ``lo .. hi`` (the fused activation)
    POOL = 0x13


class Status(enum.Enum, shape=8):
    OK = 0x00
    UNKNOWN_OPCODE = 0x01   #: the header's opcode byte names no instruction; header skipped
    BAD_MODE = 0x02         #: a mode or flag field holds a value that does not exist
    OUT_OF_RANGE = 0x03     #: address + length past the end of an SRAM; load data is drained
    BAD_LENGTH = 0x04       #: a zero length (or a last-tile width of 0 or above ``cols``)
    IN_PROGRAM = 0x05       #: ``RUN`` or ``LOAD_PROGRAM`` inside a program
    #: a vector instruction's output would overwrite input words it has yet to read: its
    #: output must start at or before each input, or lie wholly past it
    OVERLAP = 0x06


class Precision(enum.Enum, shape=2):
    INT8 = 0   #: W8A8: one 8x8 product per PE per cycle
    INT4 = 1   #: W4A8: two 4-bit-weight x 8-bit-activation products per PE per cycle
    # W4A4 runs as W4A8 with activations in [-8, 7]: exact, but no faster. Packing two 4-bit
    # activations per lane would double the activation SRAM bandwidth again for a 4x4 product
    # the 8x5 multipliers already cover; not worth it at this array size.


class Rounding(enum.Enum, shape=2):
    ONNX = 0     #: bit-exact integer emulation of onnxruntime's float32 requantization
    TFLITE = 1   #: TFLite's MultiplyByQuantizedMultiplier (Q31 multiplier, double rounding)


class OutType(enum.Enum, shape=2):
    INT8 = 0
    UINT8 = 1
    INT4 = 2   #: clamped to [-8, 7], sent one value per byte (sign-extended)


class MatmulFlags(enum.Flag, shape=8):
    ACCUMULATE = 0x01   #: add into the accumulators even for the first K tile
    #: Read activations as a convolution's patches, addressed on the device from a feature map
    #: (:class:`ConvGeometry`); needs ``RillParams.conv_addressing``.
    CONV = 0x02
    #: With :data:`CONV`: a depthwise convolution, each output tile reading its own channels
    #: only. Output tile ``nt`` takes channel chunk ``nt`` at every kernel offset, so
    #: ``k_tiles`` is the kernel's ``kernel_h * kernel_w`` and ``n_tiles`` the geometry's
    #: ``chunks`` (a chunk's channels meet a tile's columns: the weight tiles are diagonal).
    #: Each weight tile is stored as its diagonal, one word: tile ``nt * k_tiles + kt`` is the
    #: word at ``weight_addr + nt * k_tiles + kt``, its byte ``c`` the weight of row and column
    #: ``c`` (the array takes zero everywhere else), so a depthwise conv's weights take
    #: ``kernel`` bytes a channel.
    DEPTHWISE = 0x04


class StoreFlags(enum.Flag, shape=8):
    RAW = 0x01   #: send acc + bias as little-endian int32, skipping requantization
    #: Write the requantized values into the activation SRAM at ``act_addr`` instead of sending
    #: them: value ``n`` of row ``r`` to word ``act_addr + (n // v) * m + r``, lane ``n % v``,
    #: the layout a MATMUL with ``m`` rows reads (``v``: ``values_per_word`` of the next
    #: layer's precision). The
    #: STORE keeps its schedule (the response header's cycles pass silently) and sends nothing.
    #: Lanes past the last value of a partial word keep what they held: the next layer's weights
    #: there are zero padding. Needs ``RillParams.store_to_acts``; refused with RAW or a UINT8
    #: output type (the array reads signed lanes).
    TO_ACTS = 0x02
    #: With TO_ACTS: the next layer runs INT4 (``2 * rows`` values a word; INT8 has as many
    #: with ``RillParams.packed_int8_acts``, else ``rows``).
    ACTS_INT4 = 0x04
    #: With TO_ACTS: ``RillParams.store_lanes`` columns of a row a cycle, one per requantizer;
    #: ``q_addr`` a multiple of ``store_lanes`` (the entries are banked by lane). Needs
    #: ``store_lanes > 1``.
    WIDE = 0x08


#: Operand fields of each opcode, in wire order after the opcode byte: ``(name, bytes)``.
FIELDS: dict[Opcode, tuple[tuple[str, int], ...]] = {
    Opcode.CONFIG: (("precision", 1), ("rounding", 1), ("relu", 1), ("out_type", 1),
                    ("clamp_lo", 1), ("clamp_hi", 1)),
    Opcode.LOAD_WEIGHTS: (("addr", 2), ("count", 2)),
    Opcode.LOAD_ACTS: (("addr", 2), ("count", 2), ("lanes", 1)),
    Opcode.LOAD_QPARAMS: (("addr", 2), ("count", 2)),
    # The shape before the last three bytes: the checks multiply m, k_tiles and n_tiles from
    # registers as the header's last bytes come in (``hw.checks``). acc_addr, m and n_tiles
    # where STORE has them: the checks of the accumulator rows the two touch select nothing.
    Opcode.MATMUL: (("acc_addr", 2), ("m", 2), ("n_tiles", 1), ("k_tiles", 1), ("flags", 1),
                    ("act_addr", 2), ("weight_addr", 2)),
    Opcode.STORE: (("acc_addr", 2), ("m", 2), ("n_tiles", 1), ("last_cols", 1), ("q_addr", 2),
                   ("flags", 1), ("act_addr", 2)),
    Opcode.READ_COUNTERS: (),
    Opcode.SYNC: (("tag", 2),),
    Opcode.INFO: (),
    Opcode.LOAD_BIASES: (("addr", 2), ("count", 2), ("multiplier", 4), ("shift", 1),
                         ("zero_point", 2)),
    Opcode.LOAD_PROGRAM: (("addr", 2), ("count", 2), ("tag", 2)),
    Opcode.RUN: (("addr", 2), ("count", 2)),
    Opcode.CONV_GEOMETRY: (("in_w", 1), ("in_h", 1), ("out_w", 1), ("kernel_h", 1),
                           ("kernel_w", 1), ("stride", 1), ("pad_top", 1), ("pad_left", 1),
                           ("first_row", 1), ("zero_point", 1), ("chunks", 1)),
    Opcode.VECTOR_CONFIG: (("slot", 1), ("multiplier", 4), ("shift", 1), ("offset", 2),
                           ("lo", 1), ("hi", 1)),
    Opcode.ADD: (("a_addr", 2), ("b_addr", 2), ("out_addr", 2), ("words", 2), ("lanes", 1)),
    Opcode.AVGPOOL: (("act_addr", 2), ("out_addr", 2), ("groups", 1), ("pixels", 2),
                     ("reciprocal", 3), ("shift", 1)),
    Opcode.READ_ACTS: (("addr", 2), ("count", 2)),
    # AVGPOOL's first fields, where AVGPOOL has them (the checks and the unit share them).
    Opcode.MEAN: (("act_addr", 2), ("out_addr", 2), ("groups", 1), ("pixels", 2)),
    Opcode.POOL: (("act_addr", 2), ("out_addr", 2), ("groups", 1), ("out_h", 1),
                  ("average", 1), ("reciprocal", 3), ("shift", 1)),
}
#: Instructions that exist only on a core with ``RillParams.vector_unit``.
VECTOR_OPCODES = (Opcode.VECTOR_CONFIG, Opcode.ADD, Opcode.AVGPOOL, Opcode.READ_ACTS,
                  Opcode.MEAN, Opcode.POOL)

#: Instructions followed by ``count`` words of data.
LOAD_OPCODES = (Opcode.LOAD_WEIGHTS, Opcode.LOAD_ACTS, Opcode.LOAD_QPARAMS, Opcode.LOAD_BIASES,
                Opcode.LOAD_PROGRAM)


def field_offsets(opcode: Opcode) -> dict[str, tuple[int, int]]:
    """``{name: (byte offset within the operand bytes, size in bytes)}`` for one opcode."""
    offsets, at = {}, 0
    for name, size in FIELDS[opcode]:
        offsets[name] = (at, size)
        at += size
    assert at <= HEADER_BYTES - 1, opcode
    return offsets


def encode(opcode: Opcode, **fields: int) -> bytes:
    """One instruction header. Every field of the opcode must be given; values must fit."""
    opcode = Opcode(opcode)
    names = {name for name, _ in FIELDS[opcode]}
    if set(fields) != names:
        raise TypeError(f"{opcode.name} takes fields {sorted(names)}, got {sorted(fields)}")
    header = bytearray(HEADER_BYTES)
    header[0] = opcode.value
    for name, (offset, size) in field_offsets(opcode).items():
        value = int(fields[name])
        if not 0 <= value < (1 << (8 * size)):
            raise ValueError(f"{opcode.name}.{name}={value} does not fit in {size} byte(s)")
        header[1 + offset:1 + offset + size] = value.to_bytes(size, "little")
    return bytes(header)


def decode_fields(opcode: Opcode, operands: bytes) -> dict[str, int]:
    """The operand fields of a header (``operands`` is the header without its opcode byte)."""
    return {name: int.from_bytes(operands[offset:offset + size], "little")
            for name, (offset, size) in field_offsets(opcode).items()}


#: ``CONFIG``'s ``relu`` field: the clamp of requantized outputs.
RELU_NONE, RELU_ZERO_POINT, RELU_CLAMP = 0, 1, 2


@dataclass(frozen=True)
class Config:
    """The state ``CONFIG`` sets. The reset value is the default instance.

    Requantized outputs are clamped to the output type's range; ``relu`` raises its low end to
    the zero point (``relu`` field 1). ``clamp``, ``(lo, hi)`` in the output type's values,
    narrows the range to ``[max(type_lo, lo), min(type_hi, hi)]`` instead (``relu`` field 2,
    the bounds in ``clamp_lo`` and ``clamp_hi``, signed bytes, unsigned for ``UINT8``): a fused
    RELU6 or RELU_N1_TO_1, or a ReLU with its zero point folded in. Needs ``RillParams.clamp``.
    """
    precision: Precision = Precision.INT8
    rounding: Rounding = Rounding.ONNX
    relu: bool = False
    out_type: OutType = OutType.INT8
    clamp: tuple[int, int] | None = None

    def __post_init__(self):
        if self.clamp is not None and self.relu:
            raise ValueError("give relu or clamp, not both: fold the zero point into clamp's lo")

    @property
    def int4(self) -> bool:
        return self.precision == Precision.INT4

    @classmethod
    def from_fields(cls, fields: dict[str, int]) -> Config:
        """The state a decoded ``CONFIG`` instruction sets."""
        out_type = OutType(fields["out_type"])
        clamp = None
        if fields["relu"] == RELU_CLAMP:
            signed = out_type != OutType.UINT8
            clamp = tuple(v - 256 * (signed and v >= 128)
                          for v in (fields["clamp_lo"], fields["clamp_hi"]))
        return cls(Precision(fields["precision"]), Rounding(fields["rounding"]),
                   fields["relu"] == RELU_ZERO_POINT, out_type, clamp)

    def fields(self) -> dict[str, int]:
        """The ``CONFIG`` instruction's fields."""
        lo, hi = self.clamp or (0, 0)
        return dict(precision=self.precision.value, rounding=self.rounding.value,
                    relu=RELU_CLAMP if self.clamp else int(self.relu),
                    out_type=self.out_type.value, clamp_lo=lo & 0xFF, clamp_hi=hi & 0xFF)


@dataclass(frozen=True)
class ConvGeometry:
    """The state ``CONV_GEOMETRY`` sets: how a ``MATMUL`` with :data:`MatmulFlags.CONV` reads its
    activations.

    The feature map lies at the MATMUL's ``act_addr`` in blocks of ``in_h * in_w``
    words, one per word's worth of channels (``values_per_word`` channels ``v``, a word per pixel,
    row-major): channel ``c`` of pixel ``(y, x)`` is lane ``c % v`` of word ``act_addr + (c // v) *
    in_h * in_w + y * in_w + x``, the layout a ``STORE`` to the activation SRAM gives a
    convolution's output pixels. ``chunks`` counts K chunks of ``k_per_tile`` channels (two a word
    for packed INT8). K tile ``kt`` is channel chunk ``kt % chunks`` at kernel offset ``(dy, dx) =
    divmod(kt // chunks, kernel_w)``, so the MATMUL's ``k_tiles`` must be ``kernel_h * kernel_w *
    chunks`` (with :data:`MatmulFlags.DEPTHWISE`, K tile ``kt`` of output tile ``nt`` is chunk
    ``nt`` at offset ``divmod(kt, kernel_w)``). Its row ``i`` is output pixel ``(first_row + i //
    out_w, i % out_w)``, which reads input pixel ``(oy * stride + dy - pad_top, ox * stride + dx -
    pad_left)``, or, outside the map, ``zero_point`` in every lane (padding holds the input's zero
    point). Bottom and right padding need no field: rows past the map read the zero point.
    """
    in_w: int = 1
    in_h: int = 1
    out_w: int = 1
    kernel_h: int = 1
    kernel_w: int = 1
    stride: int = 1
    pad_top: int = 0
    pad_left: int = 0
    first_row: int = 0
    zero_point: int = 0   #: int8
    chunks: int = 1

    #: The fields a geometry needs nonzero (``CONV_GEOMETRY`` answers BAD_LENGTH otherwise).
    NONZERO: ClassVar[tuple[str, ...]] = ("in_w", "in_h", "out_w", "kernel_h", "kernel_w",
                                          "stride", "chunks")

    @classmethod
    def from_fields(cls, fields: dict[str, int]) -> ConvGeometry:
        zero_point = fields["zero_point"] - 256 * (fields["zero_point"] >= 128)
        return cls(**{**fields, "zero_point": zero_point})

    def fields(self) -> dict[str, int]:
        return {name: getattr(self, name) & 0xFF for name, _ in FIELDS[Opcode.CONV_GEOMETRY]}

    @property
    def kernel(self) -> int:
        return self.kernel_h * self.kernel_w

    @property
    def k_tiles(self) -> int:
        return self.kernel * self.chunks

    def words(self, k_tiles_per_word: int = 1) -> int:
        """Activation words the feature map spans (``RillParams.k_tiles_per_word``)."""
        return -(-self.chunks // k_tiles_per_word) * self.in_h * self.in_w


@dataclass(frozen=True)
class VectorStage:
    """One scaling stage of the vector unit, as ``VECTOR_CONFIG`` sets it (all zero after reset).

    An input stage takes ``x`` to ``mbqm((x + offset) << ADD_LEFT_SHIFT)``; the output stage
    takes the sum to ``min(hi, max(lo, mbqm(sum) + offset))``. ``mbqm(v)`` is ``v`` times the Q31
    ``multiplier`` (int32), rounded as TFLite's ``SaturatingRoundingDoublingHighMul``, then
    shifted right by ``shift`` (0..31) rounding half away from zero (``RoundingDivideByPOT``).
    """
    multiplier: int = 0   #: int32
    shift: int = 0        #: a right shift, 0..31
    offset: int = 0       #: int16: an input's ``-zero_point``, the output's ``zero_point``
    lo: int = 0           #: int8, the output's clamp (inputs ignore it)
    hi: int = 0

    MAX_SHIFT: ClassVar[int] = 31

    @classmethod
    def from_fields(cls, fields: dict[str, int]) -> VectorStage:
        def signed(value, bits):
            return value - (1 << bits) * (value >> (bits - 1))
        return cls(signed(fields["multiplier"], 32), fields["shift"],
                   signed(fields["offset"], 16), signed(fields["lo"], 8), signed(fields["hi"], 8))

    def fields(self, slot: int) -> dict[str, int]:
        return {"slot": slot, "multiplier": self.multiplier & 0xFFFFFFFF, "shift": self.shift,
                "offset": self.offset & 0xFFFF, "lo": self.lo & 0xFF, "hi": self.hi & 0xFF}


def pack_qparam(bias: int, multiplier: int, shift: int, zero_point: int) -> bytes:
    """One requantization entry as ``LOAD_QPARAMS`` sends it."""
    return struct.pack(QPARAM_FORMAT, bias, multiplier, shift & 0xFF, zero_point)
