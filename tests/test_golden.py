"""The golden model against numpy (an outside oracle) and the ISA's error contract."""

from dataclasses import replace

import numpy as np
import pytest
from support.params import SMALL as PARAMS

from hw import isa
from hw.isa import Opcode, Precision, Status
from hw.params import RillParams
from sim.cases import random_chain_program
from sw.conv import device_conv_weights, pack_feature_map
from sw.golden import GoldenCore
from sw.program import GemmLayout, Program, gemm_program, pack_act_words, pack_weight_tiles
from sw.qparams import random_qparams


def _raw_result(response: bytes, m: int, n: int) -> np.ndarray:
    assert response[0] == Status.OK.value and response[1] == Opcode.STORE.value
    return np.frombuffer(response[4:4 + 4 * m * n], dtype="<i4").reshape(m, n)


@pytest.mark.parametrize("precision", [Precision.INT8, Precision.INT4])
@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 7, 3), (9, 16, 8), (16, 33, 10)])
def test_raw_gemm_matches_numpy(precision, shape):
    rng = np.random.default_rng(sum(shape) + precision.value)
    m, k, n = shape
    acts = rng.integers(-128, 128, (m, k))
    lo, hi = (-8, 8) if precision == Precision.INT4 else (-128, 128)
    weights = rng.integers(lo, hi, (k, n))
    bias = rng.integers(-1000, 1000, n)
    prog = gemm_program(PARAMS, acts, weights, precision=precision, raw=True,
                        qparams=(bias, [0] * n, [0] * n, [0] * n), counters=False)
    out = GoldenCore(PARAMS).feed(prog.to_bytes())
    assert len(out) == prog.response_bytes
    assert np.array_equal(_raw_result(out, m, n), acts @ weights + bias)


@pytest.mark.parametrize("packed", [True, False])
def test_int8_activations_fill_whole_words_when_packed(packed):
    """With packed INT8 activations a word holds 2 * rows values, so the activation SRAM holds
    as many INT8 values as INT4 ones: a GEMM whose activations fill every word runs exactly;
    unpacked, the same MATMUL needs twice the words and is refused."""
    params = replace(PARAMS, packed_int8_acts=packed, vector_unit=packed,
                     add_lanes=PARAMS.add_lanes if packed else 1)
    m, k, n = 64, params.act_depth * 2 * params.rows // 64, 5   # 2 * rows values a word
    rng = np.random.default_rng(5)
    acts, weights = rng.integers(-128, 128, (m, k)), rng.integers(-128, 128, (k, n))
    assert params.act_capacity(False) == (m * k if packed else m * k // 2)
    prog = gemm_program(params, acts[:, :k // 2] if not packed else acts,
                        weights[:k // 2] if not packed else weights, raw=True,
                        qparams=([0] * n, [0] * n, [0] * n, [0] * n), counters=False)
    out = GoldenCore(params).feed(prog.to_bytes())
    expected = acts @ weights if packed else acts[:, :k // 2] @ weights[:k // 2]
    assert np.array_equal(_raw_result(out, m, n), expected)
    # The packed layout's MATMUL (k_tiles for all of K) on an unpacked core: past the SRAM.
    matmul = isa.encode(Opcode.MATMUL, act_addr=0, weight_addr=0, acc_addr=0, m=m,
                        k_tiles=k // params.rows, n_tiles=1, flags=0)
    answer = GoldenCore(params).feed(matmul)
    assert answer == b"" if packed else answer[0] == Status.OUT_OF_RANGE.value


def test_accumulate_flag_adds_into_existing_rows():
    rng = np.random.default_rng(1)
    a1, a2 = rng.integers(-128, 128, (2, 6, 4))
    w1, w2 = rng.integers(-128, 128, (2, 4, 4))
    prog = Program(PARAMS)
    prog.load_qparams(0, [0] * 4, [0] * 4, [0] * 4, [0] * 4)
    prog.load_weights(0, (w1 & 0xFF).astype(np.uint8))
    prog.load_weights(4, (w2 & 0xFF).astype(np.uint8))
    prog.load_acts(0, a1)
    prog.load_acts(6, a2)
    prog.matmul(0, 0, 0, m=6, k_tiles=1, n_tiles=1)
    prog.matmul(6, 4, 0, m=6, k_tiles=1, n_tiles=1, accumulate=True)
    prog.store(0, 6, 4, 0, raw=True)
    out = GoldenCore(PARAMS).feed(prog.to_bytes())
    assert np.array_equal(_raw_result(out, 6, 4), a1 @ w1 + a2 @ w2)


def test_shared_qparams_go_out_as_load_biases_with_the_same_effect():
    rng = np.random.default_rng(5)
    acts, weights = rng.integers(-128, 128, (6, 8)), rng.integers(-128, 128, (8, 7))
    shared = (rng.integers(-500, 500, 7), [9_000_000] * 7, [35] * 7, [-3] * 7)
    compact = gemm_program(PARAMS, acts, weights, qparams=shared, counters=False)
    assert any(chunk[0] == Opcode.LOAD_BIASES.value for chunk in compact.chunks)
    # The same entries sent in full, 12 bytes a channel, must have the same effect.
    full_entries = isa.encode(Opcode.LOAD_QPARAMS, addr=0, count=7) + b"".join(
        isa.pack_qparam(int(b), 9_000_000, 35, -3) for b in shared[0])
    full = Program(PARAMS)
    full.chunks = [full_entries if c[0] == Opcode.LOAD_BIASES.value else c
                   for c in compact.chunks]
    assert GoldenCore(PARAMS).feed(compact.to_bytes()) == GoldenCore(PARAMS).feed(full.to_bytes())


def test_info_reports_params():
    out = GoldenCore(PARAMS).feed(isa.encode(Opcode.INFO))
    params, version = RillParams.from_info_bytes(out[4:])
    assert params == PARAMS and version == isa.ISA_VERSION


# -- bad input -----------------------------------------------------------------------------------

def _state(core: GoldenCore):
    return (core.act.copy(), core.weights.copy(), core.acc.copy(), core.q_bias.copy(),
            core.config)


BAD = [
    ("unknown opcode", bytes([0x7F]) + bytes(11), Status.UNKNOWN_OPCODE),
    ("config precision 3", isa.encode(Opcode.CONFIG, **{**isa.Config().fields(), "precision": 3}),
     Status.BAD_MODE),
    ("config out_type 3", isa.encode(Opcode.CONFIG, **{**isa.Config().fields(), "out_type": 3}),
     Status.BAD_MODE),
    ("config relu 3", isa.encode(Opcode.CONFIG, **{**isa.Config().fields(), "relu": 3}),
     Status.BAD_MODE),
    ("weights past the end", isa.encode(Opcode.LOAD_WEIGHTS, addr=250, count=7) + bytes(28),
     Status.OUT_OF_RANGE),
    ("acts zero count", isa.encode(Opcode.LOAD_ACTS, addr=0, count=0, lanes=0),
     Status.BAD_LENGTH),
    ("acts lanes past the word", isa.encode(Opcode.LOAD_ACTS, addr=0, count=1,
                                                       lanes=2 * PARAMS.rows + 1),
     Status.BAD_LENGTH),
    ("qparams past the end", isa.encode(Opcode.LOAD_QPARAMS, addr=64, count=1) + bytes(12),
     Status.OUT_OF_RANGE),
    ("matmul bad flags", isa.encode(Opcode.MATMUL, act_addr=0, weight_addr=0, acc_addr=0, m=1,
                                    k_tiles=1, n_tiles=1, flags=0x80), Status.BAD_MODE),
    ("matmul m=0", isa.encode(Opcode.MATMUL, act_addr=0, weight_addr=0, acc_addr=0, m=0,
                              k_tiles=1, n_tiles=1, flags=0), Status.BAD_LENGTH),
    ("matmul acts past the end", isa.encode(Opcode.MATMUL, act_addr=200, weight_addr=0,
                                            acc_addr=0, m=30, k_tiles=3, n_tiles=1, flags=0),
     Status.OUT_OF_RANGE),
    ("matmul weights past the end", isa.encode(Opcode.MATMUL, act_addr=0, weight_addr=0,
                                               acc_addr=0, m=1, k_tiles=8, n_tiles=9, flags=0),
     Status.OUT_OF_RANGE),
    ("matmul acc past the end", isa.encode(Opcode.MATMUL, act_addr=0, weight_addr=0,
                                           acc_addr=255, m=1, k_tiles=1, n_tiles=2, flags=0),
     Status.OUT_OF_RANGE),
    ("store last_cols 5", isa.encode(Opcode.STORE, acc_addr=0, m=1, n_tiles=1, last_cols=5,
                                     q_addr=0, flags=0, act_addr=0), Status.BAD_LENGTH),
    ("store q past the end", isa.encode(Opcode.STORE, acc_addr=0, m=1, n_tiles=2, last_cols=1,
                                        q_addr=60, flags=0, act_addr=0), Status.OUT_OF_RANGE),
    ("store bad flags", isa.encode(Opcode.STORE, acc_addr=0, m=1, n_tiles=1, last_cols=1,
                                   q_addr=0, flags=0x80, act_addr=0), Status.BAD_MODE),
    ("store raw to acts", isa.encode(Opcode.STORE, acc_addr=0, m=1, n_tiles=1, last_cols=1,
                                     q_addr=0, flags=0x03, act_addr=0), Status.BAD_MODE),
    ("store int4 layout alone", isa.encode(Opcode.STORE, acc_addr=0, m=1, n_tiles=1,
                                           last_cols=1, q_addr=0, flags=0x04, act_addr=0),
     Status.BAD_MODE),
    ("store to acts past the end", isa.encode(Opcode.STORE, acc_addr=0, m=3, n_tiles=2,
                                              last_cols=1, q_addr=0, flags=0x02, act_addr=254),
     Status.OUT_OF_RANGE),
]


@pytest.mark.parametrize("name,command,status", BAD, ids=[b[0] for b in BAD])
def test_bad_input_answers_with_a_code_and_changes_nothing(name, command, status):
    core = GoldenCore(PARAMS)
    rng = np.random.default_rng(3)
    setup = gemm_program(PARAMS, rng.integers(-128, 128, (4, 4)), rng.integers(-128, 128, (4, 4)),
                         raw=True, qparams=([1] * 4, [0] * 4, [0] * 4, [0] * 4), counters=False,
                         layout=GemmLayout(act_addr=100, weight_addr=248, acc_addr=10, q_addr=60))
    first = core.feed(setup.to_bytes())
    before = _state(core)
    out = core.feed(command)
    assert out == bytes([status.value, command[0]]) + len(setup.chunks).to_bytes(2, "little")
    for old, new in zip(before, _state(core)):
        assert np.array_equal(old, new) if isinstance(old, np.ndarray) else old == new
    # The device keeps answering: the same store gives the same bytes.
    again = Program(PARAMS)
    again.store(10, 4, 4, 60, raw=True)
    assert core.feed(again.to_bytes())[4:] == first[4:]


@pytest.mark.parametrize("next_precision", [Precision.INT8, Precision.INT4])
def test_store_to_acts_feeds_the_next_layer_what_the_host_would(next_precision):
    """A layer's STORE into the activation SRAM, then the next layer's MATMUL on it, gives what
    sending the outputs back and loading them as the next layer's activations gives."""
    rng = np.random.default_rng(5 + next_precision.value)
    m, k, hidden, n = 7, 13, 11, 6
    acts = rng.integers(-128, 128, (m, k))
    w1 = rng.integers(-128, 128, (k, hidden))
    lo, hi = (-8, 8) if next_precision == Precision.INT4 else (-128, 128)
    w2 = rng.integers(lo, hi, (hidden, n))
    q1 = random_qparams(rng, hidden, isa.Rounding.ONNX, k)
    q2 = (rng.integers(-1000, 1000, n), [0] * n, [0] * n, [0] * n)

    first = GoldenCore(PARAMS).feed(gemm_program(PARAMS, acts, w1, qparams=q1,
                                                 counters=False).to_bytes())
    hidden_out = np.frombuffer(first[4:], dtype=np.int8).reshape(m, hidden)
    expected = _raw_result(GoldenCore(PARAMS).feed(gemm_program(
        PARAMS, hidden_out, w2, precision=next_precision, raw=True, qparams=q2,
        counters=False).to_bytes()), m, n)

    int4 = next_precision == Precision.INT4
    prog = Program(PARAMS)
    prog.configure(isa.Config())
    prog.load_qparams(0, *q1)
    prog.load_qparams(hidden, *q2)
    prog.load_weights(0, pack_weight_tiles(PARAMS, w1, False))
    second_weights = pack_weight_tiles(PARAMS, w2, int4)
    prog.load_weights(100, second_weights)
    prog.load_acts(0, pack_act_words(PARAMS, acts, False))
    prog.matmul(0, 0, 0, m, -(-k // PARAMS.rows), -(-hidden // PARAMS.cols))
    prog.store(0, m, hidden, 0, to_acts=50, acts_int4=int4)
    prog.configure(isa.Config(precision=next_precision))
    prog.matmul(50, 100, 20, m, -(-hidden // PARAMS.k_per_tile(int4)), -(-n // PARAMS.cols))
    prog.store(20, m, n, hidden, raw=True)
    out = GoldenCore(PARAMS).feed(prog.to_bytes())
    assert len(out) == prog.response_bytes == 4 + 4 * m * n   # the chained STORE sends nothing
    assert np.array_equal(_raw_result(out, m, n), expected)


def test_a_run_answers_and_takes_what_the_same_instructions_over_the_link_do():
    """Instructions stored by LOAD_PROGRAM and run by RUN (their load data over the link) give
    the same answer as sending them, in the cycles the program predicts; INFO reports the tag."""
    rng = np.random.default_rng(11)
    chain = random_chain_program(PARAMS, rng, read_back=False)
    direct = GoldenCore(PARAMS).feed(chain.to_bytes())
    core = GoldenCore(PARAMS)
    prog = Program(PARAMS)
    prog.extend(chain.load_into_program_memory(7, tag=0xBEEF))
    prog.extend(chain.as_run(7))
    prog.extend(chain.as_run(7))
    prog.info()
    out = core.feed(prog.to_bytes())
    assert len(out) == prog.response_bytes
    # Each answer: the last STORE's header and outputs, READ_COUNTERS' header and counters
    # (the headers count instructions, so the RUNs' differ from the direct stream's).
    outputs = slice(4, len(direct) - 20)
    first, second = out[:len(direct)], out[len(direct):2 * len(direct)]
    assert first[outputs] == second[outputs] == direct[outputs]
    assert first[0] == second[0] == 0 and first[outputs.stop] == second[outputs.stop] == 0
    assert int.from_bytes(out[-2:], "little") == 0xBEEF
    assert core.counters["cycles"] == prog.predicted_cycles


def _conv_reference(x, filters, pads, stride, zero_point):
    """NCHW int conv by explicit loops over im2col patches (sw.conv.im2col)."""
    from sw.conv import im2col
    kh, kw = filters.shape[2:]
    cols, (n, oh, ow) = im2col(x, (kh, kw), pads, (stride, stride), zero_point)
    return cols.astype(np.int64) @ filters.reshape(filters.shape[0], -1).T.astype(np.int64), \
        (oh, ow)


@pytest.mark.parametrize("case", [
    # channels, height, width, filters, kernel, stride, pads (top, left, bottom, right), int4
    (3, 7, 6, 5, (3, 3), 1, (1, 1, 1, 1), False),
    (6, 9, 8, 3, (3, 3), 2, (1, 1, 1, 1), False),
    (10, 5, 6, 3, (3, 3), 1, (1, 1, 1, 1), False),   # three INT8 chunks: a word and a half
    (1, 12, 7, 4, (10, 4), 2, (4, 1, 5, 2), False),   # DS-CNN's opening kernel, SAME-like pads
    (9, 5, 5, 4, (1, 1), 1, (0, 0, 0, 0), True),
    (2, 6, 6, 7, (2, 3), 2, (0, 1, 0, 1), True),
])
def test_conv_addressed_on_the_device_equals_im2col(case):
    """A MATMUL with the CONV flag reads the feature map's patches as im2col would, padding
    with the zero point, for any kernel, stride 1 and 2, both precisions; the output rows can
    start at any output row (``first_row``)."""
    c, h, w, f, (kh, kw), stride, pads, int4 = case
    rng = np.random.default_rng(sum(case[:4]))
    zero_point = int(rng.integers(-20, 20))
    x = rng.integers(-128, 128, (1, c, h, w))
    lo, hi = (-8, 8) if int4 else (-128, 128)
    filters = rng.integers(lo, hi, (f, c, kh, kw))
    expected, (oh, ow) = _conv_reference(x, filters, pads, stride, zero_point)
    kpt = PARAMS.k_per_tile(int4)
    chunks = -(-c // kpt)
    fmap = pack_feature_map(PARAMS, x[0], int4)
    weights = device_conv_weights(filters, kpt)
    first_row = oh // 3
    rows = oh - first_row
    geometry = isa.ConvGeometry(in_w=w, in_h=h, out_w=ow, kernel_h=kh, kernel_w=kw,
                                stride=stride, pad_top=pads[0], pad_left=pads[1],
                                first_row=first_row, zero_point=zero_point, chunks=chunks)
    n = f
    prog = Program(PARAMS)
    prog.configure(isa.Config(precision=Precision.INT4 if int4 else Precision.INT8))
    prog.load_qparams(0, [0] * n, [0] * n, [0] * n, [0] * n)
    prog.load_weights(0, pack_weight_tiles(PARAMS, weights, int4))
    prog.load_acts(10, fmap)
    prog.conv_geometry(geometry)
    prog.matmul(10, 0, 0, rows * ow, geometry.k_tiles, -(-n // PARAMS.cols), conv=True)
    prog.store(0, rows * ow, n, 0, raw=True)
    core = GoldenCore(PARAMS)
    out = core.feed(prog.to_bytes())
    assert np.array_equal(_raw_result(out, rows * ow, n), expected[first_row * ow:])
    assert core.counters["cycles"] == prog.predicted_cycles
