"""How a full-integer TFLite graph becomes Rill's model representation
(:class:`sw.model_ir.QuantizedModel`): each operator a device layer, a vector step or a host step
in LiteRT's reference arithmetic (``docs/tflite-arithmetic.md``).

Where each operator runs:

- **CONV_2D** on the device's array (a dilated one with zeros between its taps, a grouped one
  with zeros where a group does not read), requantized there with TFLite's
  ``MultiplyByQuantizedMultiplier`` (``Rounding.TFLITE``), its feature map walked on the device
  where the core can, a fused RELU6 or RELU_N1_TO_1 clamped by the requantizer (on a core
  without ``RillParams.clamp``, on the host: exact, the clamp lies inside the int8 range). A
  strided one over a few channels of a map the host makes runs over that map's pixel blocks
  (:mod:`sw.space_to_depth`).
- **DEPTHWISE_CONV_2D** on the array, walked depthwise where it can, if its filters and map fit
  (:mod:`sw.tflite_depthwise`).
- **FULLY_CONNECTED**: its int32 sums on the device (``STORE RAW``); the reference kernel
  requantizes them in double precision, which the host does exactly.
- **ADD** of two tensors of one shape, **AVERAGE_POOL_2D** over the whole map and **MEAN** over
  its height and width, on the vector unit where the core has one (:mod:`sw.vector_step`); a
  broadcasting ADD, one whose multipliers need a left shift, any other pooling or mean on the
  host, like **SOFTMAX, QUANTIZE, DEQUANTIZE** (:mod:`sw.tflite_host_ops`).
- The activations and elementwise operators beyond the seven (:mod:`sw.tflite_elementwise`)
  and the operators that move bytes, PAD, RESHAPE and the shape arithmetic among them
  (:mod:`sw.tflite_movement`), on the host.

Any other operator is refused at load, by name; each lowered one leaves a :class:`Placement`.

TFLite lays activations out NHWC; the device's convolutions take NCHW. Transposes are host steps,
placed only where a tensor changes hands between the two, so consecutive device convs hand their
maps on directly (and can chain on chip).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hw.isa import Rounding
from hw.params import RillParams

from .compiler import QuantizedLinear
from .conv import QuantizedConv
from .model_ir import DeviceLayer, HostStep
from .requant import encode_tflite_channel_scales
from .space_to_depth import SpaceToDepth, plan_space_to_depth
from .tflite_depthwise import array_kernel, depthwise_on_array
from .tflite_elementwise import ELEMENTWISE_OPERATORS, ElementwiseOperators
from .tflite_kernels import activation_range, same_padding
from .tflite_movement import MOVEMENT_OPERATORS, MovementOperators
from .tflite_pooling import PoolingOperators
from .tflite_reader import TfliteGraph, TfliteOperator
from .vector_ops import add_stages
from .vector_step import VectorStep

__all__ = ["Lowering", "Placement", "TfliteImportError", "UnsupportedTfliteOperator",
           "SUPPORTED_OPERATORS"]

SUPPORTED_OPERATORS = ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED",
                       "ADD", "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "SUM", "SOFTMAX",
                       "QUANTIZE", "DEQUANTIZE", *ELEMENTWISE_OPERATORS, *MOVEMENT_OPERATORS)
#: Operators whose input may be of any type (shapes are int32).
_ANY_TYPE_OPERATORS = ("DEQUANTIZE", "RESHAPE", "SHAPE", "STRIDED_SLICE", "PACK", "CONCATENATION",
                       "GATHER", "EXPAND_DIMS", "SQUEEZE", "SLICE", "TILE", "UNPACK",
                       "REDUCE_PROD", "SELECT", "SELECT_V2")
#: Operators whose input may be float32.
_FLOAT_INPUT_OPERATORS = ("QUANTIZE", "ARG_MAX", "ARG_MIN")
#: Operators whose input may be int32 (integers that are not quantized: indices).
_INT32_INPUT_OPERATORS = ("ADD", "SUB", "MUL", "LESS", "LESS_EQUAL", "GREATER",
                          "GREATER_EQUAL", "EQUAL", "NOT_EQUAL")
_DEVICE_ACTIVATIONS = ("NONE", "RELU")

_NCHW, _NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


class TfliteImportError(ValueError):
    """A TFLite model or input Rill cannot take."""


class UnsupportedTfliteOperator(TfliteImportError):
    def __init__(self, op: TfliteOperator, why: str = ""):
        why = why or "this operator is not supported"
        super().__init__(f"operator #{op.index} ({op.name}): {why}. Supported: "
                         f"{', '.join(SUPPORTED_OPERATORS)}")
        self.op_name, self.index = op.name, op.index


@dataclass(frozen=True)
class Placement:
    """Where one operator runs, and its multiply-accumulates per inference."""
    index: int
    op: str
    where: str        # "device", "device + host" (the MACs on the device) or "host"
    macs: int
    why: str = ""
    host_part: str = ""   # with "device + host": what the host does


class Lowering(PoolingOperators, ElementwiseOperators, MovementOperators):
    """Builds the steps of a :class:`QuantizedModel` from a :class:`TfliteGraph`."""

    def __init__(self, graph: TfliteGraph, params: RillParams):
        self.graph, self.params, self.steps, self.placements = graph, params, [], []
        self.constants: dict[str, np.ndarray] = {}   # constant operands the steps read
        self.nchw: set[str] = set()    # tensors that exist in NCHW (device conv outputs)
        self.nhwc: set[str] = set()    # tensors that exist in TFLite's own layout
        self.depthwise_on_array = depthwise_on_array(graph, params)

    def tensor(self, index: int):
        return self.graph.tensors[index]

    def name(self, index: int) -> str:
        return f"t{index}:{self.graph.tensors[index].name}"

    def layout(self, index: int, nchw: bool) -> str:
        """The tensor's name in the layout a step needs, adding a transpose when it has only
        the other one."""
        name = self.name(index)
        want, have = (f"{name}@nchw", name) if nchw else (name, f"{name}@nchw")
        data = self.tensor(index).data
        if data is not None:   # a constant operand, stored in the layout asked for
            if nchw:   # broadcasting over the batch as it does in NHWC
                data = data.reshape((1,) * (4 - data.ndim) + data.shape).transpose(_NCHW)
            self.constants[want] = data
            return want
        present = self.nchw if nchw else self.nhwc
        if name not in present:
            perm = _NCHW if nchw else _NHWC
            self.steps.append(HostStep(f"{name} to {'NCHW' if nchw else 'NHWC'}", "Transpose",
                                       (have,), (want,), {"perm": perm}))
            present.add(name)
        return want

    def host(self, op: TfliteOperator, kind: str, attrs: dict, why: str = "", macs: int = 0,
             inputs: list[int] | None = None, outputs: list[int] | None = None):
        """A host step for ``op``, on its first input (both for ADD) or on ``inputs``, making
        its first output (or ``outputs``)."""
        if inputs is None:
            inputs = op.inputs[:2 if kind == "TFL_ADD" else 1]
        inputs = tuple(self.layout(i, nchw=False) for i in inputs)
        names = tuple(self.name(i) for i in (op.outputs[:1] if outputs is None else outputs))
        self.steps.append(HostStep(f"#{op.index} {op.name}", kind, inputs, names, attrs))
        self.nhwc.update(names)
        self.placements.append(Placement(op.index, op.name, "host", macs, why))

    @staticmethod
    def refusal(op: TfliteOperator, why: str) -> UnsupportedTfliteOperator:
        """The error refusing ``op`` (for the operator mixins, which this module imports)."""
        return UnsupportedTfliteOperator(op, why)

    def lower(self, op: TfliteOperator):
        method = getattr(self, f"_{op.name.lower()}", None)
        if op.name in ("ADD", "SUB", "MUL") and self.tensor(op.outputs[0]).dtype == np.int32:
            method = self._integer   # indices, not quantized (an Embedding's)
        if op.name not in SUPPORTED_OPERATORS or method is None:
            floats = [i for i in op.inputs if i >= 0 and self.tensor(i).dtype == np.float32]
            raise UnsupportedTfliteOperator(op, "this operator is not supported, in float32 "
                                            "as the converter left it (Keras' "
                                            "LayerNormalization, ELU, SELU, softplus stay "
                                            "float)" if floats else "")
        if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED") \
                and self.tensor(op.inputs[1]).dtype != np.int8:
            raise UnsupportedTfliteOperator(
                op, f"{self.tensor(op.inputs[1]).dtype} weights: Rill runs full-integer int8 "
                "models; convert with optimizations=[tf.lite.Optimize.DEFAULT], a "
                "representative_dataset and supported_ops=[tf.lite.OpsSet.TFLITE_BUILTINS_INT8]")
        data = {"TRANSPOSE_CONV": 2, "SPLIT": 1}.get(op.name, 0)   # the others are shapes
        for index in op.inputs[data:data + 1]:
            # float32 only into a QUANTIZE (a model's float input) or an index (ARG_MAX after
            # the output's DEQUANTIZE); uint8 only into a QUANTIZE (the older recipe's input)
            types = (np.int8, *((np.float32,) if op.name in _FLOAT_INPUT_OPERATORS else ()),
                     *((np.uint8,) if op.name == "QUANTIZE" else ()),
                     *((np.int32,) if op.name in _INT32_INPUT_OPERATORS else ()))
            dtype = self.tensor(index).dtype
            if dtype == np.float32 and np.float32 not in types \
                    and op.name not in _ANY_TYPE_OPERATORS:
                raise UnsupportedTfliteOperator(op, "float32 input: the converter left this "
                                                "operator in float (Rill runs full-integer "
                                                "int8 operators)")
            if dtype not in types and op.name not in _ANY_TYPE_OPERATORS:
                raise UnsupportedTfliteOperator(op, f"input type {dtype} (full-integer int8 "
                                                "models only)")
        method(op)

    # -- operators -------------------------------------------------------------------------------

    def _quant(self, index: int) -> tuple[float, int]:
        t = self.tensor(index)
        if t.scale.size == 0:
            raise TfliteImportError(f"tensor {t.name!r} is not quantized")
        return float(t.scale[0]), int(t.zero_point[0]) if t.zero_point.size else 0

    def _act_range(self, op: TfliteOperator) -> tuple[int, int]:
        scale, zp = self._quant(op.outputs[0])
        return activation_range(op.options.get("activation", "NONE"), scale, zp)

    def _window(self, op, kernel) -> tuple[tuple[int, int, int, int], tuple[int, int]]:
        """``(pads, out)`` of a window op over its NHWC input (TFLite's SAME or VALID)."""
        _, h, w, _ = self.tensor(op.inputs[0]).shape
        stride, dilation = op.options["stride"], op.options.get("dilation", (1, 1))
        if op.options["padding"] == "SAME":
            (oh, top, bottom), (ow, left, right) = (
                same_padding(h, kernel[0], stride[0], dilation[0]),
                same_padding(w, kernel[1], stride[1], dilation[1]))
            return (top, left, bottom, right), (oh, ow)
        return (0, 0, 0, 0), tuple(self.tensor(op.outputs[0]).shape[1:3])

    def _bias(self, op, position: int = 2) -> np.ndarray | None:
        """The bias at input ``position`` (conv, fully connected: 2), if the operator has one."""
        present = len(op.inputs) > position and op.inputs[position] >= 0
        return self.tensor(op.inputs[position]).data if present else None

    def _conv_2d(self, op):
        filters = self.tensor(op.inputs[1]).data
        pads, _ = self._window(op, filters.shape[1:3])
        macs = int(np.prod(self.tensor(op.outputs[0]).shape[1:])) * int(np.prod(filters.shape[1:]))
        filters = self._dilated(op, self._ungrouped(op, filters).transpose(0, 3, 1, 2))
        blocks = self._pixel_blocks(op, filters, pads)
        if blocks is None:
            self._device_conv(op, filters, pads, macs)
            return
        # Named for this conv: another conv on the same input may cut it differently.
        cut = f"{self.name(op.inputs[0])}@blocks#{op.index}"
        self.steps.append(HostStep(f"#{op.index} input in {blocks.block}x{blocks.block} blocks",
                                   "PixelBlocks", (self.layout(op.inputs[0], False),), (cut,),
                                   {"blocks": blocks}))
        self._device_conv(op, blocks.filters(filters), blocks.conv_pads, macs,
                          blocks=(cut, (blocks.height, blocks.width), blocks.block))

    @staticmethod
    def _dilated(op, filters: np.ndarray) -> np.ndarray:
        """``(C_out, C, kh, kw)`` filters with the operator's dilation as zeros between the
        taps (:func:`sw.tflite_depthwise.array_kernel`)."""
        dh, dw = op.options.get("dilation", (1, 1))
        if (dh, dw) == (1, 1):
            return filters
        spread = np.zeros((*filters.shape[:2], *array_kernel(op, filters.shape[2:])),
                          filters.dtype)
        spread[:, :, ::dh, ::dw] = filters
        return spread

    def _ungrouped(self, op, filters: np.ndarray) -> np.ndarray:
        """A grouped conv's (Keras' ``groups``) ``(C_out, kh, kw, C / groups)`` filters as one
        conv's over all ``C`` input channels, zero where an output channel's group does not
        read: the sums are the same, exactly, and the array runs it like any conv."""
        channels, per_group = self.tensor(op.inputs[0]).shape[3], filters.shape[3]
        if per_group == channels:
            return filters
        groups = channels // per_group
        if channels % per_group or filters.shape[0] % groups:
            raise UnsupportedTfliteOperator(
                op, f"filters of {per_group} input channels over {channels} (not a grouping)")
        dense = np.zeros((*filters.shape[:3], channels), filters.dtype)
        outputs_per_group = filters.shape[0] // groups
        for out_channel, taps in enumerate(filters):
            group = out_channel // outputs_per_group
            dense[out_channel, ..., group * per_group:(group + 1) * per_group] = taps
        return dense

    def _pixel_blocks(self, op, filters: np.ndarray, pads) -> SpaceToDepth | None:
        """How a strided conv over a few channels of a map the host makes runs as a conv of
        stride 1 over the map's pixel blocks (:mod:`sw.space_to_depth`), or None."""
        if self.name(op.inputs[0]) in self.nchw or not self.params.conv_addressing:
            return None
        _, h, w, channels = self.tensor(op.inputs[0]).shape
        return plan_space_to_depth((h, w), channels, filters.shape[2:], op.options["stride"],
                                   pads, self._quant(op.inputs[0])[1],
                                   self.params.values_per_word(False),
                                   self.params.k_per_tile(False))

    def _device_conv(self, op, filters: np.ndarray, pads, macs: int, depthwise: bool = False,
                     blocks: tuple[str, tuple[int, int], int] | None = None,
                     operands: tuple[int, int, int] | None = None, why: str | None = None):
        """``op`` on the array as a convolution with ``(C_out, C, kh, kw)`` ``filters``
        (``depthwise``: zero off the diagonal, :class:`sw.conv.QuantizedConv`); with ``blocks``
        (the input's name, its size in pixel blocks, the block's side), of stride 1 over those
        blocks. ``operands``: the input's and the filters' tensors and the bias's input position,
        where they are not the operator's first three."""
        activation = op.options.get("activation", "NONE")
        source_index, filter_index, bias_position = operands or (*op.inputs[:2], 2)
        (s_in, zp_in), (s_out, zp_out) = self._quant(source_index), self._quant(op.outputs[0])
        bias = self._bias(op, bias_position)
        # RELU6 and RELU_N1_TO_1: the requantizer's programmable clamp, where the core has it.
        on_device = activation in _DEVICE_ACTIVATIONS or self.params.clamp
        linear = QuantizedLinear(
            QuantizedConv.filters_to_weights(filters), a_scale=s_in, a_zp=zp_in,
            w_scale=self.tensor(filter_index).scale, y_scale=s_out, y_zp=zp_out,
            bias=bias, relu=activation == "RELU", rounding=Rounding.TFLITE,
            clamp=(self._act_range(op) if activation not in _DEVICE_ACTIVATIONS and on_device
                   else None),
            name=f"#{op.index} {op.name}")
        conv = QuantizedConv(linear, tuple(filters.shape[2:]), pads,
                             (1, 1) if blocks else tuple(op.options["stride"]), depthwise)
        output = self.name(op.outputs[0])
        clamped = not on_device
        source, in_size, _ = blocks or (self.layout(op.inputs[0], True),
                                        self.tensor(op.inputs[0]).shape[1:3], 1)
        self.steps.append(DeviceLayer(linear.name, "conv", source,
                                      f"{output}@nchw" + ("@unclamped" if clamped else ""),
                                      linear, conv, in_size=in_size))
        if clamped:
            # The requantizer clamps to the int8 range (and ReLU's floor) only; the clamp of
            # RELU6 or RELU_N1_TO_1 lies inside that range, so clamping afterwards is exact.
            self.steps.append(HostStep(f"#{op.index} {activation}", "TFL_CLAMP",
                                       (f"{output}@nchw@unclamped",), (f"{output}@nchw",),
                                       {"range": self._act_range(op)}))
        self.nchw.add(output)
        if why is None:
            why = (f"stride 1 over its input in {blocks[2]}x{blocks[2]} pixel blocks (space to "
                   "depth on the host)") if blocks else ""
        self.placements.append(
            Placement(op.index, op.name, "device + host", macs,
                      f"fused {activation} clamped on the host", f"{activation} clamp")
            if clamped else Placement(op.index, op.name, "device", macs, why))

    def _conv_attrs(self, op, filters, pads) -> dict:
        channels = self.tensor(op.outputs[0]).shape[-1]
        multiplier, shift = encode_tflite_channel_scales(
            self._quant(op.inputs[0])[0], self.tensor(op.inputs[1]).scale,
            self._quant(op.outputs[0])[0], channels)
        bias = self._bias(op)
        return dict(filters=filters, bias=np.zeros(channels, np.int64) if bias is None else bias,
            input_zp=self._quant(op.inputs[0])[1], output_zp=self._quant(op.outputs[0])[1],
            multiplier=multiplier, shift=shift, stride=tuple(op.options["stride"]),
            dilation=tuple(op.options.get("dilation", (1, 1))), pads=pads,
            act_range=self._act_range(op))

    def _transpose_conv(self, op):
        """On the array as a conv of stride 1 with the filters flipped, over the input's pixels
        spread ``stride`` apart among zero points on the host
        (``sw.tflite_kernels.transpose_conv_input``): inputs output shape, filters, input map,
        bias."""
        shape, filters = (self.tensor(i).data for i in op.inputs[:2])
        if shape is None or filters is None:
            raise UnsupportedTfliteOperator(op, "its output shape and filters must be constants")
        (s_in, zp_in), (s_out, zp_out) = self._quant(op.inputs[2]), self._quant(op.outputs[0])
        (out_h, out_w), (kh, kw) = (int(v) for v in shape[1:3]), filters.shape[1:3]
        stride = tuple(op.options["stride"])
        pads = ((same_padding(out_h, kh, stride[0])[1], same_padding(out_w, kw, stride[1])[1])
                if op.options["padding"] == "SAME" else (0, 0))
        macs = int(np.prod(self.tensor(op.inputs[2]).shape[1:3])) * int(np.prod(filters.shape))
        if op.options.get("activation", "NONE") not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
            multiplier, shift = encode_tflite_channel_scales(
                s_in, self.tensor(op.inputs[1]).scale, s_out, filters.shape[0])
            self.host(op, "TFL_TRANSPOSE_CONV",
                      dict(filters=filters, bias=self._bias(op, 3), output_size=(out_h, out_w),
                           input_zp=zp_in, multiplier=multiplier, shift=shift,
                           output_zp=zp_out, stride=stride, pads=pads,
                           act_range=self._act_range(op)),
                      f"a fused {op.options['activation']}", macs, inputs=op.inputs[2:3])
            return
        spread = f"{self.name(op.inputs[2])}@spread#{op.index}"
        self.steps.append(HostStep(
            f"#{op.index} input spread {stride[0]}x{stride[1]}", "TFL_TRANSPOSE_CONV_INPUT",
            (self.layout(op.inputs[2], False),), (spread,),
            dict(stride=stride, pads=pads, output_size=(out_h, out_w), kernel=(kh, kw),
                 zero_point=zp_in)))
        flipped = np.ascontiguousarray(filters[:, ::-1, ::-1, :].transpose(0, 3, 1, 2))
        self._device_conv(op, flipped, (0, 0, 0, 0), macs,
                          blocks=(spread, (out_h + kh - 1, out_w + kw - 1), 1),
                          operands=(op.inputs[2], op.inputs[1], 3),
                          why="a conv of stride 1 over its input spread among zero points "
                              "on the host")

    def _depthwise_conv_2d(self, op):
        filters = self.tensor(op.inputs[1]).data
        pads, _ = self._window(op, filters.shape[1:3])
        macs = int(np.prod(self.tensor(op.outputs[0]).shape[1:])) * int(np.prod(filters.shape[1:3]))
        channels, outputs = self.tensor(op.inputs[0]).shape[3], filters.shape[3]
        if op.index in self.depthwise_on_array:
            # The dense conv's filters, zero off each output channel's own input channel
            # (exact); walked depthwise where each channel has one output.
            dense = np.zeros((outputs, channels, *filters.shape[1:3]), filters.dtype)
            out = np.arange(outputs)
            dense[out, out // (outputs // channels)] = filters[0].transpose(2, 0, 1)
            self._device_conv(op, self._dilated(op, dense), pads, macs,
                              depthwise=outputs == channels)
            return
        self.host(op, "TFL_DEPTHWISE_CONV_2D", self._conv_attrs(op, filters, pads),
                  "its map or filters do not fit the SRAMs beside the model's other layers"
                  if self.params.conv_addressing else "no conv walk on this core", macs)

    def _fully_connected(self, op):
        filters = self.tensor(op.inputs[1]).data
        if filters is None or filters.ndim != 2:
            raise UnsupportedTfliteOperator(op, "its weights must be a constant [O, I] tensor")
        # keep_num_dims (a Dense layer on a sequence or a map): the rows as without it, their
        # outputs given the input's leading axes back.
        keep = op.options.get("keep_num_dims") and len(self.tensor(op.inputs[0]).shape) > 2
        (s_in, zp_in), (s_out, zp_out) = self._quant(op.inputs[0]), self._quant(op.outputs[0])
        rows = self.layout(op.inputs[0], False)
        if len(self.tensor(op.inputs[0]).shape) != 2:
            flat = f"{self.name(op.inputs[0])}@rows"
            self.steps.append(HostStep(f"#{op.index} flatten", "TFL_RESHAPE", (rows,), (flat,),
                                       {"shape": (1, filters.shape[1])}))
            rows = flat
        linear = QuantizedLinear(filters.T, a_scale=s_in, a_zp=zp_in, bias=self._bias(op),
                                 out_dtype=np.int32, name=f"#{op.index} FULLY_CONNECTED")
        sums = f"{self.name(op.outputs[0])}@sums"
        out = self.name(op.outputs[0])
        self.steps.append(DeviceLayer(linear.name, "gemm", rows, sums, linear))
        self.steps.append(HostStep(f"#{op.index} requantize", "TFL_FC_REQUANTIZE", (sums,),
                                   (f"{out}@rows" if keep else out,),
                                   dict(input_scale=s_in, filter_scale=self.tensor(op.inputs[1])
                                        .scale, output_scale=s_out, output_zp=zp_out,
                                        act_range=self._act_range(op))))
        if keep:
            self.steps.append(HostStep(f"#{op.index} unflatten", "TFL_RESHAPE", (f"{out}@rows",),
                                       (out,), {"shape": tuple(self.tensor(op.outputs[0]).shape)}))
        self.nhwc.add(out)
        self.placements.append(Placement(op.index, op.name, "device + host",
                                         int(np.prod(filters.shape)),
                                         "requantized in double precision on the host",
                                         "requantization"))

    def _vector(self, op, kind: str, inputs: list[int], **fields):
        """``op`` on the vector unit, in NCHW where all its inputs are (device conv outputs);
        a ``flat`` output (``(N, C)``) has one layout."""
        nchw = all(self.name(i) in self.nchw for i in inputs)
        output = self.name(op.outputs[0])
        out_nchw = nchw and not fields.get("flat")
        self.steps.append(VectorStep(f"#{op.index} {op.name}", kind,
                                     tuple(self.layout(i, nchw) for i in inputs),
                                     (f"{output}@nchw" if out_nchw else output,),
                                     channels_last=not nchw, **fields))
        (self.nchw if out_nchw else self.nhwc).add(output)
        self.placements.append(Placement(
            op.index, op.name, "device", 0, "on the vector unit inside the stretches of resident "
            "layers run on chip; elsewhere on the host, in the same arithmetic"))

    def _add(self, op):
        (a_scale, a_zp), (b_scale, b_zp) = self._quant(op.inputs[0]), self._quant(op.inputs[1])
        s_out, zp_out = self._quant(op.outputs[0])
        quant = dict(a_scale=a_scale, a_zp=a_zp, b_scale=b_scale, b_zp=b_zp,
                     output_scale=s_out, output_zp=zp_out, act_range=self._act_range(op))
        stages = add_stages(**quant)
        shapes = [tuple(self.tensor(i).shape) for i in op.inputs[:2]]
        constant = any(self.tensor(i).data is not None for i in op.inputs[:2])
        if self.params.vector_unit and shapes[0] == shapes[1] and stages is not None \
                and not constant:
            self._vector(op, "add", op.inputs[:2], stages=stages)
            return
        why = ("no vector unit on this core" if not self.params.vector_unit
               else "an operand is a constant" if constant
               else f"broadcasts {shapes[0]} and {shapes[1]}" if shapes[0] != shapes[1]
               else "a multiplier needs a left shift")
        self.host(op, "TFL_ADD", quant, why)

    def _softmax(self, op):
        self.host(op, "TFL_SOFTMAX", dict(input_scale=self._quant(op.inputs[0])[0],
                                          beta=op.options.get("beta", 1.0)),
                  "runs on the host, as LiteRT's reference kernel computes it")

    def _quantize(self, op):
        s_out, zp_out = self._quant(op.outputs[0])
        if self.tensor(op.inputs[0]).dtype == np.float32:
            self.host(op, "TFL_QUANTIZE", dict(scale=s_out, zero_point=zp_out))
        else:
            s_in, zp_in = self._quant(op.inputs[0])
            self.host(op, "TFL_REQUANTIZE", dict(input_scale=s_in, input_zp=zp_in,
                                                 output_scale=s_out, output_zp=zp_out,
                                                 dtype=self.tensor(op.outputs[0]).dtype))

    def _dequantize(self, op):
        scale, zp = self._quant(op.inputs[0])
        self.host(op, "TFL_DEQUANTIZE", dict(scale=scale, zero_point=zp))
