"""The one description of a Rill core's shape, shared by gateware, golden model and driver.

Every width, depth and derived figure is computed here; nothing else restates them. A device reports
its params (``INFO``) and the driver refuses to talk to a device whose params differ from its own.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["RillParams", "ParamsError"]


class ParamsError(ValueError):
    """An impossible core shape (an array below 2x2, an SRAM deeper than 16-bit addresses)."""


# Addresses and counts travel in 16-bit ISA fields (see hw/isa.py).
_MAX_DEPTH = 1 << 16


def _addr_width(depth: int) -> int:
    return max(1, (depth - 1).bit_length())


@dataclass(frozen=True)
class RillParams:
    """Shape of one Rill core.

    Parameters
    ----------
    rows : int
        Array rows: the K depth of one weight tile in INT8 mode (twice that in INT4 mode).
    cols : int
        Array columns: the N width of one weight tile (output channels per tile).
    act_depth : int
        Activation SRAM words. One word holds ``2 * rows`` int8 lanes (one K chunk of one row of A).
    weight_depth : int
        Weight SRAM words. One word is one array row of weights: ``cols`` bytes.
    acc_depth : int
        Accumulator rows. One row holds ``cols`` int32 accumulators (one bank per column).
    qparam_depth : int
        Requantization parameter entries, one per output channel.
    serial_requant : bool
        Requantize with :class:`hw.requant_serial.SerialRequantUnit`, one output every
        :data:`hw.cycles.SERIAL_REQUANT_CYCLES` cycles in about a quarter of the pipelined unit's
        logic, instead of the pipelined :class:`hw.requant.RequantUnit` (one per cycle). For parts
        where logic is scarcer than time: a serial link takes ~100 cycles per byte anyway.
        Cycle costs follow (``hw.cycles.cycle_cost``); the device reports it in ``INFO``.
    deep_pipeline : bool
        Pipeline registers for fast parts (ECP5), at the cost of flip-flops, which on the iCE40
        UP5K each take a logic cell (off there): the accumulator banks' read data registered
        before anything uses it (rows are read a cycle earlier to match), so a block RAM's
        clock-to-out (~5.8 ns on ECP5) ends in a flip-flop, at one more cycle per STORE
        (``hw.cycles.acc_read_latency``); and three pipeline stages in each PE instead of one
        (``hw.pe.product_stages``). Reported in ``INFO``.
    store_to_acts : bool
        ``STORE`` can write its requantized outputs into the activation SRAM, laid out for the
        next layer's MATMUL (``hw.isa.StoreFlags.TO_ACTS``), so a model's layers chain on chip
        without a host round trip. Its range check and address walk cost a multiplier and a few
        counters; small parts leave it out. Reported in ``INFO``.
    program_depth : int
        Instruction headers the program memory holds (``hw.isa.Opcode.LOAD_PROGRAM``, ``RUN``):
        a resident model's whole schedule, run by one command per inference. 0 leaves the
        program memory out (``LOAD_PROGRAM`` and ``RUN`` are then unknown opcodes).
    conv_addressing : bool
        ``MATMUL`` can read a convolution's patches straight from a feature map in the
        activation SRAM (``hw.isa.MatmulFlags.CONV``, ``hw.isa.ConvGeometry``): kernel
        offsets, stride and zero-point padding addressed on the device, so no im2col crosses
        the link. Reported in ``INFO``; small parts leave it out.
    packed_int8_acts : bool
        INT8 activations fill whole activation words, two K chunks (``2 * rows`` values) a
        word, as INT4 ones do: a MATMUL's K tiles read a word's low half, then its high half
        (a mux in front of the array), so the activation SRAM holds as many INT8 values as INT4
        ones. Without it an INT8 word holds one chunk and its upper half is unused (the mux
        costs ``8 * rows`` logic cells that the smallest parts do not have). Reported in ``INFO``.
    vector_unit : bool
        The vector unit beside the array (:mod:`hw.vector_unit`): TFLite's int8 ADD and global
        average pooling over activation words, and ``READ_ACTS`` (``hw.isa.Opcode``), so
        residual adds and pooling run on chip. Needs :attr:`packed_int8_acts` (it works on
        whole words of ``2 * rows`` lanes). Reported in ``INFO``; small parts leave it out.
    store_lanes : int
        Requantizers side by side: a ``STORE TO_ACTS`` with ``hw.isa.StoreFlags.WIDE`` takes
        this many columns of a row a cycle (stores to the host go a byte a cycle, the link's
        pace). Each is a pipelined requantizer (a 32x32 multiplier); the qparam entries are
        banked by lane. Divides ``cols`` and an activation word's lanes; needs
        :attr:`store_to_acts` and the pipelined requantizer. Reported in ``INFO``.
    add_lanes : int
        The vector unit's ADD datapaths side by side: an ``ADD`` takes this many lanes of a word
        a cycle (each datapath three 32x32 multipliers). Divides an activation word's
        ``2 * rows`` lanes; needs :attr:`vector_unit`. Reported in ``INFO``.
    clamp : bool
        The requantizer clamps to a range ``CONFIG`` sets (``hw.isa.Config.clamp``), so a
        layer's fused RELU6 or RELU_N1_TO_1 runs on the device and its output can stay on chip.
        Reported in ``INFO``; the smallest parts leave it out (a CONFIG asking for it is then
        refused, ``BAD_MODE``).
    """

    rows: int = 8
    cols: int = 8
    act_depth: int = 1024
    weight_depth: int = 2048
    acc_depth: int = 1024
    qparam_depth: int = 256
    serial_requant: bool = False
    deep_pipeline: bool = True
    store_to_acts: bool = True
    program_depth: int = 256
    conv_addressing: bool = True
    packed_int8_acts: bool = True
    vector_unit: bool = True
    clamp: bool = True
    store_lanes: int = 1
    add_lanes: int = 1

    def __post_init__(self):
        if self.rows < 2 or self.cols < 2:
            raise ParamsError(f"the array must be at least 2x2, not {self.rows}x{self.cols}")
        if self.rows > 255 or self.cols > 255:
            raise ParamsError("rows and cols must fit in a byte (INFO reports them as u8)")
        if not 0 <= self.program_depth < _MAX_DEPTH:
            raise ParamsError(f"program_depth={self.program_depth} must be between 0 and "
                              f"{_MAX_DEPTH - 1}")
        for name in ("act_depth", "weight_depth", "acc_depth", "qparam_depth"):
            depth = getattr(self, name)
            if not 1 <= depth <= _MAX_DEPTH:
                raise ParamsError(f"{name}={depth} must be between 1 and {_MAX_DEPTH} "
                                  f"(ISA address fields are 16 bits)")
        if self.vector_unit and not self.packed_int8_acts:
            raise ParamsError("the vector unit works on packed activation words: "
                              "vector_unit needs packed_int8_acts")
        if self.weight_depth < self.rows:
            raise ParamsError("weight_depth must hold at least one weight tile (rows words)")
        lanes = self.store_lanes
        if lanes < 1 or lanes & (lanes - 1) or lanes > 255:
            raise ParamsError(f"store_lanes={lanes} must be a power of two (at most 128)")
        if lanes > 1 and (self.cols % lanes or self.values_per_word(False) % lanes
                          or self.values_per_word(True) % lanes):
            raise ParamsError(f"store_lanes={lanes} must divide cols={self.cols} and an "
                              f"activation word's {self.values_per_word(False)} values")
        if lanes > 1 and (self.serial_requant or not self.store_to_acts):
            raise ParamsError("store_lanes > 1 needs store_to_acts and the pipelined requantizer")
        add = self.add_lanes
        if add < 1 or add & (add - 1) or (2 * self.rows) % add:
            raise ParamsError(f"add_lanes={add} must be a power of two dividing an activation "
                              f"word's {2 * self.rows} lanes")
        if add > 1 and not self.vector_unit:
            raise ParamsError("add_lanes > 1 needs the vector unit")
        if self.qparam_depth % lanes:
            raise ParamsError(f"qparam_depth={self.qparam_depth} must be a multiple of "
                              f"store_lanes={lanes} (its entries are banked by lane)")

    # -- derived widths ------------------------------------------------------------------------

    @property
    def act_lanes(self) -> int:
        """int8 lanes per activation word: ``2 * rows`` (:meth:`values_per_word` are used)."""
        return 2 * self.rows

    @property
    def product_width(self) -> int:
        """Signed width of one PE's contribution (INT8: a*w; INT4: a0*w0 + a1*w1, smaller)."""
        return (128 * 128).bit_length() + 1

    @property
    def psum_width(self) -> int:
        """Signed width of a column's partial sum at the bottom of the array (never overflows)."""
        return (self.rows * 128 * 128).bit_length() + 1

    @property
    def acc_width(self) -> int:
        return 32

    # -- register widths ---------------------------------------------------------------------
    # The ISA's fields are 16 bits, but an instruction only executes once it passed its range
    # checks (hw/checks.py), so the registers that execute it need only hold what fits the SRAMs.
    # On a small part that is most of the sequencer's flip-flops and adders.

    @property
    def act_addr_width(self) -> int:
        return _addr_width(self.act_depth)

    @property
    def weight_addr_width(self) -> int:
        return _addr_width(self.weight_depth)

    @property
    def acc_addr_width(self) -> int:
        return _addr_width(self.acc_depth)

    @property
    def qparam_addr_width(self) -> int:
        return _addr_width(self.qparam_depth)

    @property
    def program_addr_width(self) -> int:
        return _addr_width(max(self.program_depth, 1))

    @property
    def load_addr_width(self) -> int:
        """A load's word address, in whichever SRAM it fills."""
        return max(self.act_addr_width, self.weight_addr_width, self.qparam_addr_width,
                   self.program_addr_width)

    @property
    def matmul_m_width(self) -> int:
        """MATMUL's rows per tile: ``act_addr + k_tiles * m <= act_depth`` and
        ``acc_addr + n_tiles * m <= acc_depth`` with ``k_tiles, n_tiles >= 1``."""
        return min(self.act_depth, self.acc_depth).bit_length()

    @property
    def tile_cycles_width(self) -> int:
        """Cycles per weight tile, ``max(m, rows, cols)`` (``hw.cycles.matmul_tile_cycles``)."""
        return max(min(self.act_depth, self.acc_depth), self.rows, self.cols).bit_length()

    @property
    def matmul_tiles_width(self) -> int:
        """MATMUL's weight tiles, ``k_tiles * n_tiles``: ``rows`` words each, in the weight SRAM."""
        return (self.weight_depth // self.rows).bit_length()

    @property
    def store_m_width(self) -> int:
        """STORE's rows: ``acc_addr + n_tiles * m <= acc_depth`` with ``n_tiles >= 1``."""
        return self.acc_depth.bit_length()

    # -- derived figures -----------------------------------------------------------------------

    def k_per_tile(self, int4: bool) -> int:
        """K elements one weight tile covers: each PE takes two 4-bit weights per cycle in INT4."""
        return 2 * self.rows if int4 else self.rows

    def peak_macs_per_cycle(self, int4: bool) -> int:
        return self.k_per_tile(int4) * self.cols

    def weight_capacity(self, int4: bool) -> int:
        """Weights the weight SRAM holds: ``cols`` bytes a word, two 4-bit weights a byte."""
        return self.weight_depth * self.cols * (2 if int4 else 1)

    def values_per_word(self, int4: bool) -> int:
        """Activation values one word holds: ``2 * rows``, or ``rows`` for INT8 without
        :attr:`packed_int8_acts`. A matrix's value ``k`` of row ``r`` lies in lane
        ``k % values_per_word`` of word ``(k // values_per_word) * m + r``."""
        return 2 * self.rows if int4 or self.packed_int8_acts else self.rows

    def k_tiles_per_word(self, int4: bool) -> int:
        """K tiles (chunks of :meth:`k_per_tile` values) one activation word holds: 2 for
        packed INT8, else 1."""
        return self.values_per_word(int4) // self.k_per_tile(int4)

    def act_words(self, int4: bool, k_tiles: int) -> int:
        """Activation words one row of ``k_tiles`` K tiles takes."""
        return -(-k_tiles // self.k_tiles_per_word(int4))

    def act_capacity(self, int4: bool) -> int:
        """Activation values the activation SRAM holds."""
        return self.act_depth * self.values_per_word(int4)

    @property
    def peak_macs_int8(self) -> int:
        return self.peak_macs_per_cycle(False)

    @property
    def peak_macs_int4(self) -> int:
        return self.peak_macs_per_cycle(True)

    # -- wire form (the INFO payload) ----------------------------------------------------------

    # A three-byte magic leaves room for the lanes in the 20 bytes INFO has had since ISA v1: a
    # byte more in the response register costs the full iCE40 some 28 logic cells. The lanes
    # byte holds log2 of the store lanes (low nibble) and of the ADD lanes (high nibble).
    _INFO_FORMAT = "<3sBBBBBHHHHH"
    INFO_MAGIC = b"RIL"

    def to_info_bytes(self, isa_version: int) -> bytes:
        """The ``INFO`` payload's params: magic, ISA version, rows, cols, feature bits, lanes,
        depths
        (the device appends its program tag, ``hw.isa.INFO_BYTES`` in all)."""
        # bit 0: INT4 (W4A8) mode present; bit 1: serial requantizer; bit 2: deep pipeline;
        # bit 3: STORE to the activation SRAM; bit 4: convolutions addressed on the device;
        # bit 5: INT8 activations packed two chunks a word; bit 6: the vector unit; bit 7: the
        # requantizer's programmable clamp
        features = (0b1 | self.serial_requant << 1 | self.deep_pipeline << 2
                    | self.store_to_acts << 3 | self.conv_addressing << 4
                    | self.packed_int8_acts << 5 | self.vector_unit << 6 | self.clamp << 7)
        return struct.pack(self._INFO_FORMAT, self.INFO_MAGIC, isa_version, self.rows, self.cols,
                           features, _log2(self.store_lanes) | _log2(self.add_lanes) << 4,
                           self.act_depth % _MAX_DEPTH,
                           self.weight_depth % _MAX_DEPTH, self.acc_depth % _MAX_DEPTH,
                           self.qparam_depth % _MAX_DEPTH, self.program_depth)

    @classmethod
    def from_info_bytes(cls, payload: bytes) -> tuple[RillParams, int]:
        """Parse an ``INFO`` payload's params (what follows them is ignored); returns
        ``(params, isa_version)``."""
        size = struct.calcsize(cls._INFO_FORMAT)
        if len(payload) < size:
            raise ParamsError(f"INFO payload is {len(payload)} bytes, expected at least {size}")
        magic, version, rows, cols, features, lanes, act, weight, acc, qparam, program = \
            struct.unpack(cls._INFO_FORMAT, payload[:size])
        if magic != cls.INFO_MAGIC:
            raise ParamsError(f"INFO payload does not start with {cls.INFO_MAGIC!r}: {magic!r}")
        # A depth of 65536 is reported as 0 (it does not fit in u16).
        depth = [d or _MAX_DEPTH for d in (act, weight, acc, qparam)]
        return cls(rows, cols, *depth, serial_requant=bool(features & 0b10),
                   deep_pipeline=bool(features & 0b100),
                   store_to_acts=bool(features & 0b1000), program_depth=program,
                   conv_addressing=bool(features & 0b10000),
                   packed_int8_acts=bool(features & 0b100000),
                   vector_unit=bool(features & 0b1000000),
                   clamp=bool(features & 0b10000000), **_lanes_from_info(lanes, version)), version


#: The first ISA version whose INFO lanes byte holds log2 nibbles (before it, the store lanes).
_INFO_LANES_LOG2_SINCE = 7


def _log2(power_of_two: int) -> int:
    return power_of_two.bit_length() - 1


def _lanes_from_info(lanes: int, version: int) -> dict[str, int]:
    """The lanes byte as params; an older device's as it meant then, so that the driver can
    name the version it speaks instead of failing on params it never had."""
    if version < _INFO_LANES_LOG2_SINCE:
        return {"store_lanes": lanes, "add_lanes": 1}
    return {"store_lanes": 1 << (lanes & 0xF), "add_lanes": 1 << (lanes >> 4)}
