"""The steps of a TFLite model that run on the host, with LiteRT's reference arithmetic
(:mod:`sw.tflite_kernels`): the operators the device has no unit for yet, and the
double-precision requantization of FULLY_CONNECTED, whose int32 sums the device computes.

A step is a :class:`sw.model_ir.HostStep` whose ``op`` is one of :data:`TFLITE_HOST_OPS` and whose
attributes carry the operator's parameters (scales, zero points, clamps, constant tensors); its
tensors are NHWC, as TFLite lays them out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import tflite_activations as activations
from . import tflite_kernels as kernels
from .tflite_movement import rearrange, with_constants

__all__ = ["TFLITE_HOST_OPS", "run_tflite_op"]

#: Host operations, named after the TFLite operators they compute.
TFLITE_HOST_OPS = ("TFL_CONV_2D", "TFL_DEPTHWISE_CONV_2D", "TFL_TRANSPOSE_CONV",
                   "TFL_TRANSPOSE_CONV_INPUT",
                   "TFL_FC_REQUANTIZE", "TFL_ADD",
                   "TFL_AVERAGE_POOL_2D", "TFL_MAX_POOL_2D", "TFL_MEAN", "TFL_SOFTMAX",
                   "TFL_QUANTIZE", "TFL_REQUANTIZE", "TFL_DEQUANTIZE", "TFL_PAD", "TFL_RESHAPE",
                   "TFL_CLAMP", "TFL_SHAPE", "TFL_STRIDED_SLICE", "TFL_PACK", "TFL_RELU",
                   "TFL_LEAKY_RELU", "TFL_PRELU", "TFL_LOOKUP", "TFL_MUL", "TFL_EXTREMUM",
                   "TFL_CONCATENATION", "TFL_TRANSPOSE", "TFL_REDUCE", "TFL_RESIZE",
                   "TFL_BATCH_MATMUL", "TFL_SPLIT", "TFL_REARRANGE",
                   "TFL_L2_NORMALIZATION", "TFL_UNARY")


def run_tflite_op(step: Any, env: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Outputs of one TFLite host step, from ``env`` (tensor name -> array)."""
    op, a = step.op, step.attrs
    x = env[step.inputs[0]]
    if op == "TFL_CONV_2D":
        return [kernels.conv2d(x, a["filters"], a["bias"], **_conv_args(a))]
    if op == "TFL_DEPTHWISE_CONV_2D":
        return [kernels.depthwise_conv2d(x, a["filters"], a["bias"], **_conv_args(a))]
    if op == "TFL_TRANSPOSE_CONV":
        return [kernels.transpose_conv(x, a["filters"], a["bias"], output_size=a["output_size"],
                                       input_zp=a["input_zp"], multiplier=a["multiplier"],
                                       shift=a["shift"], output_zp=a["output_zp"],
                                       stride=a["stride"], pads=a["pads"],
                                       act_range=a["act_range"])]
    if op == "TFL_TRANSPOSE_CONV_INPUT":   # NHWC in, NCHW out (the device conv's source)
        return [kernels.transpose_conv_input(x, stride=a["stride"], pads=a["pads"],
                                             output_size=a["output_size"], kernel=a["kernel"],
                                             zero_point=a["zero_point"])]
    if op == "TFL_FC_REQUANTIZE":   # the sums from the device
        return [kernels.requantize_double(x, input_scale=a["input_scale"],
                                          filter_scale=a["filter_scale"],
                                          output_scale=a["output_scale"],
                                          output_zp=a["output_zp"], act_range=a["act_range"])]
    if op == "TFL_ADD":
        return [kernels.add(x, env[step.inputs[1]], act_range=a["act_range"],
                            subtract=a.get("subtract", False), **_scales(a, ("a", "b")))]
    if op == "TFL_MUL":
        return [activations.mul(x, env[step.inputs[1]], act_range=a["act_range"],
                                **_scales(a, ("a", "b")))]
    if op == "TFL_RELU":
        return [activations.relu_x(x, activation=a["activation"], **_scales(a))]
    if op == "TFL_UNARY":   # ABS, RSQRT
        unary = {"ABS": activations.abs_int8, "RSQRT": activations.rsqrt_int8}[a["function"]]
        return [unary(x, **_scales(a))]
    if op == "TFL_L2_NORMALIZATION":
        return [activations.l2_normalization(x, input_zp=a["input_zp"])]
    if op == "TFL_LEAKY_RELU":
        return [activations.leaky_relu(x, alpha=a["alpha"], **_scales(a))]
    if op == "TFL_PRELU":
        return [activations.prelu(x, env[step.inputs[1]], **_scales(a, ("input", "alpha")))]
    if op == "TFL_EXTREMUM":   # MAXIMUM, MINIMUM: inputs quantized as the output
        return [(np.maximum if a["function"] == "MAXIMUM" else np.minimum)(
            x, env[step.inputs[1]])]
    if op == "TFL_RESIZE":   # input quantized as the output
        resize = (activations.resize_bilinear if a["function"] == "RESIZE_BILINEAR"
                  else activations.resize_nearest)
        return [resize(x, a["size"], align_corners=a["align_corners"],
                       half_pixel_centers=a["half_pixel_centers"])]
    if op == "TFL_BATCH_MATMUL":
        return [activations.batch_matmul(x, env[step.inputs[1]], adj_x=a["adj_x"],
                                         adj_y=a["adj_y"], **_scales(a, ("a", "b")))]
    if op == "TFL_REARRANGE":   # data movement (constants in the arguments)
        return rearrange(a["function"], [env[name] for name in step.inputs], a["args"])
    if op == "TFL_SPLIT":
        return np.split(x, a["cuts"], axis=a["axis"])
    if op == "TFL_TRANSPOSE":
        return [np.transpose(x, a["perm"])]
    if op == "TFL_REDUCE":   # MAX, MIN: input quantized as the output; PROD: int32
        reduce = {"REDUCE_MAX": np.max, "REDUCE_MIN": np.min, "REDUCE_PROD": np.prod}
        return [reduce[a["function"]](x, axis=a["axes"], keepdims=a["keep_dims"])
                .astype(x.dtype)]
    if op == "TFL_LOOKUP":   # LOGISTIC, TANH, GELU, EXP, LOG, HARD_SWISH: a table
        return [a["table"][np.asarray(x, np.int64) + 128]]
    if op == "TFL_CONCATENATION":   # inputs quantized as the output: bytes as they are
        return [np.concatenate([env[name] for name in step.inputs], axis=a["axis"])]
    if op == "TFL_AVERAGE_POOL_2D":
        return [kernels.average_pool(x, kernel=a["kernel"], stride=a["stride"], pads=a["pads"],
                                     act_range=a["act_range"])]
    if op == "TFL_MEAN":
        return [kernels.mean(x, a["axes"], keep_dims=a["keep_dims"],
                             compute_sum=a["compute_sum"], **_scales(a))]
    if op == "TFL_SOFTMAX":
        return [kernels.softmax(x, input_scale=a["input_scale"], beta=a["beta"])]
    if op == "TFL_QUANTIZE":
        return [kernels.quantize(x, scale=a["scale"], zero_point=a["zero_point"])]
    if op == "TFL_REQUANTIZE":
        return [kernels.requantize(x, dtype=a.get("dtype", np.int8), **_scales(a))]
    if op == "TFL_DEQUANTIZE":
        return [kernels.dequantize(x, scale=a["scale"], zero_point=a["zero_point"])]
    if op == "TFL_PAD":
        return [np.pad(x, a["paddings"], constant_values=a["value"])]
    if op == "TFL_MAX_POOL_2D":
        return [kernels.max_pool(x, kernel=a["kernel"], stride=a["stride"], pads=a["pads"],
                                 act_range=a["act_range"])]
    if op == "TFL_SHAPE":
        return [np.array(x.shape, np.int32)]
    if op == "TFL_STRIDED_SLICE":
        return [kernels.strided_slice(x, a["begin"], a["end"], a["strides"], **a["masks"])]
    if op == "TFL_PACK":   # constants by position in ``values``, the rest from the inputs
        values = with_constants(a["values"], [env[name] for name in step.inputs])
        return [np.stack(values, axis=a["axis"]).astype(a["dtype"])]
    if op == "TFL_CLAMP":
        return [np.clip(x, *a["range"]).astype(x.dtype)]
    if op == "TFL_RESHAPE":   # a computed shape as given, a constant one for any batch
        if len(step.inputs) > 1:
            return [x.reshape([int(d) for d in env[step.inputs[1]]])]
        return [x.reshape((-1, *a["shape"][1:]))]
    raise AssertionError(op)


def _scales(a: dict, names=("input",)) -> dict:
    """The step's scales and zero points of ``names`` and of the output, by the kernels'
    argument names."""
    return {f"{name}_{part}": a[f"{name}_{part}"] for name in (*names, "output")
            for part in ("scale", "zp")}


def _conv_args(a: dict) -> dict:
    return dict(input_zp=a["input_zp"], multiplier=a["multiplier"], shift=a["shift"],
                output_zp=a["output_zp"], stride=a["stride"], dilation=a["dilation"],
                pads=a["pads"], act_range=a["act_range"])
