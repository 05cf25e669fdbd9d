"""Test programs for the core and the files the cocotb testbench (``core_tb.py``) reads.

The expected bytes always come from the golden model running the same programs in the same order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hw import isa
from hw.isa import Config, ConvGeometry, Opcode, OutType, Precision, Rounding
from hw.params import RillParams
from sw.conv import device_conv_weights, pack_feature_map
from sw.golden import GoldenCore
from sw.program import GemmLayout, Program, gemm_program, pack_act_words, pack_weight_tiles
from sw.qparams import random_qparams

from .vector_cases import bad_vector_commands, random_vector_program

__all__ = ["Expectation", "random_qparams", "random_gemm_program", "random_chain_program",
           "random_run_program", "random_conv_program", "random_vector_program",
           "bad_input_program",
           "write_cases", "counters_in", "expectations"]


@dataclass
class Expectation:
    name: str
    program: Program
    expected: bytes
    counter_offsets: list[int]     # where READ_COUNTERS payloads start in ``expected``


def random_activation(params: RillParams, rng: np.random.Generator,
                      out_type: OutType) -> dict:
    """A configuration's clamp: none, ReLU's, or, where the core has it, a programmable one
    with any bounds the fields hold (inside, across or past the output type's range, crossed)."""
    kind = int(rng.integers(0, 3 if params.clamp else 2))
    if kind < 2:
        return {"relu": bool(kind)}
    low = 0 if out_type == OutType.UINT8 else -128
    return {"relu": False, "clamp": tuple(int(v) for v in rng.integers(low, low + 256, 2))}


def random_gemm_program(params: RillParams, rng: np.random.Generator, *, max_m: int = 40,
                        max_k: int = 40, max_n: int = 20) -> Program:
    """One GEMM of a random shape (often not a multiple of the array), mode and layout."""
    precision = Precision(int(rng.integers(0, 2)))
    rounding = Rounding(int(rng.integers(0, 2)))
    out_type = OutType(int(rng.integers(0, 3)))
    activation, raw = random_activation(params, rng, out_type), bool(rng.random() < 0.25)
    kc = params.k_per_tile(precision == Precision.INT4)
    k, n = (int(rng.integers(1, x + 1)) for x in (max_k, max_n))
    n = min(n, params.qparam_depth)
    n_tiles = -(-n // params.cols)
    k = min(k, params.weight_depth // (n_tiles * params.rows) * kc)   # the weights fit
    k_tiles = -(-k // kc)
    row_words = params.act_words(precision == Precision.INT4, k_tiles)
    # As many activation rows as asked for, but no more than the SRAMs hold.
    m = int(rng.integers(1, min(max_m, params.act_depth // row_words,
                                params.acc_depth // n_tiles) + 1))
    # Random placement inside the SRAMs, still in range.
    layout = GemmLayout(
        act_addr=int(rng.integers(0, params.act_depth - row_words * m + 1)),
        weight_addr=int(rng.integers(0, params.weight_depth - k_tiles * n_tiles * params.rows + 1)),
        acc_addr=int(rng.integers(0, params.acc_depth - n_tiles * m + 1)),
        q_addr=int(rng.integers(0, params.qparam_depth - n + 1)))
    acts = rng.integers(-128, 128, (m, k))
    lo, hi = (-8, 8) if precision == Precision.INT4 else (-128, 128)
    weights = rng.integers(lo, hi, (k, n))
    return gemm_program(params, acts, weights, precision=precision, rounding=rounding,
                        out_type=out_type, raw=raw, layout=layout, **activation,
                        qparams=random_qparams(rng, n, rounding, k,
                                               per_channel=bool(rng.integers(0, 2))))


def random_chain_program(params: RillParams, rng: np.random.Generator, *, max_m: int = 12,
                         max_width: int = 24, counters: bool = True,
                         read_back: bool = True) -> Program:
    """Two to four random linear layers chained through the activation SRAM: each layer's
    STORE writes its outputs where the next layer's MATMUL reads them (``StoreFlags.TO_ACTS``),
    between two regions at random places; only the last layer's outputs come back. Precisions,
    rounding modes, clamps and output types are random per layer (the chained ones INT8 or
    INT4: the array reads signed lanes). With ``read_back`` and ``counters`` on a core with the
    vector unit, the second region's words come back too (``READ_ACTS``)."""
    count = int(rng.integers(2, 5))
    # Every layer's weights and entries must fit alone (INT8's tiles are the larger).
    while max_width > 1 and (-(-max_width // params.rows) * -(-max_width // params.cols)
                             * params.rows > params.weight_depth
                             or max_width > params.qparam_depth):
        max_width -= 1
    precisions = [Precision(int(rng.integers(0, 2))) for _ in range(count)]
    widths = [int(rng.integers(1, max_width + 1)) for _ in range(count + 1)]
    k_tiles = [-(-widths[i] // params.k_per_tile(precisions[i] == Precision.INT4))
               for i in range(count)]
    n_tiles = [-(-widths[i + 1] // params.cols) for i in range(count)]
    region = max(params.act_words(precisions[i] == Precision.INT4, k_tiles[i])
                 for i in range(count))   # words a row in either region
    m = int(rng.integers(1, max(1, min(max_m, params.act_depth // (2 * region),
                                       params.acc_depth // max(n_tiles))) + 1))
    half = params.act_depth // 2
    regions = [int(rng.integers(0, half - region * m + 1)),
               int(rng.integers(half, params.act_depth - region * m + 1))]
    weight_addr = q_addr = 0
    prog = Program(params)
    prog.configure(Config(precision=precisions[0]))   # LOAD_ACTS' word follows the precision
    acts = rng.integers(-128, 128, (m, widths[0]))
    prog.load_acts(regions[0], pack_act_words(params, acts, precisions[0] == Precision.INT4))
    for i, precision in enumerate(precisions):
        last = i == count - 1
        int4 = precision == Precision.INT4
        rounding = Rounding(int(rng.integers(0, 2)))
        out_type = OutType(int(rng.integers(0, 3))) if last else \
            (OutType.INT8, OutType.INT4)[int(rng.integers(0, 2))]
        prog.configure(Config(precision, rounding, out_type=out_type,
                              **random_activation(params, rng, out_type)))
        lo, hi = (-8, 8) if int4 else (-128, 128)
        weights = rng.integers(lo, hi, (widths[i], widths[i + 1]))
        words = pack_weight_tiles(params, weights, int4)
        if weight_addr + len(words) > params.weight_depth or \
                q_addr + widths[i + 1] > params.qparam_depth:
            weight_addr = q_addr = 0   # a small core: this layer's weights over the first's
        prog.load_weights(weight_addr, words)
        prog.load_qparams(q_addr, *random_qparams(rng, widths[i + 1], rounding, widths[i],
                                                  per_channel=bool(rng.integers(0, 2))))
        acc_addr = int(rng.integers(0, params.acc_depth - n_tiles[i] * m + 1))
        prog.matmul(regions[i % 2], weight_addr, acc_addr, m, k_tiles[i], n_tiles[i])
        prog.store(acc_addr, m, widths[i + 1], q_addr, raw=last and rng.random() < 0.2,
                   to_acts=None if last else regions[(i + 1) % 2],
                   acts_int4=not last and precisions[i + 1] == Precision.INT4)
        weight_addr += len(words)
        q_addr += widths[i + 1]
    if read_back and counters and params.vector_unit:
        # The second region as the stores left it, lanes past each row's values included.
        prog.read_acts(regions[1], region * m)
    if counters:
        prog.read_counters()
    return prog


def random_conv_program(params: RillParams, rng: np.random.Generator) -> Program:
    """One convolution addressed on the device: a random feature map, kernel (up to 5x5, or
    DS-CNN's 10x4), stride 1 or 2, padding, precision and first output row; raw or requantized
    outputs to the host; a third of them depthwise (``MatmulFlags.DEPTHWISE``: an output tile a
    channel chunk, with any weights in its tiles). Shrinks to fit small SRAMs."""
    int4 = bool(rng.integers(0, 2))
    depthwise = rng.random() < 1 / 3
    kpt, per_word = params.k_per_tile(int4), params.values_per_word(int4)
    for _ in range(100):
        c, h, w = int(rng.integers(1, 2 * kpt + 2)), int(rng.integers(1, 11)), \
            int(rng.integers(1, 11))
        kh, kw = (10, 4) if rng.random() < 0.1 else \
            (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        stride = int(rng.integers(1, 3))
        pads = [int(rng.integers(0, k)) for k in (kh, kw, kh, kw)]
        oh = (h + pads[0] + pads[2] - kh) // stride + 1
        ow = (w + pads[1] + pads[3] - kw) // stride + 1
        chunks, words = -(-c // kpt), -(-c // per_word) * h * w
        f = int(rng.integers((chunks - 1) * params.cols + 1, chunks * params.cols + 1)) \
            if depthwise else int(rng.integers(1, 2 * params.cols + 2))
        k_tiles, n_tiles = kh * kw * (1 if depthwise else chunks), -(-f // params.cols)
        if oh < 1 or ow < 1 or k_tiles > 255 or words > params.act_depth \
                or k_tiles * n_tiles * params.rows > params.weight_depth \
                or f > params.qparam_depth or n_tiles * ow > params.acc_depth:
            continue
        first_row = int(rng.integers(0, oh))
        rows = min(oh - first_row, params.acc_depth // (n_tiles * ow))
        break
    else:
        raise AssertionError(f"no convolution fits {params}")
    x = rng.integers(-128, 128, (c, h, w))
    filters = rng.integers(*((-8, 8) if int4 else (-128, 128)), (f, c, kh, kw))
    geometry = ConvGeometry(in_w=w, in_h=h, out_w=ow, kernel_h=kh, kernel_w=kw, stride=stride,
                            pad_top=pads[0], pad_left=pads[1], first_row=first_row,
                            zero_point=int(rng.integers(-128, 128)), chunks=chunks)
    rounding = Rounding(int(rng.integers(0, 2)))
    raw = rng.random() < 0.3
    prog = Program(params)
    out_type = OutType(int(rng.integers(0, 3)))
    prog.configure(Config(Precision.INT4 if int4 else Precision.INT8, rounding,
                          out_type=out_type, **random_activation(params, rng, out_type)))
    prog.load_qparams(0, *random_qparams(rng, f, rounding, kh * kw * c))
    weights = rng.integers(*((-8, 8) if int4 else (-128, 128)), (k_tiles * kpt, f)) \
        if depthwise else device_conv_weights(filters, kpt)
    prog.load_weights(0, pack_weight_tiles(params, weights, int4))
    act_addr = int(rng.integers(0, params.act_depth - words + 1))
    # Narrow when c < per_word: other lanes keep old values; or whole words, zero past them.
    fmap = pack_feature_map(params, x, int4)
    if fmap.shape[1] < per_word and rng.random() < 0.5:
        fmap = np.pad(fmap, ((0, 0), (0, per_word - fmap.shape[1])))
    prog.load_acts(act_addr, fmap)
    prog.conv_geometry(geometry)
    prog.matmul(act_addr, 0, 0, rows * ow, k_tiles, n_tiles, conv=True, depthwise=depthwise)
    prog.store(0, rows * ow, f, 0, raw=raw)
    prog.read_counters()
    return prog


def random_run_program(params: RillParams, rng: np.random.Generator) -> Program:
    """A random chain (:func:`random_chain_program`) stored in the program memory at a random
    place and run twice by ``RUN``, its load data following each RUN over the link."""
    chain = random_chain_program(params, rng, counters=False)
    addr = int(rng.integers(0, params.program_depth - len(chain.chunks) + 1))
    prog = Program(params)
    prog.extend(chain.load_into_program_memory(addr, tag=int(rng.integers(1, 1 << 16))))
    prog.extend(chain.as_run(addr))
    prog.extend(chain.as_run(addr))
    prog.info()   # the tag
    prog.read_counters()
    return prog


def bad_input_program(params: RillParams) -> Program:
    """Every error the decoder reports, each followed by proof that the core still answers."""
    prog = Program(params)
    prog.configure(Config())   # load word sizes depend on the precision
    word = params.values_per_word(False)   # INT8 activation values a word
    bad = [
        bytes([0x7F]) + bytes(isa.HEADER_BYTES - 1),
        *(isa.encode(Opcode.CONFIG, **{**Config().fields(), name: value})
          for name, value in (("precision", 3), ("rounding", 2), ("out_type", 3),
                              ("relu", isa.RELU_CLAMP + (1 if params.clamp else 0)))),
        isa.encode(Opcode.LOAD_WEIGHTS, addr=params.weight_depth - 1, count=2)
        + bytes(range(2 * params.cols)),
        isa.encode(Opcode.LOAD_ACTS, addr=0, count=0, lanes=0),
        isa.encode(Opcode.LOAD_ACTS, addr=0, count=1, lanes=word + 1),
        isa.encode(Opcode.LOAD_ACTS, addr=params.act_depth, count=1, lanes=0) + bytes(word),
        isa.encode(Opcode.LOAD_ACTS, addr=params.act_depth - 1, count=2, lanes=1) + bytes(2),
        isa.encode(Opcode.LOAD_QPARAMS, addr=params.qparam_depth - 1, count=3)
        + bytes(3 * isa.QPARAM_BYTES),
        isa.encode(Opcode.LOAD_BIASES, addr=params.qparam_depth - 2, count=5, multiplier=1,
                   shift=2, zero_point=3) + bytes(5 * 4),
        isa.encode(Opcode.LOAD_BIASES, addr=0, count=0, multiplier=1, shift=2, zero_point=3),
        isa.encode(Opcode.MATMUL, act_addr=0, weight_addr=0, acc_addr=0, m=1, k_tiles=1,
                   n_tiles=1, flags=0x10),
        isa.encode(Opcode.MATMUL, act_addr=0, weight_addr=0, acc_addr=0, m=1, k_tiles=0,
                   n_tiles=1, flags=0),
        isa.encode(Opcode.MATMUL, act_addr=params.act_depth - 3, weight_addr=0, acc_addr=0,
                   m=2, k_tiles=3, n_tiles=1, flags=0),
        isa.encode(Opcode.MATMUL, act_addr=0, weight_addr=params.weight_depth - params.rows,
                   acc_addr=0, m=1, k_tiles=1, n_tiles=2, flags=0),
        isa.encode(Opcode.MATMUL, act_addr=0, weight_addr=0, acc_addr=params.acc_depth - 1,
                   m=2, k_tiles=1, n_tiles=1, flags=0),
        isa.encode(Opcode.STORE, acc_addr=0, m=1, n_tiles=1, last_cols=params.cols + 1,
                   q_addr=0, flags=0, act_addr=0),
        isa.encode(Opcode.STORE, acc_addr=0, m=0, n_tiles=1, last_cols=1, q_addr=0, flags=0,
                   act_addr=0),
        isa.encode(Opcode.STORE, acc_addr=params.acc_depth - 1, m=1, n_tiles=2, last_cols=1,
                   q_addr=0, flags=0, act_addr=0),
        isa.encode(Opcode.STORE, acc_addr=0, m=1, n_tiles=1, last_cols=1,
                   q_addr=params.qparam_depth, flags=0, act_addr=0),
        isa.encode(Opcode.STORE, acc_addr=0, m=1, n_tiles=1, last_cols=1, q_addr=0, flags=0x08,
                   act_addr=0),   # WIDE without TO_ACTS
        isa.encode(Opcode.STORE, acc_addr=0, m=1, n_tiles=1, last_cols=1, q_addr=1, flags=0x0A,
                   act_addr=0),   # WIDE from an entry that is not a lane multiple
        # Fields far past any SRAM: the checks work on narrowed sums (hw/checks.py).
        isa.encode(Opcode.LOAD_WEIGHTS, addr=0xFFFF, count=1) + bytes(params.cols),
        isa.encode(Opcode.LOAD_ACTS, addr=0, count=0x8001, lanes=0)
        + bytes(0x8001 * word),
        isa.encode(Opcode.MATMUL, act_addr=0, weight_addr=0, acc_addr=0, m=0xFFFF, k_tiles=255,
                   n_tiles=255, flags=0),
        isa.encode(Opcode.MATMUL, act_addr=0, weight_addr=params.weight_depth - 1, acc_addr=0,
                   m=1, k_tiles=1, n_tiles=255, flags=0),
        isa.encode(Opcode.STORE, acc_addr=0, m=0x8000, n_tiles=2, last_cols=1, q_addr=0,
                   flags=0, act_addr=0),
        isa.encode(Opcode.STORE, acc_addr=0x8000, m=1, n_tiles=1, last_cols=1, q_addr=0,
                   flags=0, act_addr=0),
        isa.encode(Opcode.STORE, acc_addr=0, m=1, n_tiles=255, last_cols=1, q_addr=0xFF00,
                   flags=0, act_addr=0),
        # Into the activation SRAM: with RAW, INT4 layout without TO_ACTS, past the end.
        isa.encode(Opcode.STORE, acc_addr=0, m=1, n_tiles=1, last_cols=1, q_addr=0, flags=0x03,
                   act_addr=0),
        isa.encode(Opcode.STORE, acc_addr=0, m=1, n_tiles=1, last_cols=1, q_addr=0, flags=0x04,
                   act_addr=0),
        isa.encode(Opcode.STORE, acc_addr=0, m=2, n_tiles=1, last_cols=1, q_addr=0, flags=0x02,
                   act_addr=params.act_depth - 1),
        isa.encode(Opcode.STORE, acc_addr=0, m=1, n_tiles=word // params.cols + 1,
                   last_cols=params.cols, q_addr=0, flags=0x02, act_addr=params.act_depth - 1),
        isa.encode(Opcode.STORE, acc_addr=0, m=1, n_tiles=1, last_cols=1, q_addr=0, flags=0x06,
                   act_addr=0xFFFF),
    ]
    for command in bad:
        prog.append_refused(command)
        prog.sync(tag=len(prog.chunks))
    # A UINT8 output cannot go to the activation SRAM (the array reads signed lanes).
    prog.configure(Config(out_type=OutType.UINT8))
    prog.append_refused(isa.encode(Opcode.STORE, acc_addr=0, m=1, n_tiles=1, last_cols=1,
                                   q_addr=0, flags=0x02, act_addr=0))
    prog.configure(Config())
    prog.sync(tag=len(prog.chunks))
    _bad_programs(params, prog)
    _bad_convolutions(params, prog)
    for command in bad_vector_commands(params):
        prog.append_refused(command)
        prog.sync(tag=len(prog.chunks))
    prog.info()
    prog.read_counters()
    return prog


def _bad_convolutions(params: RillParams, prog: Program):
    """A geometry with an empty dimension, a conv MATMUL whose K tiles are not the geometry's,
    one whose map runs past the SRAM, depthwise ones without CONV, with K tiles not the kernel's,
    output tiles not its chunks or weight words past the SRAM; without conv addressing, the
    opcode and flags unknown."""
    flags = isa.MatmulFlags
    matmul = dict(weight_addr=0, acc_addr=0, m=1, n_tiles=1, flags=flags.CONV.value)
    depthwise = {**matmul, "flags": (flags.CONV | flags.DEPTHWISE).value}
    if not params.conv_addressing:
        prog.append_refused(isa.encode(Opcode.CONV_GEOMETRY, **ConvGeometry().fields()))
        prog.append_refused(isa.encode(Opcode.MATMUL, act_addr=0, k_tiles=1, **matmul))
        prog.append_refused(isa.encode(Opcode.MATMUL, act_addr=0, k_tiles=1, **depthwise))
        prog.sync(tag=len(prog.chunks))
        return
    prog.append_refused(isa.encode(Opcode.CONV_GEOMETRY,
                                   **{**ConvGeometry().fields(), "kernel_w": 0}))
    prog.conv_geometry(ConvGeometry(in_w=4, in_h=4, out_w=4, kernel_h=3, kernel_w=3,
                                    pad_top=1, pad_left=1))
    prog.append_refused(isa.encode(Opcode.MATMUL, act_addr=0, k_tiles=8, **matmul))
    prog.append_refused(isa.encode(Opcode.MATMUL, act_addr=params.act_depth - 15, k_tiles=9,
                                   **matmul))
    prog.append_refused(isa.encode(Opcode.MATMUL, act_addr=0, k_tiles=9,
                                   **{**matmul, "flags": flags.DEPTHWISE.value}))
    prog.append_refused(isa.encode(Opcode.MATMUL, act_addr=0, k_tiles=8, **depthwise))
    prog.append_refused(isa.encode(Opcode.MATMUL, act_addr=0, k_tiles=9,
                                   **{**depthwise, "n_tiles": 2}))
    # A depthwise MATMUL's weight tiles are a word each: nine fit in the SRAM's last nine
    # words (where nine tiles of rows words would not), not in its last eight.
    prog.matmul(0, params.weight_depth - 9, 0, 1, 9, 1, conv=True, depthwise=True)
    prog.append_refused(isa.encode(Opcode.MATMUL, act_addr=0, k_tiles=9,
                                   **{**depthwise, "weight_addr": params.weight_depth - 8}))
    prog.sync(tag=len(prog.chunks))


def _bad_programs(params: RillParams, prog: Program):
    """The program memory's refusals: empty and out-of-range loads and runs, and a stored
    program that tries to RUN and to LOAD_PROGRAM, with an unknown opcode among them (each
    answered in turn, the program going on). Without a program memory both opcodes are unknown
    (and take no data)."""
    depth = params.program_depth
    if not depth:
        for op in (Opcode.LOAD_PROGRAM, Opcode.RUN):
            prog.append_refused(bytes([op.value]) + bytes(isa.HEADER_BYTES - 1))
        prog.sync(tag=len(prog.chunks))
        return
    for command in (
            isa.encode(Opcode.RUN, addr=0, count=0),
            isa.encode(Opcode.RUN, addr=depth - 1, count=2),
            isa.encode(Opcode.RUN, addr=0xFFFF, count=0xFFFF),
            isa.encode(Opcode.LOAD_PROGRAM, addr=0, count=0, tag=1),
            isa.encode(Opcode.LOAD_PROGRAM, addr=depth - 1, count=2, tag=1)
            + bytes(2 * isa.HEADER_BYTES)):
        prog.append_refused(command)
        prog.sync(tag=len(prog.chunks))
    stored = (isa.encode(Opcode.RUN, addr=0, count=1)
              + isa.encode(Opcode.LOAD_PROGRAM, addr=0, count=1, tag=5)
              + bytes([0x7F]) + bytes(isa.HEADER_BYTES - 1)
              + isa.encode(Opcode.SYNC, tag=0x5A5A))
    prog.append_refused(isa.encode(Opcode.LOAD_PROGRAM, addr=depth - 4, count=4, tag=0x1234)
                        + stored, response=0)
    prog.append_refused(isa.encode(Opcode.RUN, addr=depth - 4, count=4),
                        response=3 * isa.RESPONSE_HEADER_BYTES + isa.RESPONSE_HEADER_BYTES + 2)
    prog.sync(tag=len(prog.chunks))


def counters_in(expected: bytes, offset: int) -> dict[str, int]:
    values = np.frombuffer(expected[offset:offset + 16], dtype="<u4")
    return dict(zip(isa.COUNTER_NAMES, (int(v) for v in values)))


def expectations(params: RillParams,
                 named_programs: list[tuple[str, Program]]) -> list[Expectation]:
    """Run the programs through one golden model, in order, as the device will."""
    golden = GoldenCore(params)
    result = []
    for name, prog in named_programs:
        expected, offsets = bytearray(), []
        for chunk in prog.chunks:
            out = golden.feed(chunk)
            if chunk[0] == Opcode.READ_COUNTERS.value and out[:1] == b"\x00":
                offsets.append(len(expected) + isa.RESPONSE_HEADER_BYTES)
            expected += out
        assert len(expected) == prog.response_bytes, name
        result.append(Expectation(name, prog, bytes(expected), offsets))
    return result


def write_cases(directory: Path, exps: list[Expectation], *, seed: int, idle_in: float = 0.0,
                busy_out: float = 0.0) -> Path:
    """The JSON case list for ``core_tb``; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    stalls_at = 4 * isa.COUNTER_NAMES.index("stalls")
    cases = []
    for i, exp in enumerate(exps):
        stem = directory / f"{i:03d}"
        stem.with_suffix(".prog").write_bytes(exp.program.to_bytes())
        stem.with_suffix(".expected").write_bytes(exp.expected)
        cases.append({
            "name": exp.name, "program": str(stem.with_suffix(".prog")),
            "expected": str(stem.with_suffix(".expected")),
            "received": str(stem.with_suffix(".received")),
            "response_bytes": len(exp.expected),
            "ignore": [o + stalls_at + j for o in exp.counter_offsets for j in range(4)],
            "idle_in": idle_in, "busy_out": busy_out,
        })
    path = directory / "cases.json"
    path.write_text(json.dumps({"seed": seed, "cases": cases}, indent=1))
    return path
