"""The model families people quantize with onnxruntime, small, built here as float ONNX graphs.

- :func:`residual_cnn` — a ResNet-style CNN: a stem conv, two residual blocks (conv, ReLU,
  conv, ``Add`` of the block's input, ReLU), global average pooling and a fully connected
  classifier.
- :func:`depthwise_cnn` — a MobileNet-style CNN: depthwise 3x3 convs (``group`` = channels)
  between pointwise 1x1 ones, global average pooling, a classifier.
- :func:`transformer_encoder` — a two-layer pre-norm transformer encoder over the 8 rows of a
  digit image as 8 tokens: LayerNormalization, two-head self-attention (``Q @ K^T``, softmax,
  ``@ V``: matmuls of two activations), the erf GELU MLP, residual adds, mean pooling over the
  tokens and a classifier.

Weights are random and He-scaled (the arithmetic, not the accuracy, is the point); inputs are the
digits of :func:`sw.models.digits_split` (no download). Quantize them with
:func:`sw.models.quantize` (static, QDQ or QOperator) or :func:`quantize_dynamic`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

from .models import FloatModel, _init, _model, digits_split, save_model

__all__ = ["residual_cnn", "depthwise_cnn", "transformer_encoder", "quantize_dynamic",
           "FAMILIES"]


class _Builder:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []

    def weight(self, name: str, shape, fan_in: int) -> str:
        self.inits.append(_init(name, self.rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)))
        return name

    def const(self, name: str, value) -> str:
        self.inits.append(_init(name, np.asarray(value, np.float32)))
        return name

    def ints(self, name: str, values) -> str:
        self.inits.append(helper.make_tensor(name, TensorProto.INT64, [len(values)], values))
        return name

    def node(self, op: str, inputs, output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, list(inputs), [output], name=output, **attrs))
        return output

    def conv(self, x: str, name: str, c_in: int, c_out: int, k: int = 3, stride: int = 1,
             group: int = 1, relu: bool = True) -> str:
        w = self.weight(f"{name}.w", (c_out, c_in // group, k, k), c_in // group * k * k)
        b = self.const(f"{name}.b", self.rng.normal(0.0, 0.05, c_out))
        y = self.node("Conv", [x, w, b], name, kernel_shape=[k, k], pads=[k // 2] * 4,
                      strides=[stride, stride], group=group)
        return self.node("Relu", [y], f"{name}.relu") if relu else y

    def classifier(self, x: str, channels: int) -> str:
        pooled = self.node("GlobalAveragePool", [x], "pool")
        flat = self.node("Flatten", [pooled], "flatten", axis=1)
        w = self.weight("fc.w", (10, channels), channels)
        return self.node("Gemm", [flat, w, self.const("fc.b", np.zeros(10))], "logits",
                         transB=1)


def _images(name: str, builder: _Builder) -> FloatModel:
    split = digits_split()
    proto = _model(name, builder.nodes, builder.inits, ["N", 1, 8, 8], ["N", 10])
    return FloatModel(name, proto, split.images(split.x_train), split.images(split.x_test),
                      split.y_test)


def residual_cnn(seed: int = 0, channels: int = 8) -> FloatModel:
    """ResNet-style: stem conv, two residual blocks, global average pooling, classifier."""
    b = _Builder(seed)
    x = b.conv("input", "stem", 1, channels)
    for block in range(2):
        h = b.conv(x, f"block{block}.conv1", channels, channels)
        h = b.conv(h, f"block{block}.conv2", channels, channels, relu=False)
        x = b.node("Relu", [b.node("Add", [h, x], f"block{block}.add")], f"block{block}.relu")
    b.classifier(x, channels)
    return _images("residual_cnn", b)


def depthwise_cnn(seed: int = 0) -> FloatModel:
    """MobileNet-style: stem conv, then depthwise 3x3 / pointwise 1x1 pairs, one of stride 2."""
    b = _Builder(seed)
    x = b.conv("input", "stem", 1, 8)
    for i, (c_in, c_out, stride) in enumerate(((8, 16, 1), (16, 16, 2))):
        x = b.conv(x, f"dw{i}", c_in, c_in, stride=stride, group=c_in)
        x = b.conv(x, f"pw{i}", c_in, c_out, k=1)
    b.classifier(x, 16)
    return _images("depthwise_cnn", b)


def transformer_encoder(seed: int = 0, dim: int = 16, heads: int = 2,
                        layers: int = 2) -> FloatModel:
    """A pre-norm transformer encoder over a digit's 8 rows as tokens (see the module doc)."""
    b = _Builder(seed)
    tokens, head_dim = 8, dim // heads
    x = b.node("Reshape", ["input", b.ints("tokens.shape", [0, tokens, 8])], "tokens")
    x = b.node("MatMul", [x, b.weight("embed.w", (8, dim), 8)], "embed")
    b.ints("heads.shape", [0, tokens, heads, head_dim])
    b.ints("merge.shape", [0, tokens, dim])
    for n in range(layers):
        p = f"layer{n}"
        ones, zeros = b.const(f"{p}.ln.g", np.ones(dim)), b.const(f"{p}.ln.b", np.zeros(dim))
        h = b.node("LayerNormalization", [x, ones, zeros], f"{p}.ln1", axis=-1)
        qkv = []
        for part in "qkv":
            proj = b.node("MatMul", [h, b.weight(f"{p}.{part}.w", (dim, dim), dim)],
                          f"{p}.{part}")
            heads_t = b.node("Reshape", [proj, "heads.shape"], f"{p}.{part}.heads")
            qkv.append(b.node("Transpose", [heads_t], f"{p}.{part}.t",
                              perm=[0, 2, 3, 1] if part == "k" else [0, 2, 1, 3]))
        scores = b.node("MatMul", qkv[:2], f"{p}.scores")
        scaled = b.node("Mul", [scores, b.const(f"{p}.scale", 1 / np.sqrt(head_dim))],
                        f"{p}.scaled")
        attn = b.node("Softmax", [scaled], f"{p}.softmax", axis=-1)
        mixed = b.node("MatMul", [attn, qkv[2]], f"{p}.mixed")
        merged = b.node("Reshape", [b.node("Transpose", [mixed], f"{p}.mixed.t",
                                           perm=[0, 2, 1, 3]), "merge.shape"], f"{p}.merged")
        out = b.node("MatMul", [merged, b.weight(f"{p}.o.w", (dim, dim), dim)], f"{p}.o")
        x = b.node("Add", [x, out], f"{p}.res1")
        h = b.node("LayerNormalization", [x, ones, zeros], f"{p}.ln2", axis=-1)
        h = b.node("MatMul", [h, b.weight(f"{p}.up.w", (dim, 2 * dim), dim)], f"{p}.up")
        gate = b.node("Erf", [b.node("Mul", [h, b.const(f"{p}.rsqrt2", 1 / np.sqrt(2))],
                                     f"{p}.gelu.x")], f"{p}.gelu.erf")
        gate = b.node("Add", [gate, b.const(f"{p}.one", 1.0)], f"{p}.gelu.add")
        h = b.node("Mul", [b.node("Mul", [h, gate], f"{p}.gelu.mul"),
                           b.const(f"{p}.half", 0.5)], f"{p}.gelu")
        h = b.node("MatMul", [h, b.weight(f"{p}.down.w", (2 * dim, dim), 2 * dim)],
                   f"{p}.down")
        x = b.node("Add", [x, h], f"{p}.res2")
    pooled = b.node("ReduceMean", [x], "pooled", axes=[1], keepdims=0)
    b.node("Gemm", [pooled, b.weight("fc.w", (10, dim), dim),
                    b.const("fc.b", np.zeros(10))], "logits", transB=1)
    split = digits_split()
    proto = _model("transformer_encoder", b.nodes, b.inits, ["N", 64], ["N", 10])
    return FloatModel("transformer_encoder", proto, split.x_train, split.x_test, split.y_test)


#: Every family, by name.
FAMILIES = {"residual_cnn": residual_cnn, "depthwise_cnn": depthwise_cnn,
            "transformer_encoder": transformer_encoder}


def quantize_dynamic(model: FloatModel, out_dir: str | Path) -> Path:
    """``onnxruntime.quantization.quantize_dynamic`` (int8 weights; activations quantized per
    input by DynamicQuantizeLinear) of a float model; returns the quantized model's path."""
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as ort_quantize_dynamic
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    float_path = save_model(model.proto, out_dir / f"{model.name}-float.onnx")
    q_path = out_dir / f"{model.name}-dynamic.onnx"
    ort_quantize_dynamic(str(float_path), str(q_path), weight_type=QuantType.QInt8)
    return q_path
