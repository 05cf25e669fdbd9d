"""Small real models for tests and the demo: digits classifiers, exported to ONNX and quantized.

Everything is deterministic (fixed seeds, no download: ``load_digits`` ships inside scikit-learn)
and written only to the directory the caller gives (a pytest ``tmp_path`` or a temporary folder).

- :func:`train_mlp` — a 64-32-10 ReLU MLP (``sklearn.neural_network.MLPClassifier``), exported
  as ``Gemm -> Relu -> Gemm``.
- :func:`train_conv` — ``Conv 3x3 pad 1 (8 filters) -> Relu -> Flatten -> Gemm`` on the 8x8
  images. The filters are a fixed random bank (a random-feature model); the classifier on top is a
  logistic regression fitted to them, which is enough for a meaningful accuracy (~95 %).
- :func:`quantize` — ``onnxruntime.quantization.quantize_static`` with a calibration reader over
  training data, in any of the formats and types the importer supports.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["DigitsSplit", "FloatModel", "QUANT_VARIANTS", "digits_split", "train_mlp",
           "train_conv", "conv_stack", "autoencoder", "AUTOENCODER_WIDTHS", "quantize",
           "save_model", "IR_VERSION", "OPSET"]

#: onnxruntime 1.31 rejects IR versions above what it knows; onnx 1.23 writes 14 by default.
IR_VERSION = 10
OPSET = 17

#: ``(name, quant_format, per_channel, activation_type)`` of every quantized variant tests run.
QUANT_VARIANTS = (
    ("qdq-tensor-s8", "QDQ", False, "QInt8"),
    ("qdq-channel-s8", "QDQ", True, "QInt8"),
    ("qdq-tensor-u8", "QDQ", False, "QUInt8"),
    ("qdq-channel-u8", "QDQ", True, "QUInt8"),
    ("qop-tensor-s8", "QOperator", False, "QInt8"),
    ("qop-channel-u8", "QOperator", True, "QUInt8"),
)


@dataclass(frozen=True)
class DigitsSplit:
    """``load_digits`` scaled to [0, 1], split 80/20 with a fixed seed."""
    x_train: np.ndarray   # float32 (n, 64)
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def images(self, x: np.ndarray) -> np.ndarray:
        """``(n, 64)`` -> NCHW ``(n, 1, 8, 8)``."""
        return x.reshape(-1, 1, 8, 8)


@dataclass(frozen=True)
class FloatModel:
    """A trained float model and what it needs to be quantized and checked."""
    name: str
    proto: onnx.ModelProto
    calibration: np.ndarray   # float32 inputs for the calibration reader (model input layout)
    test_inputs: np.ndarray   # float32 test split (model input layout)
    test_labels: np.ndarray
    input_name: str = "input"
    output_name: str = "logits"


def digits_split(seed: int = 0) -> DigitsSplit:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.2, random_state=seed, stratify=digits.target)
    return DigitsSplit(x_train, y_train, x_test, y_test)


def _init(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(value, dtype=np.float32), name)


def _model(name: str, nodes, inits, in_shape, out_shape) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="rill.sw.models")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def train_mlp(split: DigitsSplit | None = None, hidden: int = 32, seed: int = 0) -> FloatModel:
    """A 64-``hidden``-10 ReLU MLP trained with scikit-learn, as ``Gemm -> Relu -> Gemm``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    split = split or digits_split()
    clf = MLPClassifier(hidden_layer_sizes=(hidden,), activation="relu", max_iter=300,
                        random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(split.x_train, split.y_train)
    (w1, w2), (b1, b2) = clf.coefs_, clf.intercepts_
    nodes = [helper.make_node("Gemm", ["input", "w1", "b1"], ["h1"], name="fc1"),
             helper.make_node("Relu", ["h1"], ["a1"], name="relu1"),
             helper.make_node("Gemm", ["a1", "w2", "b2"], ["logits"], name="fc2")]
    inits = [_init("w1", w1), _init("b1", b1), _init("w2", w2), _init("b2", b2)]
    proto = _model("digits_mlp", nodes, inits, ["N", 64], ["N", 10])
    return FloatModel("mlp", proto, split.x_train, split.x_test, split.y_test)


def _conv_features(images: np.ndarray, filters: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """relu(conv2d(images, filters, pad 1) + bias), flattened as ONNX Flatten does (C, H, W)."""
    n = len(images)
    padded = np.pad(images[:, 0], ((0, 0), (1, 1), (1, 1)))
    patches = np.stack([padded[:, i:i + 8, j:j + 8] for i in range(3) for j in range(3)], -1)
    out = patches.reshape(n, 64, 9) @ filters.reshape(len(filters), 9).T + bias
    return np.maximum(out, 0).transpose(0, 2, 1).reshape(n, -1)


def train_conv(split: DigitsSplit | None = None, channels: int = 8, seed: int = 0) -> FloatModel:
    """``Conv 3x3 pad 1 -> Relu -> Flatten -> Gemm`` with random filters and a fitted readout."""
    from sklearn.linear_model import LogisticRegression
    split = split or digits_split()
    rng = np.random.default_rng(seed)
    filters = rng.normal(0.0, 1.0 / 3.0, (channels, 1, 3, 3)).astype(np.float32)
    conv_bias = rng.normal(0.0, 0.1, channels).astype(np.float32)
    feats = _conv_features(split.images(split.x_train), filters, conv_bias)
    clf = LogisticRegression(C=0.05, max_iter=2000)
    clf.fit(feats, split.y_train)
    nodes = [helper.make_node("Conv", ["input", "cw", "cb"], ["c1"], name="conv1",
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Flatten", ["r1"], ["f1"], name="flatten", axis=1),
             helper.make_node("Gemm", ["f1", "fw", "fb"], ["logits"], name="fc", transB=1)]
    inits = [_init("cw", filters), _init("cb", conv_bias), _init("fw", clf.coef_),
             _init("fb", clf.intercept_)]
    proto = _model("digits_conv", nodes, inits, ["N", 1, 8, 8], ["N", 10])
    return FloatModel("conv", proto, split.images(split.x_train), split.images(split.x_test),
                      split.y_test)


def conv_stack(split: DigitsSplit | None = None, seed: int = 0) -> FloatModel:
    """``Conv 3x3 (4) -> Relu -> Conv 3x3 stride 2 (6) -> Relu -> Flatten -> Gemm`` on the
    digits, with random He-scaled weights: two convolutions, the second reading the first's
    map, for the chains of convs on the device (its accuracy is not the point)."""
    split = split or digits_split()
    rng = np.random.default_rng(seed)
    nodes = [helper.make_node("Conv", ["input", "cw1", "cb1"], ["c1"], name="conv1",
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "cw2", "cb2"], ["c2"], name="conv2",
                              kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("Flatten", ["r2"], ["f2"], name="flatten", axis=1),
             helper.make_node("Gemm", ["f2", "fw", "fb"], ["logits"], name="fc", transB=1)]
    inits = [_init("cw1", rng.normal(0.0, np.sqrt(2.0 / 9), (4, 1, 3, 3))),
             _init("cb1", rng.normal(0.0, 0.1, 4)),
             _init("cw2", rng.normal(0.0, np.sqrt(2.0 / 36), (6, 4, 3, 3))),
             _init("cb2", rng.normal(0.0, 0.1, 6)),
             _init("fw", rng.normal(0.0, np.sqrt(2.0 / 96), (10, 96))),
             _init("fb", rng.normal(0.0, 0.1, 10))]
    proto = _model("digits_conv_stack", nodes, inits, ["N", 1, 8, 8], ["N", 10])
    return FloatModel("conv_stack", proto, split.images(split.x_train),
                      split.images(split.x_test), split.y_test)


#: MLPerf Tiny's anomaly-detection model: a fully connected autoencoder over 640 log-mel values.
AUTOENCODER_WIDTHS = (640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640)


def autoencoder(seed: int = 0, samples: int = 400) -> FloatModel:
    """A fully connected autoencoder shaped like MLPerf Tiny's anomaly-detection model
    (:data:`AUTOENCODER_WIDTHS`, ReLU between layers), as ``Gemm`` nodes with random He-scaled
    weights: the shapes and the arithmetic of the real model, for measuring throughput. Its
    calibration and test inputs are random too (no data set ships with its shape)."""
    rng = np.random.default_rng(seed)
    nodes, inits, x = [], [], "input"
    layers = len(AUTOENCODER_WIDTHS) - 1
    for i, (k, n) in enumerate(zip(AUTOENCODER_WIDTHS, AUTOENCODER_WIDTHS[1:])):
        inits += [_init(f"w{i}", rng.normal(0.0, np.sqrt(2.0 / k), (k, n))),
                  _init(f"b{i}", rng.normal(0.0, 0.05, n))]
        y = "logits" if i == layers - 1 else f"h{i}"
        nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [y], name=f"fc{i}"))
        if i < layers - 1:
            nodes.append(helper.make_node("Relu", [y], [f"a{i}"], name=f"relu{i}"))
            x = f"a{i}"
    proto = _model("autoencoder", nodes, inits, ["N", AUTOENCODER_WIDTHS[0]],
                   ["N", AUTOENCODER_WIDTHS[-1]])
    data = rng.normal(0.0, 1.0, (2 * samples, AUTOENCODER_WIDTHS[0])).astype(np.float32)
    return FloatModel("autoencoder", proto, data[:samples], data[samples:],
                      np.zeros(samples, np.int64))


def save_model(proto: onnx.ModelProto, path: str | Path) -> Path:
    path = Path(path)
    onnx.save(proto, path)
    return path


def quantize(model: FloatModel, out_dir: str | Path, *, quant_format: str = "QDQ",
             per_channel: bool = False, activation_type: str = "QInt8",
             weight_type: str = "QInt8", calibration_samples: int = 300,
             batch: int = 50) -> Path:
    """``quantize_static`` of a float model; returns the quantized model's path in ``out_dir``.

    ``quant_format`` is ``"QDQ"`` or ``"QOperator"``, ``activation_type`` and ``weight_type``
    ``"QInt8"`` or ``"QUInt8"`` (``QInt8`` weights are symmetric, zero point 0; ``QUInt8`` ones
    have a zero point, and run as :mod:`sw.runtime_layer` layers).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self, data):
            self._batches = iter([{model.input_name: data[i:i + batch]}
                                  for i in range(0, len(data), batch)])

        def get_next(self):
            return next(self._batches, None)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tag = f"{quant_format.lower()}-{'channel' if per_channel else 'tensor'}-{activation_type}" \
        + ("" if weight_type == "QInt8" else f"-w{weight_type}")
    float_path = save_model(model.proto, out_dir / f"{model.name}-float.onnx")
    q_path = out_dir / f"{model.name}-{tag}.onnx"
    quantize_static(str(float_path), str(q_path),
                    Reader(model.calibration[:calibration_samples]),
                    quant_format=getattr(QuantFormat, quant_format), per_channel=per_channel,
                    activation_type=getattr(QuantType, activation_type),
                    weight_type=getattr(QuantType, weight_type))
    return q_path
