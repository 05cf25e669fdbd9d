"""Building Rill command streams: one instruction at a time, or a whole on-chip GEMM.

The compiler (tiling whole models, scheduling) builds on this; tests and the benchmark use
:func:`gemm_program` directly for GEMMs that fit in the SRAM tiles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hw import cycles, isa
from hw.isa import Config, MatmulFlags, Opcode, OutType, Precision, Rounding, StoreFlags
from hw.params import RillParams

from .vector_ops import pool_reciprocal

__all__ = ["Program", "GemmLayout", "gemm_program", "pack_weight_tiles", "pack_diagonal_tiles",
           "pack_act_words", "qparams_shared", "qparam_wire_bytes", "compulsory_bytes"]


@dataclass
class Program:
    """A command byte stream under construction, with what it will send back when all goes well."""
    params: RillParams
    config: Config = field(default_factory=Config)
    chunks: list[bytes] = field(default_factory=list)
    response_bytes: int = 0
    #: Byte offset just past each STORE or READ_ACTS: where the device can start sending
    #: outputs.
    store_ends: list[int] = field(default_factory=list)
    size: int = 0
    #: The headers each chunk executes: its own, or a RUN's and those of the instructions it runs.
    executes: list[tuple[bytes, ...]] = field(default_factory=list)

    def __post_init__(self):
        self.clock = cycles.CycleClock(self.params)

    @property
    def predicted_cycles(self) -> int:
        """Working cycles the program takes (the device's ``cycles`` counter delta)."""
        return self.clock.cycles

    def _add(self, opcode: Opcode, data: bytes = b"", response: int = 0, **fields):
        header = isa.encode(opcode, **fields)
        self._append(header + data, (header,))
        self.response_bytes += response

    def _append(self, chunk: bytes, executes: tuple[bytes, ...]):
        """Append ``chunk`` (a header and its load data, or a RUN and its instructions' data),
        which executes the headers ``executes``, and time them."""
        self.chunks.append(chunk)
        self.executes.append(executes)
        self.size += len(chunk)
        for header in executes:
            opcode = isa.Opcode(header[0])
            fields = isa.decode_fields(opcode, header[1:isa.HEADER_BYTES])
            self.clock.step(self.config, opcode.value, fields, isa.Status.OK)
            if opcode == Opcode.CONFIG:
                self.config = isa.Config.from_fields(fields)
            sends = (opcode == Opcode.READ_ACTS or opcode == Opcode.STORE
                     and not fields["flags"] & StoreFlags.TO_ACTS.value)
            if sends and self.store_ends[-1:] != [self.size]:
                self.store_ends.append(self.size)

    def append_refused(self, command: bytes, response: int = isa.RESPONSE_HEADER_BYTES):
        """A command the device refuses (tests of bad input): sent as is, not timed."""
        self.chunks.append(command)
        self.executes.append(())
        self.size += len(command)
        self.response_bytes += response

    def to_bytes(self) -> bytes:
        return b"".join(self.chunks)

    def frame_cuts(self) -> tuple[int, ...]:
        """Offsets a link may end a frame at: just past each STORE. A device runs a frame's
        commands only once all of it has arrived, so a frame that ends there lets the STORE's
        outputs start travelling back while the next frame travels in."""
        return tuple(self.store_ends)

    def extend(self, other: Program):
        """Append ``other``'s instructions (built from the reset state), timed after these."""
        for chunk, executes in zip(other.chunks, other.executes, strict=True):
            self._append(chunk, executes)
        self.response_bytes += other.response_bytes

    # -- programs in the device's program memory ---------------------------------------------------

    def headers(self) -> bytes:
        """Every instruction's header, without load data: what ``LOAD_PROGRAM`` stores."""
        return b"".join(chunk[:isa.HEADER_BYTES] for chunk in self.chunks)

    def load_into_program_memory(self, addr: int, tag: int) -> Program:
        """The ``LOAD_PROGRAM`` that stores these instructions' headers at ``addr``."""
        prog = Program(self.params)
        headers = self.headers()
        prog._add(Opcode.LOAD_PROGRAM, headers, addr=addr, count=len(self.chunks), tag=tag)
        return prog

    def as_run(self, addr: int) -> Program:
        """One ``RUN`` of these instructions from the program memory at ``addr`` (see
        :meth:`load_into_program_memory`), built from the reset state like this program: the
        RUN header and the instructions' load data, timed and answered as running them over
        the link is."""
        if any(chunk[0] in (Opcode.RUN.value, Opcode.LOAD_PROGRAM.value) for chunk in self.chunks):
            raise ValueError("a program in the program memory cannot RUN or LOAD_PROGRAM")
        call = Program(self.params)
        run = isa.encode(Opcode.RUN, addr=addr, count=len(self.chunks))
        data = b"".join(chunk[isa.HEADER_BYTES:] for chunk in self.chunks)
        call._append(run + data, (run, *(chunk[:isa.HEADER_BYTES] for chunk in self.chunks)))
        call.response_bytes = self.response_bytes
        return call

    # -- instructions -----------------------------------------------------------------------------

    def configure(self, config: Config):
        self._add(Opcode.CONFIG, **config.fields())
        self.config = config

    def load_weights(self, addr: int, words: np.ndarray):
        words = np.ascontiguousarray(words, dtype=np.uint8).reshape(-1, self.params.cols)
        self._add(Opcode.LOAD_WEIGHTS, words.tobytes(), addr=addr, count=len(words))

    def load_acts(self, addr: int, words: np.ndarray):
        """Activation words: ``values_per_word`` lanes each, or fewer (a narrow load, whose
        other lanes keep what they held)."""
        full = self.params.values_per_word(self.config.int4)
        words = np.ascontiguousarray(words, dtype=np.int8)
        lanes = words.shape[-1] if words.ndim == 2 and words.shape[-1] < full else full
        words = words.reshape(-1, lanes)
        self._add(Opcode.LOAD_ACTS, words.tobytes(), addr=addr, count=len(words),
                  lanes=0 if lanes == full else lanes)

    def load_qparams(self, addr: int, bias, multiplier, shift, zero_point):
        """Per-channel requantization entries; sent as ``LOAD_BIASES`` (4 bytes a channel instead
        of 12) when multiplier, shift and zero point are the same for every channel."""
        bias, multiplier, shift, zero_point = (np.asarray(v, dtype=np.int64).reshape(-1)
                                               for v in (bias, multiplier, shift, zero_point))
        if qparams_shared(multiplier, shift, zero_point):
            self._add(Opcode.LOAD_BIASES, bias.astype("<i4").tobytes(), addr=addr,
                      count=len(bias), multiplier=int(multiplier[0]) & 0xFFFFFFFF,
                      shift=int(shift[0]) & 0xFF, zero_point=int(zero_point[0]) & 0xFFFF)
            return
        entries = [isa.pack_qparam(int(b), int(mu), int(s), int(z))
                   for b, mu, s, z in zip(bias, multiplier, shift, zero_point, strict=True)]
        self._add(Opcode.LOAD_QPARAMS, b"".join(entries), addr=addr, count=len(entries))

    def matmul(self, act_addr: int, weight_addr: int, acc_addr: int, m: int, k_tiles: int,
               n_tiles: int, accumulate: bool = False, conv: bool = False,
               depthwise: bool = False):
        """``conv``: read the activations as a convolution's patches of the feature map at
        ``act_addr``, as the last :meth:`conv_geometry` describes; ``depthwise`` too: each
        output tile its own channel chunk (``MatmulFlags.DEPTHWISE``)."""
        flags = (MatmulFlags.ACCUMULATE.value if accumulate else 0) | \
            (MatmulFlags.CONV.value if conv or depthwise else 0) | \
            (MatmulFlags.DEPTHWISE.value if depthwise else 0)
        self._add(Opcode.MATMUL, act_addr=act_addr, weight_addr=weight_addr, acc_addr=acc_addr,
                  m=m, k_tiles=k_tiles, n_tiles=n_tiles, flags=flags)

    def conv_geometry(self, geometry: isa.ConvGeometry):
        self._add(Opcode.CONV_GEOMETRY, **geometry.fields())

    def store(self, acc_addr: int, m: int, n: int, q_addr: int, raw: bool = False,
              to_acts: int | None = None, acts_int4: bool = False, wide: bool | None = None):
        """Requantize ``m`` rows of ``n`` outputs and send them; with ``to_acts``, write them
        into the activation SRAM from that word instead, laid out for a next layer running
        INT4 (``acts_int4``) or INT8 (:data:`hw.isa.StoreFlags.TO_ACTS`), ``wide`` (by default
        wherever the core has store lanes and ``q_addr`` is a multiple of them:
        :data:`hw.isa.StoreFlags.WIDE`)."""
        cols, lanes = self.params.cols, self.params.store_lanes
        n_tiles = -(-n // cols)
        flags = StoreFlags.RAW.value if raw else 0
        response = isa.RESPONSE_HEADER_BYTES + m * n * (4 if raw else 1)
        if to_acts is not None:
            flags |= StoreFlags.TO_ACTS.value | (StoreFlags.ACTS_INT4.value if acts_int4 else 0)
            if wide if wide is not None else lanes > 1 and q_addr % lanes == 0:
                flags |= StoreFlags.WIDE.value
            response = 0
        self._add(Opcode.STORE, acc_addr=acc_addr, m=m, n_tiles=n_tiles,
                  last_cols=n - (n_tiles - 1) * cols, q_addr=q_addr, flags=flags,
                  act_addr=to_acts or 0, response=response)

    def vector_config(self, slot: int, stage: isa.VectorStage):
        self._add(Opcode.VECTOR_CONFIG, **stage.fields(slot))

    def add(self, a_addr: int, b_addr: int, out_addr: int, words: int,
            lanes: int | None = None):
        """TFLite's int8 ADD of two blocks of words, with the stages :meth:`vector_config` set:
        each word's first ``lanes`` lanes (default all)."""
        self._add(Opcode.ADD, a_addr=a_addr, b_addr=b_addr, out_addr=out_addr, words=words,
                  lanes=self.params.act_lanes if lanes is None else lanes)

    def avgpool(self, act_addr: int, out_addr: int, groups: int, pixels: int,
                constants: tuple[int, int] | None = None):
        """TFLite's rounded mean of each of ``groups`` blocks of ``pixels`` words (or, with
        ``constants``, that ``(reciprocal, shift)``'s quotient)."""
        reciprocal, shift = constants or pool_reciprocal(pixels)
        self._add(Opcode.AVGPOOL, act_addr=act_addr, out_addr=out_addr, groups=groups,
                  pixels=pixels, reciprocal=reciprocal, shift=shift)

    def mean(self, act_addr: int, out_addr: int, groups: int, pixels: int):
        """TFLite's MEAN of each of ``groups`` blocks of ``pixels`` words, with the stages
        :meth:`vector_config` set (``sw.vector_ops.mean_stages``)."""
        self._add(Opcode.MEAN, act_addr=act_addr, out_addr=out_addr, groups=groups,
                  pixels=pixels)

    def pool(self, act_addr: int, out_addr: int, groups: int, out_h: int,
             average: bool = False, constants: tuple[int, int] | None = None):
        """MAX_POOL_2D, or with ``average`` AVERAGE_POOL_2D (TFLite's rounded mean over the
        kernel's pixels, or with ``constants`` that ``(reciprocal, shift)``'s quotient), over
        the windows of the map :meth:`conv_geometry` set, ``groups`` blocks at ``act_addr``,
        ``out_h`` rows of them into the words from ``out_addr``; clamped to stage 2's range."""
        reciprocal, shift = (constants or pool_reciprocal(self.clock.geometry.kernel)) \
            if average else (0, 0)
        self._add(Opcode.POOL, act_addr=act_addr, out_addr=out_addr, groups=groups,
                  out_h=out_h, average=int(average), reciprocal=reciprocal, shift=shift)

    def read_acts(self, addr: int, count: int):
        self._add(Opcode.READ_ACTS, addr=addr, count=count,
                  response=isa.RESPONSE_HEADER_BYTES + count * self.params.act_lanes)

    def read_counters(self):
        self._add(Opcode.READ_COUNTERS, response=isa.RESPONSE_HEADER_BYTES + 16)

    def sync(self, tag: int = 0):
        self._add(Opcode.SYNC, tag=tag, response=isa.RESPONSE_HEADER_BYTES + 2)

    def info(self):
        self._add(Opcode.INFO, response=isa.RESPONSE_HEADER_BYTES + isa.INFO_BYTES)


def qparams_shared(multiplier, shift, zero_point) -> bool:
    """Whether one multiplier/shift/zero point serves every channel (so LOAD_BIASES applies)."""
    return all(len(np.unique(np.asarray(v))) == 1 for v in (multiplier, shift, zero_point))


def compulsory_bytes(m: int, k: int, n: int, int4: bool, out_width: int = 1) -> int:
    """What an ``m x k x n`` layer must move at least: its weights once (INT4: two a byte) with
    each output channel's int32 bias, its activations once and its outputs once."""
    weight_bytes = (k * n + 1) // 2 if int4 else k * n
    return weight_bytes + 4 * n + m * k + m * n * out_width


def qparam_wire_bytes(n: int, multiplier, shift, zero_point) -> int:
    """Data bytes :meth:`Program.load_qparams` sends for ``n`` channels."""
    return n * (4 if qparams_shared(multiplier, shift, zero_point) else isa.QPARAM_BYTES)


def pack_weight_tiles(params: RillParams, weights: np.ndarray, int4: bool) -> np.ndarray:
    """K x N integer weights -> weight SRAM words, tile ``j = nt * k_tiles + kt`` after tile j-1.

    Zero padding fills K and N up to whole tiles (a zero weight adds nothing). INT4 packs
    ``W[2r]`` in the low nibble and ``W[2r + 1]`` in the high nibble of row ``r``'s byte.
    """
    k, n = weights.shape
    kc, cols = params.k_per_tile(int4), params.cols
    k_tiles, n_tiles = -(-k // kc), -(-n // cols)
    padded = np.zeros((k_tiles * kc, n_tiles * cols), dtype=np.int64)
    padded[:k, :n] = weights
    if int4:
        if padded.min() < -8 or padded.max() > 7:
            raise ValueError("INT4 weights must lie in [-8, 7]")
        nibbles = padded & 0xF
        padded = nibbles[0::2] | (nibbles[1::2] << 4)
    elif padded.min() < -128 or padded.max() > 127:
        raise ValueError("INT8 weights must lie in [-128, 127]")
    rows = padded.astype(np.int64) & 0xFF
    # (k_tiles * rows, n_tiles * cols) -> tiles ordered nt-major, kt-minor.
    tiles = rows.reshape(k_tiles, params.rows, n_tiles, cols).transpose(2, 0, 1, 3)
    return tiles.reshape(-1, cols).astype(np.uint8)


def pack_diagonal_tiles(params: RillParams, weights: np.ndarray) -> np.ndarray:
    """K x N INT8 weights whose tiles are all diagonal (``K`` a multiple of ``rows``, weight
    ``[kt * rows + r, nt * cols + c]`` zero unless ``r == c``) -> a word per tile, in
    :func:`pack_weight_tiles`' order: tile ``(kt, nt)``'s byte ``c`` is its weight at row and
    column ``c``, as a depthwise MATMUL reads it (``MatmulFlags.DEPTHWISE``)."""
    k, n = weights.shape
    if params.rows != params.cols or k % params.rows:
        raise ValueError(f"diagonal tiles need a square array and whole K tiles, not K={k} on "
                         f"{params.rows}x{params.cols}")
    if weights.min() < -128 or weights.max() > 127:
        raise ValueError("INT8 weights must lie in [-128, 127]")
    side = params.cols
    n_tiles = -(-n // side)
    padded = np.zeros((k, n_tiles * side), np.int64)
    padded[:, :n] = weights
    tiles = padded.reshape(k // side, side, n_tiles, side).transpose(2, 0, 1, 3)
    diagonal = np.arange(side)
    words = tiles[:, :, diagonal, diagonal]
    if np.count_nonzero(tiles) != np.count_nonzero(words):
        raise ValueError("a weight tile has a value off its diagonal")
    return (words.reshape(-1, side) & 0xFF).astype(np.uint8)


def pack_act_words(params: RillParams, acts: np.ndarray, int4: bool) -> np.ndarray:
    """M x K int8 activations -> activation words: values ``[w * v, (w + 1) * v)`` of row ``m``
    in word ``w * M + m`` (``v = values_per_word``). A K below one word gives words of K lanes
    (a narrow load: the rest meet zero weights)."""
    m, k = acts.shape
    per_word = params.values_per_word(int4)
    if k < per_word:
        return np.ascontiguousarray(acts, dtype=np.int8)
    words = -(-k // per_word)
    padded = np.zeros((m, words * per_word), dtype=np.int8)
    padded[:, :k] = acts
    return padded.reshape(m, words, per_word).transpose(1, 0, 2).reshape(-1, per_word)


@dataclass(frozen=True)
class GemmLayout:
    """Where an on-chip GEMM's operands live in the SRAM tiles."""
    act_addr: int = 0
    weight_addr: int = 0
    acc_addr: int = 0
    q_addr: int = 0


def gemm_program(params: RillParams, acts: np.ndarray, weights: np.ndarray, *,
                 precision: Precision = Precision.INT8, rounding: Rounding = Rounding.ONNX,
                 relu: bool = False, out_type: OutType = OutType.INT8, qparams=None,
                 raw: bool = False, layout: GemmLayout = GemmLayout(),
                 counters: bool = True, clamp: tuple[int, int] | None = None) -> Program:
    """``acts`` (M x K int8) x ``weights`` (K x N) with the whole problem resident on chip.

    ``qparams`` is ``(bias, multiplier, shift, zero_point)``, each of length N.
    """
    config = Config(precision, rounding, relu, out_type, clamp)
    m, k = acts.shape
    n = weights.shape[1]
    prog = Program(params)
    prog.configure(config)
    if qparams is not None:
        prog.load_qparams(layout.q_addr, *qparams)
    prog.load_weights(layout.weight_addr, pack_weight_tiles(params, weights, config.int4))
    prog.load_acts(layout.act_addr, pack_act_words(params, acts, config.int4))
    kc = params.k_per_tile(config.int4)
    prog.matmul(layout.act_addr, layout.weight_addr, layout.acc_addr, m, -(-k // kc),
                -(-n // params.cols))
    prog.store(layout.acc_addr, m, n, layout.q_addr, raw=raw)
    if counters:
        prog.read_counters()
    return prog
