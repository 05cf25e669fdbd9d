"""The golden model: a bit-exact numpy interpreter of Rill's command byte stream.

It consumes the same bytes as the core and returns the same bytes, counters included (the
``cycles`` counter follows from the ISA's cycle costs; ``stalls`` is always 0 here because the model
never waits for a link). It is the project's oracle: RTL tests compare byte for byte with it.
"""

from __future__ import annotations

import struct

import numpy as np

from hw.cycles import CycleClock, load_word_bytes, store_act_words
from hw.isa import (
    COUNTER_NAMES,
    HEADER_BYTES,
    ISA_VERSION,
    LOAD_OPCODES,
    QPARAM_BYTES,
    QPARAM_FORMAT,
    RELU_CLAMP,
    RELU_ZERO_POINT,
    VECTOR_OPCODES,
    Config,
    ConvGeometry,
    MatmulFlags,
    Opcode,
    OutType,
    Precision,
    Rounding,
    Status,
    StoreFlags,
    VectorStage,
    decode_fields,
)
from hw.params import RillParams

from .requant import output_bytes, raw_bytes, requantize
from .tile_math import diagonal_tile, tile_psums
from .vector_ops import add_words, avgpool_words, mean_words, window_pool_words
from .vector_ops import check as vector_check

__all__ = ["GoldenCore", "response_header"]

_OPCODES = {op.value: op for op in Opcode}


def response_header(status: Status, opcode: int, index: int) -> bytes:
    return bytes([Status(status).value, opcode & 0xFF]) + (index & 0xFFFF).to_bytes(2, "little")


class GoldenCore:
    """Executes Rill instructions on numpy state.

    Feed it bytes in any split with :meth:`feed`; each instruction runs once all its bytes (header
    and load data) have arrived, and :meth:`feed` returns the response bytes produced.
    """

    def __init__(self, params: RillParams = RillParams()):
        self.params = params
        p = params
        self.config = Config()
        self.geometry = ConvGeometry()
        self.vector_stages = [VectorStage()] * 3
        self.act = np.zeros((p.act_depth, p.act_lanes), dtype=np.int8)
        self.weights = np.zeros((p.weight_depth, p.cols), dtype=np.uint8)
        self.acc = np.zeros((p.acc_depth, p.cols), dtype=np.int32)
        self.q_bias = np.zeros(p.qparam_depth, dtype=np.int64)
        self.q_multiplier = np.zeros(p.qparam_depth, dtype=np.int64)
        self.q_shift = np.zeros(p.qparam_depth, dtype=np.int64)   # raw byte 0..255
        self.q_zero_point = np.zeros(p.qparam_depth, dtype=np.int64)
        self.program = np.zeros((p.program_depth, HEADER_BYTES), dtype=np.uint8)
        self.program_tag = 0
        self.counters = dict.fromkeys(COUNTER_NAMES, 0)
        self._clock = CycleClock(params)
        self._pending = bytearray()
        self._running: list[bytes] = []   # headers a RUN has yet to execute

    # -- byte stream ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        self._pending += data
        out = bytearray()
        while True:
            # A running program's next header, else the link's; load data from the link.
            in_program = bool(self._running)
            header = self._running[0] if in_program else bytes(self._pending[:HEADER_BYTES])
            if len(header) < HEADER_BYTES:
                break
            start = 0 if in_program else HEADER_BYTES
            needed = start + self._data_bytes(header, in_program)
            if len(self._pending) < needed:
                break
            data = bytes(self._pending[start:needed])
            del self._pending[:needed]
            if in_program:
                self._running.pop(0)
            out += self._execute(header, data, in_program)
        return bytes(out)

    def _opcode(self, byte: int) -> Opcode | None:
        """The opcode a header byte names on this core (``LOAD_PROGRAM`` and ``RUN`` only with
        a program memory)."""
        opcode = _OPCODES.get(byte)
        if opcode in (Opcode.LOAD_PROGRAM, Opcode.RUN) and not self.params.program_depth:
            return None
        if opcode in (Opcode.CONV_GEOMETRY, Opcode.POOL) and not self.params.conv_addressing:
            return None
        if opcode in VECTOR_OPCODES and not self.params.vector_unit:
            return None
        return opcode

    def _data_bytes(self, header: bytes, in_program: bool) -> int:
        opcode = self._opcode(header[0])
        if opcode not in LOAD_OPCODES or in_program and opcode == Opcode.LOAD_PROGRAM:
            return 0
        fields = decode_fields(opcode, header[1:])
        if fields.get("lanes", 0) > self.params.values_per_word(self.config.int4):
            return 0   # refused for its length: no data follows
        return fields["count"] * load_word_bytes(self.params, opcode, self.config, fields)

    # -- one instruction ---------------------------------------------------------------------------

    def _execute(self, header: bytes, data: bytes, in_program: bool = False) -> bytes:
        opcode = self._opcode(header[0])
        index = self.counters["instructions"]
        fields = decode_fields(opcode, header[1:]) if opcode is not None else None
        if opcode is None:
            status = Status.UNKNOWN_OPCODE
        elif in_program and opcode in (Opcode.LOAD_PROGRAM, Opcode.RUN):
            status = Status.IN_PROGRAM   # its data, if any, is not drained
        else:
            status = self._check(opcode, fields)
        # The cost depends on the configuration in force when the instruction started.
        self._clock.step(self.config, header[0], fields, status)
        payload = b""
        if status == Status.OK:
            payload = self._run(opcode, fields, data)
        self.counters["instructions"] += 1
        self.counters["cycles"] = self._clock.cycles
        if status != Status.OK:
            return response_header(status, header[0], index)
        if payload is None:
            return b""
        return response_header(Status.OK, header[0], index) + payload

    def _check(self, opcode: Opcode, f: dict[str, int]) -> Status:
        p = self.params
        if opcode == Opcode.CONFIG:
            if (f["precision"] not in {x.value for x in Precision}
                    or f["rounding"] not in {x.value for x in Rounding}
                    or f["relu"] > (RELU_CLAMP if p.clamp else RELU_ZERO_POINT)
                    or f["out_type"] not in {x.value for x in OutType}):
                return Status.BAD_MODE
            return Status.OK
        if opcode == Opcode.RUN:
            if f["count"] == 0:
                return Status.BAD_LENGTH
            return Status.OUT_OF_RANGE if f["addr"] + f["count"] > p.program_depth else Status.OK
        if opcode in LOAD_OPCODES:
            depth = {Opcode.LOAD_WEIGHTS: p.weight_depth, Opcode.LOAD_ACTS: p.act_depth,
                     Opcode.LOAD_QPARAMS: p.qparam_depth,
                     Opcode.LOAD_BIASES: p.qparam_depth,
                     Opcode.LOAD_PROGRAM: p.program_depth}[opcode]
            if f["count"] == 0 or f.get("lanes", 0) > p.values_per_word(self.config.int4):
                return Status.BAD_LENGTH
            return Status.OUT_OF_RANGE if f["addr"] + f["count"] > depth else Status.OK
        if opcode in VECTOR_OPCODES:
            return vector_check(p, opcode, f, self.geometry)
        if opcode == Opcode.CONV_GEOMETRY:
            if any(f[name] == 0 for name in ConvGeometry.NONZERO):
                return Status.BAD_LENGTH
            return Status.OK
        if opcode == Opcode.MATMUL:
            known = MatmulFlags.ACCUMULATE.value | (
                MatmulFlags.CONV.value | MatmulFlags.DEPTHWISE.value if p.conv_addressing else 0)
            conv = bool(f["flags"] & MatmulFlags.CONV.value)
            depthwise = bool(f["flags"] & MatmulFlags.DEPTHWISE.value)
            if f["flags"] & ~known or depthwise and not conv:
                return Status.BAD_MODE
            m, kt, nt = f["m"], f["k_tiles"], f["n_tiles"]
            g = self.geometry
            walked = ((kt, nt) == (g.kernel, g.chunks) if depthwise else kt == g.k_tiles)
            if m == 0 or kt == 0 or nt == 0 or conv and not walked:
                return Status.BAD_LENGTH
            int4 = self.config.int4
            act_words = (self.geometry.words(p.k_tiles_per_word(int4)) if conv
                         else p.act_words(int4, kt) * m)
            if (f["act_addr"] + act_words > p.act_depth
                    or f["weight_addr"] + kt * nt * (1 if depthwise else p.rows)
                    > p.weight_depth
                    or f["acc_addr"] + nt * m > p.acc_depth):
                return Status.OUT_OF_RANGE
            return Status.OK
        if opcode == Opcode.STORE:
            flags = f["flags"]
            to_acts = bool(flags & StoreFlags.TO_ACTS.value)
            known = StoreFlags.RAW.value | (
                StoreFlags.TO_ACTS.value | StoreFlags.ACTS_INT4.value if p.store_to_acts else 0) \
                | (StoreFlags.WIDE.value if p.store_lanes > 1 else 0)
            wide = bool(flags & StoreFlags.WIDE.value)
            if (flags & ~known or (flags & StoreFlags.ACTS_INT4.value and not to_acts)
                    or wide and (not to_acts or f["q_addr"] % p.store_lanes)
                    or (to_acts and (flags & StoreFlags.RAW.value
                                     or self.config.out_type == OutType.UINT8))):
                return Status.BAD_MODE
            m, nt, last = f["m"], f["n_tiles"], f["last_cols"]
            if m == 0 or nt == 0 or last == 0 or last > p.cols:
                return Status.BAD_LENGTH
            n = (nt - 1) * p.cols + last
            int4 = bool(flags & StoreFlags.ACTS_INT4.value)
            if (f["acc_addr"] + nt * m > p.acc_depth
                    or f["q_addr"] + n > p.qparam_depth
                    or to_acts and f["act_addr"] + store_act_words(p, m, n, int4) > p.act_depth):
                return Status.OUT_OF_RANGE
            return Status.OK
        return Status.OK

    def _run(self, opcode: Opcode, f: dict[str, int], data: bytes) -> bytes | None:
        """Apply an instruction that passed its checks; returns its payload (None: no response)."""
        p = self.params
        if opcode == Opcode.CONFIG:
            self.config = Config.from_fields(f)
            return None
        if opcode == Opcode.LOAD_WEIGHTS:
            words = np.frombuffer(data, dtype=np.uint8).reshape(f["count"], p.cols)
            self.weights[f["addr"]:f["addr"] + f["count"]] = words
            return None
        if opcode == Opcode.LOAD_ACTS:
            lanes = load_word_bytes(p, opcode, self.config, f)
            rows = slice(f["addr"], f["addr"] + f["count"])
            self.act[rows, :lanes] = np.frombuffer(data, dtype=np.int8).reshape(-1, lanes)
            if p.values_per_word(self.config.int4) == p.rows:
                self.act[rows, p.rows:] = 0
            return None
        if opcode == Opcode.LOAD_QPARAMS:
            for i in range(f["count"]):
                bias, mult, shift, zp = struct.unpack_from(QPARAM_FORMAT, data, i * QPARAM_BYTES)
                ch = f["addr"] + i
                self.q_bias[ch], self.q_multiplier[ch] = bias, mult
                self.q_shift[ch], self.q_zero_point[ch] = shift, zp
            return None
        if opcode == Opcode.LOAD_BIASES:
            channels = slice(f["addr"], f["addr"] + f["count"])
            self.q_bias[channels] = np.frombuffer(data, dtype="<i4")
            self.q_multiplier[channels] = int.from_bytes(
                f["multiplier"].to_bytes(4, "little"), "little", signed=True)
            self.q_shift[channels] = f["shift"]
            self.q_zero_point[channels] = int.from_bytes(
                f["zero_point"].to_bytes(2, "little"), "little", signed=True)
            return None
        if opcode == Opcode.LOAD_PROGRAM:
            words = np.frombuffer(data, dtype=np.uint8).reshape(f["count"], HEADER_BYTES)
            self.program[f["addr"]:f["addr"] + f["count"]] = words
            self.program_tag = f["tag"]
            return None
        if opcode == Opcode.RUN:
            self._running = [bytes(word) for word in
                             self.program[f["addr"]:f["addr"] + f["count"]]]
            return None
        if opcode == Opcode.CONV_GEOMETRY:
            self.geometry = ConvGeometry.from_fields(f)
            return None
        if opcode == Opcode.MATMUL:
            self._matmul(**f)
            return None
        if opcode == Opcode.STORE:
            return self._store(**f)
        if opcode == Opcode.READ_COUNTERS:
            return b"".join((self.counters[name] & 0xFFFFFFFF).to_bytes(4, "little")
                            for name in COUNTER_NAMES)
        if opcode == Opcode.SYNC:
            return f["tag"].to_bytes(2, "little")
        if opcode == Opcode.INFO:
            return p.to_info_bytes(ISA_VERSION) + self.program_tag.to_bytes(2, "little")
        return self._vector(opcode, f)

    def _vector(self, opcode: Opcode, f: dict[str, int]) -> bytes | None:
        if opcode == Opcode.VECTOR_CONFIG:
            self.vector_stages[f["slot"]] = VectorStage.from_fields(f)
            return None
        if opcode == Opcode.READ_ACTS:
            return self.act[f["addr"]:f["addr"] + f["count"]].tobytes()
        if opcode == Opcode.ADD:
            words, lanes = f["words"], f["lanes"]
            a = self.act[f["a_addr"]:f["a_addr"] + words, :lanes]
            b = self.act[f["b_addr"]:f["b_addr"] + words, :lanes]
            self.act[f["out_addr"]:f["out_addr"] + words, :lanes] = add_words(
                a, b, self.vector_stages)
            return None
        if opcode in (Opcode.AVGPOOL, Opcode.MEAN):
            groups, pixels = f["groups"], f["pixels"]
            blocks = self.act[f["act_addr"]:f["act_addr"] + groups * pixels]
            blocks = blocks.reshape(groups, pixels, -1)
            self.act[f["out_addr"]:f["out_addr"] + groups] = (
                avgpool_words(blocks, pixels, f["reciprocal"], f["shift"])
                if opcode == Opcode.AVGPOOL else mean_words(blocks, self.vector_stages))
            return None
        if opcode == Opcode.POOL:
            g, groups, out_h = self.geometry, f["groups"], f["out_h"]
            maps = self.act[f["act_addr"]:f["act_addr"] + groups * g.in_h * g.in_w]
            pooled = window_pool_words(maps.reshape(groups, g.in_h, g.in_w, -1), g, out_h,
                                       bool(f["average"]), f["reciprocal"], f["shift"],
                                       self.vector_stages[2])
            self.act[f["out_addr"]:f["out_addr"] + groups * out_h * g.out_w] = \
                pooled.reshape(-1, self.params.act_lanes)
            return None
        raise AssertionError(opcode)

    def _matmul(self, act_addr, weight_addr, acc_addr, m, k_tiles, n_tiles, flags):
        p, int4 = self.params, self.config.int4
        accumulate = bool(flags & MatmulFlags.ACCUMULATE.value)
        per_word = p.k_tiles_per_word(int4)
        if flags & MatmulFlags.CONV.value:
            patches = self._conv_patches(act_addr, m)
        for nt in range(n_tiles):
            rows = slice(acc_addr + nt * m, acc_addr + (nt + 1) * m)
            total = (self.acc[rows].astype(np.int64) if accumulate
                     else np.zeros((m, p.cols), np.int64))
            for kt in range(k_tiles):
                if flags & MatmulFlags.DEPTHWISE.value:   # chunk nt at kernel offset kt
                    acts = patches[kt * self.geometry.chunks + nt]
                    weights = diagonal_tile(p, self.weights[weight_addr + nt * k_tiles + kt])
                else:
                    tile = weight_addr + (nt * k_tiles + kt) * p.rows
                    weights = self.weights[tile:tile + p.rows]
                    if flags & MatmulFlags.CONV.value:
                        acts = patches[kt]
                    else:
                        word = act_addr + kt // per_word * m
                        acts = self._chunk(self.act[word:word + m], kt % per_word)
                total += tile_psums(p, acts, weights, int4)
            # The accumulators are int32 registers: sums wrap, as they do in the RTL.
            self.acc[rows] = (total & 0xFFFFFFFF).astype(np.uint32).view(np.int32)
            self.counters["busy"] += k_tiles * m

    def _conv_patches(self, act_addr: int, m: int) -> np.ndarray:
        """The activation words a conv MATMUL of ``m`` rows reads, ``(k_tiles, m, lanes)``:
        K tile ``kt`` is channel chunk ``kt % chunks`` at kernel offset
        ``divmod(kt // chunks, kernel_w)`` (:class:`hw.isa.ConvGeometry`); pixels outside the
        map read the zero point in every lane."""
        g, per_word = self.geometry, self.params.k_tiles_per_word(self.config.int4)
        kt, i = np.arange(g.k_tiles)[:, None], np.arange(m)[None, :]
        cc, offset = kt % g.chunks, kt // g.chunks
        dy, dx = offset // g.kernel_w, offset % g.kernel_w
        iy = (g.first_row + i // g.out_w) * g.stride + dy - g.pad_top
        ix = (i % g.out_w) * g.stride + dx - g.pad_left
        inside = (iy >= 0) & (iy < g.in_h) & (ix >= 0) & (ix < g.in_w)
        words = act_addr + cc // per_word * g.in_h * g.in_w + iy * g.in_w + ix
        patches = np.stack([self._chunk(self.act[np.where(inside[t], words[t], 0)],
                                        t % g.chunks % per_word) for t in range(g.k_tiles)])
        patches[~inside] = g.zero_point
        return patches

    def _chunk(self, words: np.ndarray, half: int) -> np.ndarray:
        """Activation words as the array gets them for a K tile in chunk ``half`` of its word:
        a packed INT8 word's high half moves into the low lanes, which INT8 reads."""
        return np.roll(words, -half * self.params.rows, axis=1) if half else words

    def _store(self, acc_addr, m, n_tiles, last_cols, q_addr, flags, act_addr) -> bytes | None:
        p = self.params
        n = (n_tiles - 1) * p.cols + last_cols
        cols = np.arange(n)
        rows = acc_addr + (cols // p.cols)[None, :] * m + np.arange(m)[:, None]
        acc = self.acc[rows, (cols % p.cols)[None, :]]
        ch = q_addr + cols
        if flags & StoreFlags.RAW.value:
            return raw_bytes(acc, self.q_bias[ch][None, :]).tobytes()
        values = requantize(acc, self.q_bias[ch], self.q_multiplier[ch], self.q_shift[ch],
                            self.q_zero_point[ch], rounding=self.config.rounding,
                            relu=self.config.relu, out_type=self.config.out_type,
                            clamp=self.config.clamp)
        if flags & StoreFlags.TO_ACTS.value:
            per_word = p.values_per_word(bool(flags & StoreFlags.ACTS_INT4.value))
            words = act_addr + (cols // per_word)[None, :] * m + np.arange(m)[:, None]
            self.act[words, (cols % per_word)[None, :]] = values.astype(np.int8)
            return None
        return output_bytes(values, self.config.out_type).tobytes()
