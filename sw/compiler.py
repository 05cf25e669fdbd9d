"""Compiling quantized matmul and conv layers of any size onto a Rill core.

A :class:`QuantizedLinear` describes one ONNX-style quantized matmul; :func:`compile_linear` checks
it, folds the activation zero point into the int32 bias and encodes onnxruntime's float32 scales
(:mod:`sw.requant`). For each batch size the compiler picks a :class:`TilePlan` and emits one
:class:`~sw.program.Program` per layer call.

The tiling and the schedule are planned in :mod:`sw.planner`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw import isa
from hw.isa import Config, Opcode, OutType, Precision, Rounding
from hw.params import RillParams

from .device_base import Device, DeviceError, ParamsMismatch
from .planner import TilePlan, TilePlanner
from .program import (
    Program,
    compulsory_bytes,
    pack_act_words,
    pack_diagonal_tiles,
    pack_weight_tiles,
)
from .requant import encode_onnx_scale, encode_tflite_channel_scales, onnx_scale, wrap_int32

__all__ = ["CompileError", "QuantizedLinear", "CompiledLinear", "TilePlan", "DeviceCall",
           "LayerProgram", "compile_linear", "compiled_for", "run_linear", "scalar_int", "as_int8"]

_OUT_TYPES = {np.dtype(np.int8): OutType.INT8, np.dtype(np.uint8): OutType.UINT8}


class CompileError(ValueError):
    """A layer the compiler cannot map onto the device; the message says what to change."""


@dataclass(eq=False)
class QuantizedLinear:
    """One quantized matmul ``y = requant((x - a_zp) @ weights + bias)``, with onnxruntime's
    requantization (``rounding=ONNX``) or TFLite's (``TFLITE``: per channel
    ``QuantizeMultiplier(double(a_scale) * double(w_scale) / double(y_scale))``, double rounding).

    Parameters
    ----------
    weights : (K, N) integer array
        int8 range, or int4 range ``[-8, 7]`` with ``precision=INT4``. Symmetric: ``w_zp`` is 0.
    a_scale, w_scale, y_scale : float32
        Activation, weight (scalar or ``(N,)`` per channel) and output scales. Unused for RAW.
    a_zp, y_zp : int
        Activation and output zero points, in the activation / output dtype's range.
    bias : (N,) int32 array, optional
        Bias in units of ``a_scale * w_scale`` (as ONNX quantizes it).
    act_dtype : int8 or uint8
        Dtype of the activations ``x`` handed to :meth:`CompiledLinear.program`.
    out_dtype : int8, uint8 or int32
        int32 returns ``(x - a_zp) @ weights + bias`` unrequantized (``STORE RAW``; MatMulInteger).
    relu : bool
        Clamp the output below at ``y_zp`` (a fused ReLU).
    clamp : (lo, hi), optional
        Clamp the output to ``[lo, hi]`` (output dtype values; a fused RELU6): the device's
        programmable clamp (``RillParams.clamp``), in place of ``relu``.
    rounding : Rounding
        Whose requantization arithmetic the device reproduces.
    diagonal : bool
        Every ``rows x cols`` weight tile is diagonal, as a depthwise conv's are in the order the
        device walks it a channel chunk per output tile (:func:`sw.conv_device.device_linear`):
        each tile is stored as its diagonal, one word (``MatmulFlags.DEPTHWISE``), and only a
        depthwise MATMUL reads it.
    """

    weights: np.ndarray
    a_scale: float | None = None
    a_zp: int = 0
    w_scale: np.ndarray | float | None = None
    y_scale: float | None = None
    y_zp: int = 0
    bias: np.ndarray | None = None
    w_zp: np.ndarray | int = 0
    act_dtype: type = np.int8
    out_dtype: type = np.int8
    relu: bool = False
    precision: Precision = Precision.INT8
    name: str = "linear"
    rounding: Rounding = Rounding.ONNX
    clamp: tuple[int, int] | None = None
    diagonal: bool = False


@dataclass
class DeviceCall:
    """One call's command stream: what it sends, what comes back, its predicted cycles."""
    name: str
    program: Program

    def __post_init__(self):
        self.command_bytes = self.program.to_bytes()

    @property
    def response_bytes(self) -> int:
        return self.program.response_bytes

    @property
    def predicted_cycles(self) -> int:
        return self.program.predicted_cycles

    @property
    def frame_cuts(self) -> tuple[int, ...]:
        return self.program.frame_cuts()

    @property
    def wire_bytes(self) -> int:
        return len(self.command_bytes) + self.response_bytes


@dataclass
class LayerProgram(DeviceCall):
    """One layer call's command stream and how to rebuild ``(M, N)`` from its STORE payloads."""
    plan: TilePlan
    stores: list[tuple[int, int, int, int]]   # (row0, rows, col0, cols) per STORE, in order
    out_dtype: np.dtype
    n: int
    compulsory_bytes: int

    def assemble(self, response: bytes) -> np.ndarray:
        """Check every response header and place each STORE's payload in the output."""
        if len(response) != self.response_bytes:
            raise DeviceError(f"layer {self.name!r}: expected {self.response_bytes} response "
                              f"bytes, got {len(response)}")
        out = np.empty((self.plan.m, self.n), dtype=self.out_dtype)
        width, at = self.out_dtype.itemsize, 0
        for row0, rows, col0, cols in self.stores:
            status, opcode = response[at], response[at + 1]
            index = int.from_bytes(response[at + 2:at + 4], "little")
            if status != isa.Status.OK.value or opcode != Opcode.STORE.value:
                name = isa.Status(status).name if status in {s.value for s in isa.Status} \
                    else status
                raise DeviceError(
                    f"layer {self.name!r}: instruction #{index} (opcode {opcode:#04x}) failed "
                    f"with status {name}; the device state is undefined, reopen it",
                    status=status, opcode=opcode)
            at += isa.RESPONSE_HEADER_BYTES
            size = rows * cols * width
            block = np.frombuffer(response[at:at + size], dtype=self.out_dtype.newbyteorder("<"))
            out[row0:row0 + rows, col0:col0 + cols] = block.reshape(rows, cols)
            at += size
        return out


def _encode_scales(layer: QuantizedLinear, w_scale: np.ndarray, n: int):
    """Per-channel ``(multiplier, shift)`` of the layer's requantization, in its rounding's
    encoding (``sw.requant``): TFLite's shift travels as a two's-complement byte."""
    if Rounding(layer.rounding) == Rounding.TFLITE:
        multiplier, shift = encode_tflite_channel_scales(layer.a_scale, w_scale, layer.y_scale, n)
        return multiplier, shift & 0xFF
    scale = np.broadcast_to(onnx_scale(layer.a_scale, w_scale, layer.y_scale), (n,))
    return encode_onnx_scale(np.asarray(scale, dtype=np.float32))


def as_int8(x: np.ndarray) -> np.ndarray:
    """Activations as the device holds them: uint8 flipped to int8 by ``x - 128`` (exact, with
    the zero point moved by -128; docs/arithmetic.md), int8 as they are."""
    return (x ^ np.uint8(0x80)).view(np.int8) if x.dtype == np.uint8 else x


def scalar_int(value, what: str) -> int:
    arr = np.asarray(value)
    if arr.size != 1:
        raise CompileError(f"{what} must be a single value, got shape {arr.shape}")
    return int(arr.reshape(()))


class CompiledLinear(TilePlanner):
    """A checked :class:`QuantizedLinear` with its device-side qparams; builds layer programs."""

    def __init__(self, params: RillParams, layer: QuantizedLinear):
        self.params, self.layer, self.name = params, layer, layer.name
        w = np.asarray(layer.weights)
        if w.ndim != 2 or not np.issubdtype(w.dtype, np.integer):
            raise CompileError(f"{layer.name}: weights must be a 2-D integer (K, N) array, "
                               f"got {w.dtype} {w.shape}")
        self.k, self.n = w.shape
        if self.k == 0 or self.n == 0:
            raise CompileError(f"{layer.name}: empty weights {w.shape}")
        if np.any(np.asarray(layer.w_zp) != 0):
            raise CompileError(f"{layer.name}: weight zero point must be 0 (symmetric weights); "
                               "re-quantize the weights symmetrically (quantize_static does)")
        self.int4 = Precision(layer.precision) == Precision.INT4
        lo, hi = (-8, 7) if self.int4 else (-128, 127)
        if w.min() < lo or w.max() > hi:
            raise CompileError(f"{layer.name}: weights span [{w.min()}, {w.max()}], outside the "
                               f"{'INT4' if self.int4 else 'INT8'} range [{lo}, {hi}]")
        self.weights = w.astype(np.int64)
        self.act_dtype = np.dtype(layer.act_dtype)
        if self.act_dtype not in _OUT_TYPES:
            raise CompileError(f"{layer.name}: activations must be int8 or uint8, "
                               f"not {self.act_dtype}")
        a_zp = scalar_int(layer.a_zp, "activation zero point")
        info = np.iinfo(self.act_dtype)
        if not info.min <= a_zp <= info.max:
            raise CompileError(f"{layer.name}: activation zero point {a_zp} is not {info.dtype}")
        if self.act_dtype == np.uint8:
            a_zp -= 128   # x - 128 flips uint8 to int8 exactly (docs/arithmetic.md)
        #: The activation zero point as the device holds activations (int8).
        self.device_a_zp = a_zp
        self.out_dtype = np.dtype(layer.out_dtype)
        self.raw = self.out_dtype == np.int32
        if not self.raw and self.out_dtype not in _OUT_TYPES:
            raise CompileError(f"{layer.name}: output must be int8, uint8 or int32 (raw), "
                               f"not {self.out_dtype}")
        bias = np.zeros(self.n, np.int64) if layer.bias is None else \
            np.broadcast_to(np.asarray(layer.bias, dtype=np.int64).reshape(-1), (self.n,))
        # Exact: the device adds bias' in int32 with wrap-around, so the result is right whenever
        # onnxruntime's own int32 result is.
        folded = wrap_int32(bias - a_zp * self.weights.sum(axis=0))
        zeros = np.zeros(self.n, np.int64)
        if self.raw:
            self.qparams = (folded, zeros, zeros, zeros)
        else:
            if layer.a_scale is None or layer.w_scale is None or layer.y_scale is None:
                raise CompileError(f"{layer.name}: a requantized output needs a_scale, w_scale "
                                   "and y_scale (or out_dtype=int32 for raw accumulators)")
            w_scale = np.asarray(layer.w_scale, dtype=np.float32).reshape(-1)
            if w_scale.size not in (1, self.n):
                raise CompileError(f"{layer.name}: w_scale has {w_scale.size} entries; "
                                   f"give 1 (per tensor) or N={self.n} (per channel)")
            multiplier, shift = _encode_scales(layer, w_scale, self.n)
            y_zp = scalar_int(layer.y_zp, "output zero point")
            info = np.iinfo(self.out_dtype)
            if not info.min <= y_zp <= info.max:
                raise CompileError(f"{layer.name}: output zero point {y_zp} is not {info.dtype}")
            self.qparams = (folded, multiplier, shift, np.full(self.n, y_zp))
        clamp = None
        if layer.clamp is not None and not self.raw:
            if not params.clamp:
                raise CompileError(f"{layer.name}: this core has no programmable clamp "
                                   "(RillParams.clamp); clamp the outputs on the host")
            lo, hi = (int(v) for v in layer.clamp)
            clamp = (max(lo, y_zp) if layer.relu else lo, hi)
        self.config = Config(Precision(layer.precision), Rounding(layer.rounding),
                             bool(layer.relu) and clamp is None,
                             OutType.INT8 if self.raw else _OUT_TYPES[self.out_dtype], clamp)
        p = params
        if p.qparam_depth < p.cols:
            raise CompileError(f"qparam_depth={p.qparam_depth} is below cols={p.cols}: a STORE "
                               "cannot cover one weight tile's columns")
        self.kc = p.k_per_tile(self.int4)
        self.k_tiles, self.n_tiles = -(-self.k // self.kc), -(-self.n // p.cols)
        #: Activation values a word holds, and the words one row of activations takes.
        self.per_word = p.values_per_word(self.int4)
        self.row_words = p.act_words(self.int4, self.k_tiles)
        self._plans: dict[int, TilePlan] = {}
        self._weight_blocks: dict[tuple[int, int, int, int], np.ndarray] = {}
        self.diagonal = bool(layer.diagonal)
        self._diagonal_words = None
        if self.diagonal:
            if self.int4:
                raise CompileError(f"{layer.name}: diagonal weight tiles are INT8 only")
            try:
                self._diagonal_words = pack_diagonal_tiles(p, self.weights)
            except ValueError as error:
                raise CompileError(f"{layer.name}: {error}") from None

    @property
    def weight_word_count(self) -> int:
        """Weight SRAM words the whole matrix takes (:meth:`weight_words`)."""
        return self.k_tiles * self.n_tiles * (1 if self.diagonal else self.params.rows)

    def weight_words(self) -> np.ndarray:
        """The whole weight matrix as weight SRAM words, tile after tile
        (:func:`sw.program.pack_weight_tiles`; diagonal tiles a word each)."""
        if self._diagonal_words is not None:
            return self._diagonal_words
        return pack_weight_tiles(self.params, self.weights, self.int4)

    # -- emitting -------------------------------------------------------------------------------

    def _weight_block(self, t0: int, nt: int, h0: int, h1: int, plan: TilePlan) -> np.ndarray:
        key = (t0, nt, plan.k_groups[h0][0], sum(kt for _, kt in plan.k_groups[h0:h1]))
        if key not in self._weight_blocks:
            cols, blocks = self.params.cols, []
            n_slice = slice(t0 * cols, min(self.n, (t0 + nt) * cols))
            for k0, kt in plan.k_groups[h0:h1]:
                sub = np.zeros((kt * self.kc, nt * cols), np.int64)
                part = self.weights[k0 * self.kc:(k0 + kt) * self.kc, n_slice]
                sub[:part.shape[0], :part.shape[1]] = part
                blocks.append(pack_weight_tiles(self.params, sub, self.int4))
            self._weight_blocks[key] = np.concatenate(blocks)
        return self._weight_blocks[key]

    def _act_words(self, x: np.ndarray, plan: TilePlan, c: int, h: int) -> np.ndarray:
        row0, rows = plan.chunks[c]
        k0, kt = plan.k_groups[h]
        # Narrow words only where the whole layer's K is below a word: K groups then load
        # words of one width (a lone K tile of packed INT8 fills half a word, zero above).
        width = kt * self.kc if self.k < self.per_word else max(kt * self.kc, self.per_word)
        sub = np.zeros((rows, width), np.int8)
        part = x[row0:row0 + rows, k0 * self.kc:(k0 + kt) * self.kc]
        sub[:, :part.shape[1]] = part
        return pack_act_words(self.params, sub, self.int4)

    def predicted_cycles(self, m: int) -> int:
        """Working cycles of a call with ``m`` rows: the schedule depends on shapes, not values."""
        return self.program(np.zeros((m, self.k), self.act_dtype)).predicted_cycles

    def to_device_acts(self, x: np.ndarray) -> np.ndarray:
        """Check ``x`` (M x K of ``act_dtype``) and return it as int8 (uint8 flipped by -128)."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.k:
            raise CompileError(f"{self.name}: activations must be (M, {self.k}), got {x.shape}")
        if x.dtype != self.act_dtype:
            raise CompileError(f"{self.name}: activations must be {self.act_dtype}, "
                               f"got {x.dtype}")
        return as_int8(x)

    def program(self, x: np.ndarray) -> LayerProgram:
        """The command stream computing this layer for activations ``x`` (M x K)."""
        x = self.to_device_acts(x)
        m = x.shape[0]
        if m == 0:
            raise CompileError(f"{self.name}: no activation rows")
        plan = self.plan(m)
        prog, stores = Program(self.params), []
        for kind, args in self._steps(plan):
            if kind == "config":
                prog.configure(self.config)
            elif kind == "qparams":
                col0, width = args
                cols = slice(col0, col0 + width)
                prog.load_qparams(0, *(q[cols] for q in self.qparams))
            elif kind == "acts_all":
                words = [self._act_words(x, plan, c, h) for c in range(len(plan.chunks))
                         for h in range(len(plan.k_groups))]
                prog.load_acts(0, np.concatenate(words))
            elif kind == "acts":
                prog.load_acts(0, self._act_words(x, plan, *args))
            elif kind == "weights":
                prog.load_weights(0, self._weight_block(*args, plan))
            elif kind == "matmul":
                act, wt, acc, rows, kt, nt, accumulate = args
                prog.matmul(act, wt, acc, rows, kt, nt, accumulate=accumulate)
            elif kind == "store":
                acc, rows, width, q_addr, row0, col0 = args
                prog.store(acc, rows, width, q_addr, raw=self.raw)
                stores.append((row0, rows, col0, width))
        compulsory = compulsory_bytes(m, self.k, self.n, self.int4, self.out_dtype.itemsize)
        return LayerProgram(self.name, prog, plan, stores, self.out_dtype, self.n, compulsory)


def compile_linear(params: RillParams, layer: QuantizedLinear) -> CompiledLinear:
    return CompiledLinear(params, layer)


def compiled_for(device: Device, layer) -> CompiledLinear:
    if isinstance(layer, CompiledLinear):
        if layer.params != device.params:
            raise ParamsMismatch(f"{layer.name} was compiled for {layer.params}, but the device "
                                 f"is {device.params}; compile it for the device's params")
        return layer
    return compile_linear(device.params, layer)


def run_linear(device: Device, layer: QuantizedLinear | CompiledLinear,
               x: np.ndarray) -> np.ndarray:
    """Run one quantized matmul on ``device``: ``x`` (M x K) -> ``y`` (M x N)."""
    compiled = compiled_for(device, layer)
    lp = compiled.program(x)
    return lp.assemble(device.execute(lp.command_bytes, lp.response_bytes, lp.frame_cuts))
