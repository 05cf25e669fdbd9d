"""Test programs for the vector unit (``ADD``, ``AVGPOOL``, ``MEAN``, ``POOL``, ``READ_ACTS``,
``VECTOR_CONFIG``):
random ones, and every refusal its decode gives.

The random stages range over the whole of each field, not only what TFLite's quantization
gives, so the datapath's wrap-arounds, saturation and clamps are all exercised; the golden model
(:mod:`sw.vector_ops`) says what each must give.
"""

from __future__ import annotations

import numpy as np

from hw import isa
from hw.isa import ConvGeometry, Opcode, VectorStage
from hw.params import RillParams
from sw.program import Program
from sw.vector_ops import add_stages, mean_stages

__all__ = ["random_vector_program", "bad_vector_commands"]


def _random_stage(rng: np.random.Generator) -> VectorStage:
    if rng.random() < 0.5:   # as TFLite's quantization gives them
        return VectorStage(int(rng.integers(1 << 30, 1 << 31)), int(rng.integers(0, 20)),
                           int(rng.integers(-128, 128)), *sorted(rng.integers(-128, 128, 2)))
    multiplier = int(rng.choice([-(1 << 31), (1 << 31) - 1, 0,
                                 int(rng.integers(-(1 << 31), 1 << 31))]))
    return VectorStage(multiplier, int(rng.integers(0, 32)), int(rng.integers(-(1 << 15), 1 << 15)),
                       int(rng.integers(-128, 128)), int(rng.integers(-128, 128)))


def _block(rng: np.random.Generator, params: RillParams, words: int) -> np.ndarray:
    return rng.integers(-128, 128, (words, params.act_lanes)).astype(np.int8)


def random_vector_program(params: RillParams, rng: np.random.Generator) -> Program:
    """An ADD (its inputs apart, or its output on one of them), a global average pooling
    (exact, or with a random reciprocal) or a MEAN (its output stage the ADD's), and, on a core
    that walks maps, a windowed max or average pooling, each read back with ``READ_ACTS``."""
    depth = params.act_depth
    prog = Program(params)
    if rng.random() < 0.5:
        stages = add_stages(*rng.uniform(0.01, 0.2, 1), int(rng.integers(-128, 128)),
                            *rng.uniform(0.01, 0.2, 1), int(rng.integers(-128, 128)),
                            *rng.uniform(0.02, 0.3, 1), int(rng.integers(-128, 128)))
    else:
        stages = None
    for slot in range(isa.VECTOR_SLOTS):
        prog.vector_config(slot, stages[slot] if stages else _random_stage(rng))

    # Small blocks: these run under cocotb too, where every byte costs; tests/test_vector.py
    # takes the golden model through large ones.
    words = int(rng.integers(1, min(8, depth // 3) + 1))
    a_addr, b_addr = (int(x) for x in rng.choice(depth // words, 2, replace=False) * words)
    prog.load_acts(a_addr, _block(rng, params, words))
    prog.load_acts(b_addr, _block(rng, params, words))
    out = rng.choice([a_addr, b_addr, min(a_addr, b_addr) - 1 if min(a_addr, b_addr) else 0])
    # Every lane, or the first few (the others of the output words keep what they held).
    lanes = params.act_lanes if rng.random() < 0.5 else int(rng.integers(1, params.act_lanes))
    prog.add(a_addr, b_addr, int(out), words, lanes)
    prog.read_acts(int(out), words)

    groups = int(rng.integers(1, 3))
    pixels = int(rng.integers(1, min(24, (depth - groups) // groups) + 1))
    act_addr = int(rng.integers(groups, depth - groups * pixels + 1))
    prog.load_acts(act_addr, _block(rng, params, groups * pixels))
    out = act_addr - int(rng.integers(0, groups + 1))   # in place, or just before
    if rng.random() < 0.4:
        stages = mean_stages(*rng.uniform(0.01, 0.2, 1), int(rng.integers(-128, 128)),
                             *rng.uniform(0.002, 0.2, 1), int(rng.integers(-128, 128)), pixels)
        if stages is not None and rng.random() < 0.8:   # else the stages above
            prog.vector_config(0, stages[0])
            prog.vector_config(2, stages[2])
        prog.mean(act_addr, out, groups, pixels)
    elif rng.random() < 0.7:
        prog.avgpool(act_addr, out, groups, pixels)
    else:   # any constants: the datapath's clamps
        prog.avgpool(act_addr, out, groups, pixels,
                     constants=(int(rng.integers(0, 1 << 24)), int(rng.integers(0, 64))))
    prog.read_acts(out, groups)
    if params.conv_addressing:
        _random_window_pool(prog, rng)
    prog.read_counters()
    return prog


def _random_window_pool(prog: Program, rng: np.random.Generator):
    """A ``POOL`` over a random small map: any kernel, stride and padding (windows reaching
    past every edge, or wholly outside), output rows from any first row, maxima or averages
    (exact, or any constants), its output before or after the input."""
    params, depth = prog.params, prog.params.act_depth
    kernel_h, kernel_w = (int(k) for k in rng.integers(1, 4, 2))
    in_h, in_w = (int(n) for n in rng.integers(1, 7, 2))
    geometry = ConvGeometry(in_w=in_w, in_h=in_h, out_w=int(rng.integers(1, 5)),
                            kernel_h=kernel_h, kernel_w=kernel_w, stride=int(rng.integers(1, 4)),
                            pad_top=int(rng.integers(0, kernel_h + 1)),
                            pad_left=int(rng.integers(0, kernel_w + 1)),
                            first_row=int(rng.integers(0, 3)))
    groups, out_h = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    words, out_words = groups * in_h * in_w, groups * out_h * geometry.out_w
    if words + out_words > depth:
        return
    act_addr = int(rng.integers(0, depth - words - out_words + 1))
    out_addr = act_addr + words
    if rng.random() < 0.5:   # the output first
        act_addr, out_addr = act_addr + out_words, act_addr
    prog.load_acts(act_addr, _block(rng, params, words))
    prog.conv_geometry(geometry)
    average = bool(rng.random() < 0.5)
    constants = ((int(rng.integers(0, 1 << 24)), int(rng.integers(0, 64)))
                 if average and rng.random() < 0.3 else None)
    prog.pool(act_addr, out_addr, groups, out_h, average, constants)
    prog.read_acts(out_addr, out_words)


def bad_vector_commands(params: RillParams) -> list[bytes]:
    """Each refusal of the vector instructions (the caller checks the core answers after each);
    without the unit, their opcodes are unknown."""
    depth = params.act_depth
    config = VectorStage(1 << 30, 3, 0, -128, 127)
    commands = [
        isa.encode(Opcode.VECTOR_CONFIG, **{**config.fields(0), "slot": isa.VECTOR_SLOTS}),
        isa.encode(Opcode.VECTOR_CONFIG, **{**config.fields(1), "shift": 32}),
        *(isa.encode(Opcode.ADD, lanes=params.act_lanes, **fields) for fields in (
            dict(a_addr=0, b_addr=4, out_addr=8, words=0),
            dict(a_addr=depth - 2, b_addr=0, out_addr=8, words=3),
            dict(a_addr=0, b_addr=0, out_addr=0xFFFF, words=1),
            dict(a_addr=0, b_addr=10, out_addr=1, words=4),     # inside a
            dict(a_addr=0, b_addr=10, out_addr=13, words=4))),  # inside b
        isa.encode(Opcode.ADD, a_addr=0, b_addr=4, out_addr=8, words=1, lanes=0),
        isa.encode(Opcode.ADD, a_addr=0, b_addr=4, out_addr=8, words=1,
                   lanes=params.act_lanes + 1),   # past the word
        isa.encode(Opcode.AVGPOOL, act_addr=0, out_addr=0, groups=0, pixels=4, reciprocal=1,
                   shift=0),
        isa.encode(Opcode.AVGPOOL, act_addr=0, out_addr=0, groups=1, pixels=0, reciprocal=1,
                   shift=0),
        isa.encode(Opcode.AVGPOOL, act_addr=depth - 7, out_addr=0, groups=2, pixels=4,
                   reciprocal=1, shift=0),
        isa.encode(Opcode.AVGPOOL, act_addr=0, out_addr=depth - 1, groups=2, pixels=1,
                   reciprocal=1, shift=0),
        isa.encode(Opcode.AVGPOOL, act_addr=0, out_addr=3, groups=2, pixels=4, reciprocal=1,
                   shift=0),
        isa.encode(Opcode.MEAN, act_addr=0, out_addr=0, groups=0, pixels=4),
        isa.encode(Opcode.MEAN, act_addr=0, out_addr=0, groups=1, pixels=0),
        isa.encode(Opcode.MEAN, act_addr=depth - 7, out_addr=0, groups=2, pixels=4),
        isa.encode(Opcode.MEAN, act_addr=0, out_addr=3, groups=2, pixels=4),
        *(isa.encode(Opcode.POOL, reciprocal=1, shift=0, **fields) for fields in (
            dict(act_addr=0, out_addr=64, groups=1, out_h=1, average=2),
            dict(act_addr=0, out_addr=64, groups=0, out_h=1, average=0),
            dict(act_addr=0, out_addr=64, groups=1, out_h=0, average=1),
            dict(act_addr=depth - 1, out_addr=0, groups=2, out_h=1, average=0),
            dict(act_addr=0, out_addr=depth - 1, groups=2, out_h=1, average=1),
            dict(act_addr=0, out_addr=0xFFFF, groups=1, out_h=1, average=0),
            dict(act_addr=4, out_addr=4, groups=1, out_h=1, average=0),   # on the input
            dict(act_addr=8, out_addr=7, groups=1, out_h=2, average=1))),  # reaching into it
        isa.encode(Opcode.READ_ACTS, addr=0, count=0),
        isa.encode(Opcode.READ_ACTS, addr=depth - 1, count=2),
        isa.encode(Opcode.READ_ACTS, addr=0xFFFF, count=0xFFFF),
    ]
    if not params.vector_unit:
        return [bytes([op.value]) + bytes(isa.HEADER_BYTES - 1) for op in isa.VECTOR_OPCODES]
    return commands
