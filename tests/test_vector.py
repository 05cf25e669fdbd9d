"""The vector unit's instructions on the golden model against TFLite's reference arithmetic
(:mod:`sw.tflite_kernels`, itself held to LiteRT), and the constants the compiler picks. The RTL
runs the same instructions against the golden model among the random programs of
``tests/test_core_rtl.py`` (``sim/vector_cases.py``), refusals included."""

import numpy as np
import pytest

from hw import isa
from hw.isa import Opcode, Status, VectorStage
from hw.params import RillParams
from sw import tflite_kernels
from sw.compiler import CompileError
from sw.golden import GoldenCore
from sw.program import Program
from sw.vector_ops import add_stages, mean_stages, pool_reciprocal
from sw.vector_step import PoolWindow, VectorStep

PARAMS = RillParams()
LANES = PARAMS.act_lanes


def _run(prog: Program) -> bytes:
    return GoldenCore(PARAMS).feed(prog.to_bytes())


def _read_back(response: bytes, words: int) -> np.ndarray:
    assert response[0] == Status.OK.value
    return np.frombuffer(response, np.int8, words * LANES, isa.RESPONSE_HEADER_BYTES) \
        .reshape(words, LANES)


@pytest.mark.parametrize("seed", range(6))
def test_add_is_tflites_int8_add(seed):
    """Random quantizations (fused RELU or RELU6 among them), the output on one input or
    apart: the words equal the reference kernel's, element for element."""
    rng = np.random.default_rng(seed)
    words = 9
    a, b = (rng.integers(-128, 128, (words, LANES)).astype(np.int8) for _ in range(2))
    quant = dict(a_scale=float(rng.uniform(0.005, 0.3)), a_zp=int(rng.integers(-128, 128)),
                 b_scale=float(rng.uniform(0.005, 0.3)), b_zp=int(rng.integers(-128, 128)),
                 output_scale=float(rng.uniform(0.01, 0.5)),
                 output_zp=int(rng.integers(-128, 128)))
    activation = ("NONE", "RELU", "RELU6")[seed % 3]
    act_range = tflite_kernels.activation_range(activation, quant["output_scale"],
                                                quant["output_zp"])
    stages = add_stages(**quant, act_range=act_range)
    prog = Program(PARAMS)
    prog.load_acts(0, a)
    prog.load_acts(words, b)
    for slot, stage in enumerate(stages):
        prog.vector_config(slot, stage)
    out = (0, words, 2 * words)[seed % 3]
    # All lanes, or the first few: the output words' other lanes keep what they held.
    lanes = (LANES, 5, 1)[seed % 3]
    held = (a, b, np.zeros_like(a))[seed % 3]
    prog.add(0, words, out, words, lanes)
    prog.read_acts(out, words)
    got = _read_back(_run(prog), words)
    want = tflite_kernels.add(a, b, **quant, act_range=act_range)
    assert np.array_equal(got[:, :lanes], want[:, :lanes])
    assert np.array_equal(got[:, lanes:], held[:, lanes:])
    assert len(np.unique(want)) > 3   # not a constant answer (RELU6 leaves few values)


def test_add_refuses_multipliers_needing_a_left_shift():
    """An output scale far below the inputs' makes the output multiplier exceed one: that ADD
    stays on the host."""
    assert add_stages(0.5, 0, 0.5, 0, 1e-8, 0) is None
    assert add_stages(0.05, 0, 0.07, 0, 0.1, 0) is not None


@pytest.mark.parametrize("pixels", [1, 2, 9, 25, 64, 125, 333])
def test_avgpool_is_tflites_global_average_pool(pixels):
    """Blocks of a map's channels (two blocks of ``LANES`` channels), ties and negative sums
    among them: the reference kernel's rounded mean of every channel."""
    rng = np.random.default_rng(pixels)
    groups = 2
    x = rng.integers(-128, 128, (1, pixels, 1, groups * LANES))
    if pixels == 2:   # sums of odd magnitude: every mean a tie, both signs
        x[..., :LANES] = np.array([[[[3]], [[-4]]]])
    prog = Program(PARAMS)
    blocks = x.reshape(pixels, groups, LANES).transpose(1, 0, 2).reshape(-1, LANES)
    prog.load_acts(groups, blocks.astype(np.int8))
    prog.avgpool(groups, 0, groups, pixels)   # output just below the input
    prog.read_acts(0, groups)
    got = _read_back(_run(prog), groups).reshape(-1)
    want = tflite_kernels.average_pool(x, kernel=(pixels, 1)).reshape(-1)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("seed", range(6))
def test_mean_is_tflites_int8_mean(seed):
    """MEAN over a map's pixels (what the converter writes for GlobalAveragePooling2D) with the
    compiler's stages, for random quantizations and map sizes: the reference kernel's every
    channel."""
    rng = np.random.default_rng(seed)
    pixels, groups = int(rng.integers(1, 50)), 2
    scales = rng.uniform(0.005, 0.2, 2)
    zps = [int(v) for v in rng.integers(-128, 128, 2)]
    # Each channel about its own level, so that the means differ from channel to channel.
    levels = rng.integers(-120, 120, groups * LANES)
    x = np.clip(levels + rng.integers(-8, 9, (1, pixels, 1, groups * LANES)), -128, 127)
    stages = mean_stages(scales[0], zps[0], scales[1], zps[1], pixels)
    prog = Program(PARAMS)
    for slot in (0, 2):
        prog.vector_config(slot, stages[slot])
    blocks = x.reshape(pixels, groups, LANES).transpose(1, 0, 2).reshape(-1, LANES)
    prog.load_acts(groups, blocks.astype(np.int8))
    prog.mean(groups, 0, groups, pixels)
    prog.read_acts(0, groups)
    got = _read_back(_run(prog), groups).reshape(-1)
    want = tflite_kernels.mean(x, (1, 2), input_scale=scales[0], input_zp=zps[0],
                               output_scale=scales[1], output_zp=zps[1]).reshape(-1)
    assert np.array_equal(got, want)
    assert len(set(want.tolist())) > 2   # the means vary: not a constant clamp


@pytest.mark.parametrize("seed", range(8))
def test_pool_is_tflites_max_and_average_pool(seed):
    """Windowed MAX_POOL_2D and AVERAGE_POOL_2D (``POOL``) over TFLite's SAME and VALID
    windows, kernels and strides of 1 to 3, fused activation clamps, maps of a channel block and
    a few lanes more (or of fewer channels than a word): every output the reference kernel's,
    on the device's instructions and in the host's arithmetic alike."""
    rng = np.random.default_rng(seed)
    average = seed % 2 == 1
    kernel = tuple(int(k) for k in rng.integers(1, 4, 2))
    stride = int(rng.integers(1, 4))
    h, w = (int(n) for n in rng.integers(max(kernel), 10, 2))
    channels = (LANES + 5, 3)[seed % 4 // 2]
    if average or seed % 4 == 0:   # VALID: whole windows only
        pads, out = (0, 0, 0, 0), ((h - kernel[0]) // stride + 1, (w - kernel[1]) // stride + 1)
    else:
        (oh, top, bottom), (ow, left, right) = (tflite_kernels.same_padding(h, kernel[0], stride),
                                                tflite_kernels.same_padding(w, kernel[1], stride))
        pads, out = (top, left, bottom, right), (oh, ow)
    act_range = [(-128, 127), (-20, 127), (-100, 40)][seed % 3]
    window = PoolWindow(kernel, stride, pads, (h, w))
    assert window.out_size == out
    x = rng.integers(-128, 128, (2, h, w, channels)).astype(np.int8)
    step = VectorStep("pool", "avgpool" if average else "maxpool", ("x",), ("y",),
                      act_range=act_range, window=window)
    call = step.call(PARAMS, x)
    got = call.assemble(GoldenCore(PARAMS).feed(call.command_bytes))
    reference = tflite_kernels.average_pool if average else tflite_kernels.max_pool
    want = reference(x, kernel=kernel, stride=(stride, stride), pads=pads, act_range=act_range)
    assert got.shape == want.shape == (2, *out, channels)
    assert np.array_equal(got, want)
    assert np.array_equal(step.on_host({"x": x})["y"], want)
    assert len(np.unique(want)) > 3


def test_pool_refusals_say_why():
    """An average over windows reaching past the map (their counts differ) and unequal strides
    stay on the host; a max pooling's map and output must fit the activation SRAM apart."""
    whole = PoolWindow((2, 2), 2, (0, 0, 0, 0), (8, 8))
    padded = PoolWindow((3, 3), 1, (1, 1, 1, 1), (8, 8))
    assert whole.whole and not padded.whole
    assert whole.fits(PARAMS, 16, average=True) and not padded.fits(PARAMS, 16, average=True)
    assert padded.fits(PARAMS, 16, average=False)
    large = PoolWindow((2, 2), 2, (0, 0, 0, 0), (30, 30))
    assert not large.fits(PARAMS, 2 * LANES, average=False)   # 2 x (900 + 225) > 1,024
    assert not whole.fits(RillParams(conv_addressing=False), 16, average=False)
    step = VectorStep("pool", "maxpool", ("x",), ("y",), window=large)
    with pytest.raises(CompileError, match="does not fit"):
        step.call(PARAMS, np.zeros((1, 30, 30, 2 * LANES), np.int8))


def test_pool_reciprocal_is_exact_for_every_sum():
    """For each map size, every magnitude an int8 sum and the rounding half can reach divides
    exactly by the multiply and shift; a size no 24-bit reciprocal serves is refused."""
    with pytest.raises(ValueError, match="65535 pixels"):
        pool_reciprocal(65535)
    for pixels in [*range(1, 300), 1000, 4095, 4096, 30000]:
        reciprocal, shift = pool_reciprocal(pixels)
        assert reciprocal < 1 << 24
        top = 128 * pixels + pixels // 2
        x = np.unique(np.concatenate([np.arange(min(top, 5000) + 1),
                                      np.linspace(0, top, 5000).astype(np.int64)]))
        assert np.array_equal(x * reciprocal >> shift, x // pixels), pixels


def test_stages_decode_as_they_were_given():
    stage = VectorStage(-(1 << 31), 31, -32768, -128, 127)
    fields = isa.decode_fields(Opcode.VECTOR_CONFIG,
                               isa.encode(Opcode.VECTOR_CONFIG, **stage.fields(2))[1:])
    assert VectorStage.from_fields(fields) == stage and fields["slot"] == 2


def test_a_vector_step_adds_tensors_larger_than_the_activation_sram():
    """An ADD of tensors of any size runs in pieces that fit; the pieces' outputs join."""
    small = RillParams(act_depth=64)
    rng = np.random.default_rng(3)
    a, b = (rng.integers(-128, 128, (3, 40, 41)).astype(np.int8) for _ in range(2))
    quant = dict(a_scale=0.03, a_zp=-5, b_scale=0.05, b_zp=9, output_scale=0.07, output_zp=2)
    step = VectorStep("add", "add", ("a", "b"), ("y",), add_stages(**quant))
    call = step.call(small, a, b)
    assert len(call.answers) > 1
    got = call.assemble(GoldenCore(small).feed(call.command_bytes))
    assert np.array_equal(got, tflite_kernels.add(a, b, **quant))


def test_vector_instructions_are_unknown_without_the_unit():
    params = RillParams(vector_unit=False)
    prog = Program(params)
    prog.append_refused(isa.encode(Opcode.READ_ACTS, addr=0, count=1))
    response = GoldenCore(params).feed(prog.to_bytes())
    assert response[0] == Status.UNKNOWN_OPCODE.value
    assert RillParams.from_info_bytes(params.to_info_bytes(isa.ISA_VERSION))[0] == params
    with pytest.raises(Exception, match="no vector unit"):
        VectorStep("add", "add", ("a", "b"), ("y",)).call(params, np.zeros(3, np.int8),
                                                         np.zeros(3, np.int8))
