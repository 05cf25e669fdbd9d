"""A TFLite flatbuffer read into plain Python: tensors (shape, type, quantization, constant data)
and operators (name, inputs, outputs, options), through the ``tflite`` package's generated
schema. Only what the front end (:mod:`sw.tflite_import`) lowers is read; subgraph 0 is the
model."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tflite

__all__ = ["TfliteTensor", "TfliteOperator", "TfliteGraph", "read_tflite", "InvalidTflite"]


class InvalidTflite(ValueError):
    """The file or bytes are not a TFLite model this reader can take."""


_DTYPES = {tflite.TensorType.INT8: np.int8, tflite.TensorType.UINT8: np.uint8,
           tflite.TensorType.INT32: np.int32, tflite.TensorType.INT64: np.int64,
           tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.INT16: np.int16,
           tflite.TensorType.BOOL: np.bool_}
_OPERATORS = {code: name for name, code in vars(tflite.BuiltinOperator).items()
              if not name.startswith("_")}
_ACTIVATIONS = {code: name for name, code in vars(tflite.ActivationFunctionType).items()
                if not name.startswith("_")}
_PADDING = {tflite.Padding.SAME: "SAME", tflite.Padding.VALID: "VALID"}


@dataclass
class TfliteTensor:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: np.ndarray            # float32; empty when not quantized
    zero_point: np.ndarray       # int64
    axis: int                    # the quantized dimension of per-channel scales
    data: np.ndarray | None      # constant tensors (weights, biases, shapes)


@dataclass
class TfliteOperator:
    index: int
    name: str                    # the builtin operator's name, e.g. "CONV_2D"
    inputs: list[int]            # tensor indices; -1 for an absent optional input
    outputs: list[int]
    options: dict = field(default_factory=dict)


@dataclass
class TfliteGraph:
    tensors: list[TfliteTensor]
    operators: list[TfliteOperator]
    inputs: list[int]
    outputs: list[int]


def _options(op, name: str) -> dict:
    """The builtin options the front end uses, as a plain dict."""
    table = op.BuiltinOptions()
    if table is None:
        return {}
    kinds = {
        "CONV_2D": tflite.Conv2DOptions, "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
        "FULLY_CONNECTED": tflite.FullyConnectedOptions, "ADD": tflite.AddOptions,
        "AVERAGE_POOL_2D": tflite.Pool2DOptions, "MAX_POOL_2D": tflite.Pool2DOptions,
        "MEAN": tflite.ReducerOptions, "REDUCE_MAX": tflite.ReducerOptions,
        "SOFTMAX": tflite.SoftmaxOptions,
        "STRIDED_SLICE": tflite.StridedSliceOptions, "PACK": tflite.PackOptions,
        "SUB": tflite.SubOptions, "MUL": tflite.MulOptions,
        "CONCATENATION": tflite.ConcatenationOptions, "LEAKY_RELU": tflite.LeakyReluOptions,
        "RESIZE_BILINEAR": tflite.ResizeBilinearOptions,
        "TRANSPOSE_CONV": tflite.TransposeConvOptions,
        "SPLIT": tflite.SplitOptions, "SPLIT_V": tflite.SplitVOptions,
        "BATCH_MATMUL": tflite.BatchMatMulOptions,
        "RESIZE_NEAREST_NEIGHBOR": tflite.ResizeNearestNeighborOptions,
        "SUM": tflite.ReducerOptions, "REDUCE_MIN": tflite.ReducerOptions,
        "REDUCE_PROD": tflite.ReducerOptions, "UNPACK": tflite.UnpackOptions,
        "GATHER": tflite.GatherOptions, "MIRROR_PAD": tflite.MirrorPadOptions,
        "SPACE_TO_DEPTH": tflite.SpaceToDepthOptions,
        "DEPTH_TO_SPACE": tflite.DepthToSpaceOptions, "GELU": tflite.GeluOptions,
    }
    if name not in kinds:
        return {}
    opts = kinds[name]()
    opts.Init(table.Bytes, table.Pos)
    out = {}
    if hasattr(opts, "FusedActivationFunction"):
        out["activation"] = _ACTIVATIONS.get(opts.FusedActivationFunction(), "UNKNOWN")
    if hasattr(opts, "Padding"):
        out["padding"] = _PADDING.get(opts.Padding(), "UNKNOWN")
        out["stride"] = (opts.StrideH(), opts.StrideW())
    if hasattr(opts, "DilationHFactor"):
        out["dilation"] = (opts.DilationHFactor(), opts.DilationWFactor())
    if hasattr(opts, "FilterHeight"):
        out["kernel"] = (opts.FilterHeight(), opts.FilterWidth())
    if hasattr(opts, "KeepNumDims"):
        out["keep_num_dims"] = bool(opts.KeepNumDims())
        out["weights_format"] = opts.WeightsFormat()
    if hasattr(opts, "KeepDims"):
        out["keep_dims"] = bool(opts.KeepDims())
    if hasattr(opts, "Beta"):
        out["beta"] = float(opts.Beta())
    if hasattr(opts, "ShrinkAxisMask"):
        out.update(begin_mask=opts.BeginMask(), end_mask=opts.EndMask(),
                   shrink_axis_mask=opts.ShrinkAxisMask(), ellipsis_mask=opts.EllipsisMask(),
                   new_axis_mask=opts.NewAxisMask())
    if hasattr(opts, "Axis"):   # CONCATENATION, PACK, UNPACK, GATHER
        out["axis"] = opts.Axis()
    if hasattr(opts, "BatchDims"):
        out["batch_dims"] = opts.BatchDims()
    if hasattr(opts, "BlockSize"):
        out["block_size"] = opts.BlockSize()
    if hasattr(opts, "Approximate"):
        out["approximate"] = bool(opts.Approximate())
    if name == "MIRROR_PAD":
        out["mode"] = opts.Mode()   # 0 REFLECT, 1 SYMMETRIC
    if hasattr(opts, "HalfPixelCenters"):
        out.update(align_corners=bool(opts.AlignCorners()),
                   half_pixel_centers=bool(opts.HalfPixelCenters()))
    if hasattr(opts, "AdjX"):
        out.update(adj_x=bool(opts.AdjX()), adj_y=bool(opts.AdjY()))
    if hasattr(opts, "Alpha"):
        out["alpha"] = float(opts.Alpha())
    return out


def _tensor(model, t) -> TfliteTensor:
    dtype = _DTYPES.get(t.Type())
    if dtype is None:
        raise InvalidTflite(f"tensor {t.Name().decode()!r} has TFLite type {t.Type()}, which "
                            "Rill does not read (int8, uint8, int16, int32, int64, float32, bool)")
    q = t.Quantization()
    scale = np.asarray(q.ScaleAsNumpy(), np.float32) if q is not None and q.ScaleLength() \
        else np.zeros(0, np.float32)
    zero_point = np.asarray(q.ZeroPointAsNumpy(), np.int64) if q is not None and \
        q.ZeroPointLength() else np.zeros(0, np.int64)
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    buffer = model.Buffers(t.Buffer())
    data = None
    if buffer is not None and buffer.DataLength():
        raw = buffer.DataAsNumpy().tobytes()
        if len(raw) != int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize:
            raise InvalidTflite(f"tensor {t.Name().decode()!r}: {len(raw)} bytes of data for "
                                f"shape {list(shape)} of {np.dtype(dtype)}; the file is damaged")
        data = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype) \
            .reshape(shape)
    return TfliteTensor(t.Name().decode(), shape, np.dtype(dtype), scale, zero_point,
                        q.QuantizedDimension() if q is not None else 0, data)


def read_tflite(model: str | Path | bytes) -> TfliteGraph:
    """Read a ``.tflite`` file (or its bytes)."""
    data = model if isinstance(model, bytes) else Path(model).read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise InvalidTflite(f"{str(model)[:200]} is not a TFLite flatbuffer (no TFL3 "
                            "identifier); pass a .tflite file written by the TFLite converter")
    root = tflite.Model.GetRootAs(data, 0)
    if root.SubgraphsLength() != 1:
        raise InvalidTflite(f"the model has {root.SubgraphsLength()} subgraphs; Rill runs "
                            "single-subgraph models (no control flow)")
    graph = root.Subgraphs(0)
    tensors = [_tensor(root, graph.Tensors(i)) for i in range(graph.TensorsLength())]
    operators = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = root.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = _OPERATORS.get(builtin, f"builtin {builtin}")
        if name == "CUSTOM":
            name = f"CUSTOM ({code.CustomCode().decode()})"
        operators.append(TfliteOperator(i, name, [int(v) for v in op.InputsAsNumpy()],
                                        [int(v) for v in op.OutputsAsNumpy()], _options(op, name)))
    return TfliteGraph(tensors, operators, [int(v) for v in graph.InputsAsNumpy()],
                       [int(v) for v in graph.OutputsAsNumpy()])
