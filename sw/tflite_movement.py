"""The lowering of TFLite's data-movement operators: PAD, RESHAPE and the shape arithmetic a
dynamic batch gives Flatten (SHAPE, STRIDED_SLICE, PACK), EXPAND_DIMS, SQUEEZE, SLICE, UNPACK,
GATHER, TILE, MIRROR_PAD, SPACE_TO_DEPTH, DEPTH_TO_SPACE, SPACE_TO_BATCH_ND,
BATCH_TO_SPACE_ND, and ARG_MAX / ARG_MIN, which pick an index; and the arithmetic on integers
that are not quantized around them (comparisons, SELECT, int32 ADD, SUB, MUL).

Each moves bytes without changing them (the int8 kernels copy, so the output is quantized as the
input: the front end refuses a model where it is not), which makes the host's numpy rearrangement
exact. They run on the host: a device stretch ends where one of them reads its output.

The converter emits SPACE_TO_BATCH_ND, a conv and BATCH_TO_SPACE_ND for a dilated Keras conv
(``dilation_rate``): the map cut into ``d x d`` interleaved sub-maps, one per batch entry, each
convolved densely. The conv between them runs on the device like any other.

A mixin of :class:`sw.tflite_lowering.Lowering`: its methods use the lowering's tensors,
quantization and host steps.
"""

from __future__ import annotations

import numpy as np

from .tflite_reader import TfliteOperator

__all__ = ["MovementOperators", "MOVEMENT_OPERATORS", "rearrange", "with_constants"]

#: The operators this module lowers.
MOVEMENT_OPERATORS = ("PAD", "RESHAPE", "SHAPE", "STRIDED_SLICE", "PACK", "EXPAND_DIMS",
                      "SQUEEZE", "SLICE", "UNPACK", "GATHER", "TILE", "MIRROR_PAD",
                      "SPACE_TO_DEPTH", "DEPTH_TO_SPACE", "SPACE_TO_BATCH_ND",
                      "BATCH_TO_SPACE_ND", "ARG_MAX", "ARG_MIN", "LESS", "LESS_EQUAL",
                      "GREATER", "GREATER_EQUAL", "EQUAL", "NOT_EQUAL", "SELECT", "SELECT_V2")

#: Arithmetic on integers that are not quantized (indices, shapes), as numpy computes it: an
#: Embedding layer's wrap of negative token ids (LESS, ADD, SELECT_V2) before its GATHER.
INTEGER_FUNCTIONS = {"LESS": np.less, "LESS_EQUAL": np.less_equal, "GREATER": np.greater,
                     "GREATER_EQUAL": np.greater_equal, "EQUAL": np.equal,
                     "NOT_EQUAL": np.not_equal, "SELECT": np.where, "SELECT_V2": np.where,
                     "ADD": np.add, "SUB": np.subtract, "MUL": np.multiply}

_ON_HOST = "bytes moved on the host, as LiteRT's kernel moves them"


def space_to_batch(x: np.ndarray, block: tuple[int, ...], pads, fill: int) -> np.ndarray:
    """SPACE_TO_BATCH_ND: the spatial axes padded with ``fill`` (the int8 kernel's zero point),
    then each ``block`` offset's sub-map a batch entry, offsets outer: batch index
    ``offset * N + n``."""
    spatial = len(block)
    x = np.pad(x, [(0, 0), *[tuple(p) for p in pads], *[(0, 0)] * (x.ndim - 1 - spatial)],
               constant_values=fill)
    n, sizes, rest = x.shape[0], x.shape[1:1 + spatial], x.shape[1 + spatial:]
    split = [n]
    for size, b in zip(sizes, block):
        split += [size // b, b]
    x = x.reshape(*split, *rest)
    offsets = [2 + 2 * i for i in range(spatial)]
    coarse = [1 + 2 * i for i in range(spatial)]
    tail = list(range(1 + 2 * spatial, x.ndim))
    x = x.transpose(*offsets, 0, *coarse, *tail)
    return x.reshape(n * int(np.prod(block)), *(s // b for s, b in zip(sizes, block)), *rest)


def batch_to_space(x: np.ndarray, block: tuple[int, ...], crops) -> np.ndarray:
    """BATCH_TO_SPACE_ND, :func:`space_to_batch`'s inverse: the sub-maps interleaved back,
    then ``crops`` cut from each spatial axis's start and end."""
    spatial = len(block)
    n = x.shape[0] // int(np.prod(block))
    sizes, rest = x.shape[1:1 + spatial], x.shape[1 + spatial:]
    x = x.reshape(*block, n, *sizes, *rest)
    order = [spatial]
    for i in range(spatial):
        order += [spatial + 1 + i, i]
    x = x.transpose(*order, *range(2 * spatial + 1, x.ndim))
    x = x.reshape(n, *(s * b for s, b in zip(sizes, block)), *rest)
    index = [slice(None)] + [slice(int(c0), x.shape[1 + i] - int(c1))
                             for i, (c0, c1) in enumerate(crops)]
    return x[tuple(index)]


def space_to_depth(x: np.ndarray, block: int) -> np.ndarray:
    """SPACE_TO_DEPTH (NHWC): each ``block x block`` patch's pixels as channels, row-major."""
    n, h, w, c = x.shape
    x = x.reshape(n, h // block, block, w // block, block, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h // block, w // block, block * block * c)


def depth_to_space(x: np.ndarray, block: int) -> np.ndarray:
    """DEPTH_TO_SPACE (NHWC, TensorFlow's DCR order): :func:`space_to_depth`'s inverse."""
    n, h, w, c = x.shape
    x = x.reshape(n, h, w, block, block, c // (block * block)).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h * block, w * block, c // (block * block))


def slice_of(x: np.ndarray, begin, size) -> np.ndarray:
    """SLICE: ``size[i]`` elements from ``begin[i]``; -1 to the axis's end."""
    return x[tuple(slice(int(b), None if int(s) == -1 else int(b) + int(s))
                   for b, s in zip(begin, size))]


def gathered(params: np.ndarray, indices: np.ndarray, axis: int) -> np.ndarray:
    indices = np.asarray(indices, np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= params.shape[axis]):
        raise ValueError(f"GATHER: an index outside 0..{params.shape[axis] - 1}")
    return np.take(params, indices, axis=axis)


def with_constants(values: list, operands: list[np.ndarray]) -> list:
    """An operator's inputs in order: the constants in ``values`` where they are, the run-time
    ``operands`` in the places ``values`` leaves ``None``."""
    operands = iter(operands)
    return [next(operands) if value is None else value for value in values]


def rearrange(function: str, operands: list[np.ndarray], args: dict) -> list[np.ndarray]:
    """The outputs of one data-movement operator (``function``, its TFLite name) on
    ``operands`` (its tensors that are not constants, in order), with ``args`` (its constant
    inputs and options)."""
    x = operands[0] if operands else None
    if function == "SLICE":
        return [slice_of(x, args["begin"], args["size"])]
    if function == "UNPACK":
        return [np.take(x, i, axis=args["axis"]) for i in range(x.shape[args["axis"]])]
    if function == "GATHER":
        params, indices = with_constants(args["values"], operands)
        return [gathered(params, indices, args["axis"])]
    if function == "TILE":
        return [np.tile(x, args["multiples"])]
    if function == "MIRROR_PAD":
        return [np.pad(x, args["paddings"], mode=args["mode"])]
    if function == "SPACE_TO_DEPTH":
        return [space_to_depth(x, args["block"])]
    if function == "DEPTH_TO_SPACE":
        return [depth_to_space(x, args["block"])]
    if function == "SPACE_TO_BATCH_ND":
        return [space_to_batch(x, args["block"], args["pads"], args["fill"])]
    if function == "BATCH_TO_SPACE_ND":
        return [batch_to_space(x, args["block"], args["crops"])]
    if function in INTEGER_FUNCTIONS:
        values = with_constants(args["values"], operands)
        return [np.asarray(INTEGER_FUNCTIONS[function](*values)).astype(args["dtype"])]
    if function in ("ARG_MAX", "ARG_MIN"):
        # The first index of the extremum, as the kernel's strict comparison keeps it.
        pick = np.argmax if function == "ARG_MAX" else np.argmin
        return [pick(x, axis=args["axis"]).astype(args["dtype"])]
    raise AssertionError(function)


class MovementOperators:
    """The operators' lowering methods (``_<operator>``, as :meth:`Lowering.lower` calls
    them)."""

    def _rearrange(self, op: TfliteOperator, args: dict, inputs: list[int] | None = None,
                   same_quantization: bool = True, why: str = _ON_HOST):
        inputs = op.inputs[:1] if inputs is None else inputs
        if same_quantization:
            self._same_quantization(op, inputs)
        self.host(op, "TFL_REARRANGE", dict(function=op.name, args=args), why,
                  inputs=inputs, outputs=op.outputs)

    def _axis(self, op: TfliteOperator, axis: int) -> int:
        """``axis`` of ``op``'s first input, counted from 0."""
        return int(axis) % len(self.tensor(op.inputs[0]).shape)

    def _pairs(self, op: TfliteOperator, index: int, what: str) -> tuple:
        return tuple(tuple(int(v) for v in row)
                     for row in np.reshape(self._constant(op, index, what), (-1, 2)))

    # PAD, RESHAPE, and the shape arithmetic around them: host steps of their own.

    def _pad(self, op):
        self.host(op, "TFL_PAD", dict(paddings=self._pairs(op, 1, "paddings"),
                                      value=self._quant(op.outputs[0])[1]))

    def _reshape(self, op):
        shape = op.inputs[1] if len(op.inputs) > 1 and op.inputs[1] >= 0 else None
        computed = shape is not None and self.tensor(shape).data is None
        self.host(op, "TFL_RESHAPE", dict(shape=tuple(self.tensor(op.outputs[0]).shape)),
                  inputs=op.inputs[:2] if computed else op.inputs[:1])

    # Shape arithmetic: what Keras' Flatten becomes with a dynamic batch (the batch read with
    # SHAPE, cut out with STRIDED_SLICE, PACKed with -1 into RESHAPE's new shape).

    def _shape(self, op):
        self.host(op, "TFL_SHAPE", {})

    def _strided_slice(self, op):
        if op.options.get("ellipsis_mask") or op.options.get("new_axis_mask"):
            raise self.refusal(op, "ellipsis and new-axis masks")
        begin, end, strides = (self.tensor(i).data for i in op.inputs[1:4])
        if any(v is None for v in (begin, end, strides)):
            raise self.refusal(op, "begin, end and strides must be constants")
        masks = {k: op.options.get(k, 0) for k in ("begin_mask", "end_mask",
                                                   "shrink_axis_mask")}
        self.host(op, "TFL_STRIDED_SLICE", dict(begin=begin, end=end, strides=strides,
                                                masks=masks))

    def _pack(self, op):
        values = [self.tensor(i).data for i in op.inputs]
        runtime = [i for i, v in zip(op.inputs, values) if v is None]
        attrs = dict(values=values, axis=op.options.get("axis", 0),
                     dtype=self.tensor(op.outputs[0]).dtype)
        if not runtime:
            raise self.refusal(op, "every input is a constant (the converter folds those)")
        self.host(op, "TFL_PACK", attrs, inputs=runtime)

    def _expand_dims(self, op: TfliteOperator):
        """EXPAND_DIMS and SQUEEZE only reshape: the output's shape says how."""
        self._same_quantization(op, op.inputs[:1])
        self.host(op, "TFL_RESHAPE", dict(shape=tuple(self.tensor(op.outputs[0]).shape)),
                  _ON_HOST, inputs=op.inputs[:1])

    _squeeze = _expand_dims

    def _slice(self, op: TfliteOperator):
        self._rearrange(op, dict(begin=self._ints(op, 1, "begin"),
                                 size=self._ints(op, 2, "size")))

    def _unpack(self, op: TfliteOperator):
        self._rearrange(op, dict(axis=self._axis(op, op.options.get("axis", 0))))

    def _gather(self, op: TfliteOperator):
        if op.options.get("batch_dims", 0):
            raise self.refusal(op, "batch_dims above 0")
        values = [self.tensor(i).data for i in op.inputs[:2]]   # params, indices
        if self.tensor(op.inputs[0]).dtype == np.int8:
            self._same_quantization(op, op.inputs[:1])
        runtime = [i for i, v in zip(op.inputs, values) if v is None]
        if not runtime:
            raise self.refusal(op, "every input is a constant (the converter folds those)")
        self._rearrange(op, dict(values=values, axis=self._axis(op, op.options.get("axis", 0))),
                        inputs=runtime, same_quantization=False)

    def _tile(self, op: TfliteOperator):
        self._rearrange(op, dict(multiples=self._ints(op, 1, "multiples")))

    def _mirror_pad(self, op: TfliteOperator):
        self._rearrange(op, dict(paddings=self._pairs(op, 1, "paddings"),
                                 mode="symmetric" if op.options.get("mode") else "reflect"))

    def _space_to_depth(self, op: TfliteOperator):
        self._rearrange(op, dict(block=op.options["block_size"]))

    _depth_to_space = _space_to_depth

    def _space_to_batch_nd(self, op: TfliteOperator):
        self._rearrange(op, dict(block=self._ints(op, 1, "block shape"),
                                 pads=self._pairs(op, 2, "paddings"),
                                 fill=self._quant(op.outputs[0])[1]))

    def _batch_to_space_nd(self, op: TfliteOperator):
        self._rearrange(op, dict(block=self._ints(op, 1, "block shape"),
                                 crops=self._pairs(op, 2, "crops")))

    def _arg_max(self, op: TfliteOperator):
        self._rearrange(op, dict(axis=self._axis(op, self._ints(op, 1, "axis")[0]),
                                 dtype=self.tensor(op.outputs[0]).dtype),
                        same_quantization=False)

    _arg_min = _arg_max

    def _integer(self, op: TfliteOperator):
        """Comparisons, SELECT and int32 ADD, SUB, MUL: on integers that are not quantized
        (int8 comparisons rescale, which is not done here), or, for SELECT, on bytes
        quantized as the output."""
        values = [self.tensor(i).data for i in op.inputs]
        if op.name.startswith("SELECT"):   # a bool condition, then the two choices
            self._same_quantization(op, op.inputs[1:])
        elif any(self.tensor(i).dtype not in (np.int32, np.int64) for i in op.inputs):
            raise self.refusal(op, f"{self.tensor(op.inputs[0]).dtype} operands (integers "
                               "that are not quantized only)")
        if op.options.get("activation", "NONE") != "NONE":
            raise self.refusal(op, f"a fused {op.options['activation']} on integers")
        runtime = [i for i, v in zip(op.inputs, values) if v is None]
        self._rearrange(op, dict(values=values, dtype=self.tensor(op.outputs[0]).dtype),
                        inputs=runtime, same_quantization=False,
                        why="integers that are not quantized (indices), on the host")

    _less = _less_equal = _greater = _greater_equal = _equal = _not_equal = _integer
    _select = _select_v2 = _integer
