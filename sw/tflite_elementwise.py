"""The lowering of the activations and elementwise operators Keras models hold beside MLPerf
Tiny's seven (RELU, RELU6 and RELU_N1_TO_1 on their own, LEAKY_RELU, PRELU, LOGISTIC, TANH,
GELU, EXP, LOG, ABS, RSQRT, HARD_SWISH, L2_NORMALIZATION, MUL, SUB, MAXIMUM, MINIMUM,
CONCATENATION, TRANSPOSE, REDUCE_MAX, REDUCE_MIN, REDUCE_PROD (of integers), RESIZE_BILINEAR,
RESIZE_NEAREST_NEIGHBOR, BATCH_MATMUL, SPLIT, SPLIT_V): host steps in LiteRT's reference arithmetic
(:mod:`sw.tflite_activations`, :mod:`sw.tflite_kernels`). They are cheap beside the convs
around them, which stay on the device; a stretch on chip ends where one of them reads its
output.

A mixin of :class:`sw.tflite_lowering.Lowering`: its methods use the lowering's tensors,
quantization and host steps.
"""

from __future__ import annotations

import numpy as np

from .tflite_activations import hard_swish_table, lookup_table
from .tflite_reader import TfliteOperator

__all__ = ["ElementwiseOperators", "ELEMENTWISE_OPERATORS"]

#: The operators this module lowers.
ELEMENTWISE_OPERATORS = ("RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU", "PRELU", "LOGISTIC",
                         "TANH", "GELU", "EXP", "LOG", "ABS", "RSQRT", "HARD_SWISH",
                         "L2_NORMALIZATION", "MUL", "SUB",
                         "MAXIMUM", "MINIMUM", "CONCATENATION", "TRANSPOSE", "REDUCE_MAX",
                         "REDUCE_MIN", "REDUCE_PROD", "RESIZE_BILINEAR",
                         "RESIZE_NEAREST_NEIGHBOR", "BATCH_MATMUL", "SPLIT", "SPLIT_V")

_ON_HOST = "runs on the host, as LiteRT's reference kernel computes it"


class ElementwiseOperators:
    """The operators' lowering methods (``_<operator>``, as :meth:`Lowering.lower` calls
    them)."""

    def _scales(self, op: TfliteOperator, inputs: int = 1, names=("a", "b")) -> dict:
        """The inputs' and the output's scales and zero points, by the kernels' names."""
        names = ("input",) if inputs == 1 else names
        quant = {}
        for name, index in zip(names, op.inputs):
            quant[f"{name}_scale"], quant[f"{name}_zp"] = self._quant(index)
        quant["output_scale"], quant["output_zp"] = self._quant(op.outputs[0])
        return quant

    def _relu(self, op: TfliteOperator):
        self.host(op, "TFL_RELU", dict(activation=op.name, **self._scales(op)), _ON_HOST)

    _relu6 = _relu_n1_to_1 = _relu

    def _leaky_relu(self, op: TfliteOperator):
        self.host(op, "TFL_LEAKY_RELU", dict(alpha=op.options.get("alpha", 0.0),
                                             **self._scales(op)), _ON_HOST)

    def _logistic(self, op: TfliteOperator):
        """LOGISTIC, TANH, GELU, EXP and LOG: the reference's table of 256 outputs."""
        function = op.name + ("_APPROXIMATE" if op.options.get("approximate") else "")
        table = lookup_table(function, **self._scales(op))
        self.host(op, "TFL_LOOKUP", dict(table=table, function=function), _ON_HOST)

    _tanh = _gelu = _exp = _log = _logistic

    def _abs(self, op: TfliteOperator):
        """ABS and RSQRT: their int8 kernels' integer arithmetic."""
        self.host(op, "TFL_UNARY", dict(function=op.name, **self._scales(op)), _ON_HOST)

    _rsqrt = _abs

    def _hard_swish(self, op: TfliteOperator):
        self.host(op, "TFL_LOOKUP", dict(table=hard_swish_table(**self._scales(op)),
                                         function=op.name), _ON_HOST)

    def _l2_normalization(self, op: TfliteOperator):
        if self._quant(op.outputs[0]) != (1 / 128, 0):
            raise self.refusal(op, "an output not of scale 1/128 and zero point 0 (the int8 "
                               "kernel's)")
        self.host(op, "TFL_L2_NORMALIZATION", dict(input_zp=self._quant(op.inputs[0])[1]),
                  _ON_HOST)

    def _prelu(self, op: TfliteOperator):
        self.host(op, "TFL_PRELU", self._scales(op, 2, ("input", "alpha")), _ON_HOST,
                  inputs=op.inputs[:2])

    def _same_quantization(self, op: TfliteOperator, inputs: list[int]):
        """Refuse ``op`` unless ``inputs`` are quantized as its output (its int8 kernel
        compares or copies bytes)."""
        if all(self.tensor(i).scale.size == 0 for i in (*inputs, op.outputs[0])):
            return   # integers, not quantized (the shape arithmetic around Flatten, Dense)
        out = self._quant(op.outputs[0])
        if any(self._quant(i) != out for i in inputs):
            raise self.refusal(op, "inputs quantized unlike the output (the int8 kernel takes "
                               "the bytes as they are)")

    def _constant(self, op: TfliteOperator, index: int, what: str) -> np.ndarray:
        """Input ``index`` of ``op``'s data, refusing ``op`` where it is made at run time."""
        data = self.tensor(op.inputs[index]).data
        if data is None:
            raise self.refusal(op, f"its {what} must be a constant")
        return data

    def _ints(self, op: TfliteOperator, index: int, what: str) -> tuple[int, ...]:
        """Constant input ``index`` of ``op`` as a tuple of ints."""
        return tuple(int(v) for v in np.ravel(self._constant(op, index, what)))

    def _axes(self, op: TfliteOperator) -> tuple[int, ...]:
        """A reduction's constant axes (input 1) of its first input, counted from 0, sorted."""
        rank = len(self.tensor(op.inputs[0]).shape)
        return tuple(sorted({a % rank for a in self._ints(op, 1, "axes")}))

    def _maximum(self, op: TfliteOperator):
        self._same_quantization(op, op.inputs[:2])
        self.host(op, "TFL_EXTREMUM", dict(function=op.name), _ON_HOST, inputs=op.inputs[:2])

    _minimum = _maximum

    def _reduce_max(self, op: TfliteOperator):
        """REDUCE_MAX and REDUCE_MIN; REDUCE_PROD of integers (the shape arithmetic of a Dense
        layer on a sequence: the int8 kernel's rescaled product is refused)."""
        if op.name == "REDUCE_PROD" and self.tensor(op.inputs[0]).dtype != np.int32:
            raise self.refusal(op, f"{self.tensor(op.inputs[0]).dtype} (int32 only: shape "
                               "arithmetic)")
        self._same_quantization(op, op.inputs[:1])
        self.host(op, "TFL_REDUCE", dict(function=op.name, axes=self._axes(op),
                                         keep_dims=op.options.get("keep_dims", False)),
                  _ON_HOST)

    _reduce_min = _reduce_prod = _reduce_max

    def _resize_bilinear(self, op: TfliteOperator):
        self._same_quantization(op, op.inputs[:1])
        size = self._constant(op, 1, "output size")
        self.host(op, "TFL_RESIZE", dict(
            function=op.name, size=tuple(int(v) for v in size),
            align_corners=op.options.get("align_corners", False),
            half_pixel_centers=op.options.get("half_pixel_centers", False)), _ON_HOST)

    _resize_nearest_neighbor = _resize_bilinear

    def _batch_matmul(self, op: TfliteOperator):
        self.host(op, "TFL_BATCH_MATMUL", dict(adj_x=op.options.get("adj_x", False),
                                               adj_y=op.options.get("adj_y", False),
                                               **self._scales(op, 2)),
                  "runs on the host, as LiteRT's reference kernel computes it (operands made at "
                  "run time)", int(np.prod(self.tensor(op.outputs[0]).shape))
                  * self.tensor(op.inputs[0]).shape[-2 if op.options.get("adj_x") else -1],
                  inputs=op.inputs[:2])

    def _split(self, op: TfliteOperator):
        """SPLIT (axis, input) and SPLIT_V (input, sizes, axis): the outputs' sizes along the
        axis are theirs."""
        axis_position, source = (0, op.inputs[1]) if op.name == "SPLIT" else (2, op.inputs[0])
        rank = len(self.tensor(source).shape)
        axis = self._ints(op, axis_position, "axis")[0] % rank
        sizes = [self.tensor(i).shape[axis] for i in op.outputs]
        self.host(op, "TFL_SPLIT", dict(axis=axis, cuts=tuple(int(c) for c in
                                                              np.cumsum(sizes)[:-1])),
                  _ON_HOST, inputs=[source], outputs=op.outputs)

    _split_v = _split

    def _transpose(self, op: TfliteOperator):
        perm = self._constant(op, 1, "permutation")
        self.host(op, "TFL_TRANSPOSE", dict(perm=tuple(int(p) for p in perm)), _ON_HOST)

    def _mul(self, op: TfliteOperator):
        self.host(op, "TFL_MUL", dict(act_range=self._act_range(op), **self._scales(op, 2)),
                  _ON_HOST, inputs=op.inputs[:2])

    def _sub(self, op: TfliteOperator):
        self.host(op, "TFL_ADD", dict(act_range=self._act_range(op), subtract=True,
                                      **self._scales(op, 2)),
                  "runs on the host (the vector unit's rounding is not symmetric in sign)",
                  inputs=op.inputs[:2])

    def _concatenation(self, op: TfliteOperator):
        self._same_quantization(op, op.inputs)
        if op.options.get("activation", "NONE") != "NONE":
            raise self.refusal(op, f"a fused {op.options['activation']}")
        rank = len(self.tensor(op.outputs[0]).shape)
        self.host(op, "TFL_CONCATENATION", dict(axis=int(np.int64(op.options["axis"]) % rank)),
                  _ON_HOST, inputs=op.inputs)
