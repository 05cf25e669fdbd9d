#!/usr/bin/env python3
"""Make small full-integer int8 TFLite models of the four MLPerf Tiny reference architectures
(and sixteen small test models).

Runs in a separate venv with tensorflow-cpu (see README.md beside this file), not in the
project's .venv. Each model (``architectures.py``) is built with Keras, trained for a few
seconds on synthetic numpy data that follows a learnable rule (so weights and activation
ranges are not degenerate), then converted with the converter's standard full-integer recipe:

    optimizations = [Optimize.DEFAULT], representative_dataset = <generator>,
    target_spec.supported_ops = [OpsSet.TFLITE_BUILTINS_INT8],
    inference_input_type = inference_output_type = int8

Writes to tests/assets/tflite/ (or --out):
    <name>.tflite        the model
    <name>_inputs.npy    8 int8 test inputs, shape (8, *input_shape), quantized with the
                         model's own input scale / zero point from float synthetic data

Usage (from the repo root, in the TF venv):
    ~/tflite-venv/bin/python scripts/tflite_models/make_models.py [--out DIR] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import warnings
from pathlib import Path

# Quiet TF, deterministic kernels, one thread; must precede the import. The thread count is
# part of the recipe: the same seeds on 2 threads give different (equally valid) weights, since
# float reductions are split differently. One thread also leaves the shared machine a core.
THREADS = 1
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # plain Eigen kernels, no oneDNN
os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from architectures import (  # noqa: E402  (after the environment above)
    BN_MOMENTUM,
    autoencoder,
    const_add,
    ds_cnn,
    keras_activations,
    keras_attention,
    keras_cnn,
    keras_conv1d,
    keras_conv_transpose,
    keras_dilated,
    keras_embedding,
    keras_more_ops,
    keras_ops,
    keras_se_sequence,
    keras_sequence_ops,
    keras_uint8_io,
    keras_upsampling,
    mobilenet_v1_025,
    mobilenet_v2_tiny,
    residual_tiny,
    resnet8,
    with_class_index,
)

keras = tf.keras
layers = keras.layers

SEED = 1234
N_TEST = 8          # test inputs saved per model
N_CALIB = 64        # representative-dataset samples

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "tests" / "assets" / "tflite"


#: Models converted as most users convert theirs: float input and output (QUANTIZE and
#: DEQUANTIZE at the edges) and the dynamic batch Keras gives.
FLOAT_IO_DYNAMIC_BATCH = {"keras_cnn"}
#: int8 models converted with Keras' dynamic batch: the converter then keeps a dilated conv as
#: SPACE_TO_BATCH_ND, a dense conv and BATCH_TO_SPACE_ND, and Conv1D's EXPAND_DIMS.
DYNAMIC_BATCH = {"keras_sequence_ops"}
#: Models converted with a second output, the class index (ARG_MAX).
CLASS_INDEX_OUTPUT = {"keras_sequence_ops"}
#: Models converted with the older recipe's uint8 input and output (QUANTIZE from and to uint8
#: at the edges).
UINT8_IO = {"keras_uint8_io"}


# --------------------------------------------------------------------------- synthetic data

def smooth(rng: np.random.Generator, shape, passes: int = 2) -> np.ndarray:
    """Random field smoothed along the two spatial axes (box blur), unit std."""
    a = rng.standard_normal(shape).astype(np.float32)
    for _ in range(passes):
        for ax in (0, 1):
            a = (a + np.roll(a, 1, ax) + np.roll(a, -1, ax)) / 3.0
    return a / a.std()


def class_data(rng, shape, n_classes, lo, hi, signal=0.6):
    """Inputs = noise + class template; the label is the template used (learnable)."""
    templates = np.stack([smooth(rng, shape) for _ in range(n_classes)])

    def draw(m):
        y = rng.integers(0, n_classes, m)
        x = 0.7 * np.stack([smooth(rng, shape, 1) for _ in range(m)]) + signal * templates[y]
        # map roughly to [lo, hi] like the real front end's data (pixels, MFCCs)
        x = (x + 3.0) / 6.0 * (hi - lo) + lo
        return np.clip(x, lo, hi).astype(np.float32), y.astype(np.int32)

    return draw


def token_data(rng, length: int, vocab: int, n_classes: int):
    """Token id sequences: each class draws most of its ids from its own slice of the
    vocabulary, the rest anywhere (learnable from the bag of ids)."""
    width = vocab // n_classes

    def draw(m):
        y = rng.integers(0, n_classes, m)
        own = y[:, None] * width + rng.integers(0, width, (m, length))
        noise = rng.integers(0, vocab, (m, length))
        x = np.where(rng.random((m, length)) < 0.6, own, noise)
        return x.astype(np.int32), y.astype(np.int32)

    return draw


def ae_data(rng, n_latent=8, dim=640):
    """Log-mel-like frames lying near an 8-d manifold: x = tanh(z W) * 3 + small noise."""
    w = rng.standard_normal((n_latent, dim)).astype(np.float32) / np.sqrt(n_latent)

    def draw(m):
        z = rng.standard_normal((m, n_latent)).astype(np.float32)
        x = 3.0 * np.tanh(z @ w) + 0.1 * rng.standard_normal((m, dim)).astype(np.float32)
        return x.astype(np.float32), x.astype(np.float32)

    return draw


# name -> (builder, data factory, n_train, epochs, batch, loss)
SPECS = {
    "ds_cnn": (ds_cnn, lambda r: class_data(r, (49, 10, 1), 12, -4.0, 4.0), 768, 3, 32,
               "sparse_categorical_crossentropy"),
    "resnet8": (resnet8, lambda r: class_data(r, (32, 32, 3), 10, 0.0, 1.0), 512, 2, 32,
                "sparse_categorical_crossentropy"),
    "mobilenet_v1_025": (mobilenet_v1_025, lambda r: class_data(r, (96, 96, 3), 2, 0.0, 1.0),
                         384, 2, 32, "sparse_categorical_crossentropy"),
    "autoencoder": (autoencoder, lambda r: ae_data(r), 2048, 5, 64, "mse"),
    "keras_cnn": (keras_cnn, lambda r: class_data(r, (16, 16, 1), 10, 0.0, 1.0), 512, 3, 32,
                  "sparse_categorical_crossentropy"),
    "residual_tiny": (residual_tiny, lambda r: class_data(r, (8, 8, 4), 4, 0.0, 1.0), 384, 3,
                      32, "sparse_categorical_crossentropy"),
    "const_add": (const_add, lambda r: class_data(r, (8, 8, 4), 3, 0.0, 1.0), 384, 3, 32,
                  "sparse_categorical_crossentropy"),
    "mobilenet_v2_tiny": (mobilenet_v2_tiny, lambda r: class_data(r, (16, 16, 3), 4, 0.0, 1.0),
                          384, 3, 32, "sparse_categorical_crossentropy"),
    "keras_ops": (keras_ops, lambda r: class_data(r, (16, 16, 3), 2, 0.0, 1.0), 384, 3, 32,
                  "binary_crossentropy"),
    "keras_conv1d": (keras_conv1d, lambda r: class_data(r, (49, 10), 4, -4.0, 4.0), 384, 3,
                     32, "sparse_categorical_crossentropy"),
    "keras_more_ops": (keras_more_ops, lambda r: class_data(r, (8, 8, 4), 3, 0.0, 1.0), 384, 3,
                       32, "sparse_categorical_crossentropy"),
    "keras_se_sequence": (keras_se_sequence, lambda r: class_data(r, (8, 8, 4), 3, 0.0, 1.0),
                          384, 3, 32, "sparse_categorical_crossentropy"),
    "keras_conv_transpose": (keras_conv_transpose,
                             lambda r: class_data(r, (8, 8, 3), 3, 0.0, 1.0), 384, 3, 32,
                             keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
    "keras_attention": (keras_attention, lambda r: class_data(r, (8, 6), 3, -2.0, 2.0), 384, 3,
                        32, keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
    "keras_uint8_io": (keras_uint8_io, lambda r: class_data(r, (8, 8, 3), 4, 0.0, 1.0), 384, 3,
                       32, "sparse_categorical_crossentropy"),
    "keras_dilated": (keras_dilated, lambda r: class_data(r, (12, 12, 3), 3, 0.0, 1.0), 384, 3,
                      32, keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
    "keras_sequence_ops": (keras_sequence_ops, lambda r: class_data(r, (16, 6), 3, -2.0, 2.0),
                           384, 3, 32,
                           keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
    "keras_upsampling": (keras_upsampling, lambda r: class_data(r, (6, 6, 3), 3, 0.0, 1.0),
                         384, 3, 32,
                         keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
    "keras_activations": (keras_activations, lambda r: class_data(r, (8, 8, 3), 3, 0.0, 1.0),
                          384, 3, 32,
                          keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
    "keras_embedding": (keras_embedding, lambda r: token_data(r, 12, 24, 3), 384, 4, 32,
                        keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
}


def reestimate_bn(model: keras.Model, x: np.ndarray, batch: int = 64) -> None:
    """Re-estimate the BN moving statistics for the final weights (forward passes in training
    mode, no weight update): after only a few dozen steps the moving averages lag behind the
    weights and inference-mode outputs collapse. Momentum k/(k+1) at batch k makes the moving
    statistics the plain average of the batch statistics."""
    bns = [ly for ly in model.layers if isinstance(ly, layers.BatchNormalization)]
    for k, i in enumerate(range(0, len(x), batch)):
        for ly in bns:
            ly.momentum = k / (k + 1)
        model(x[i:i + batch], training=True)
    for ly in bns:
        ly.momentum = BN_MOMENTUM


# --------------------------------------------------------------------------- convert

def convert(model: keras.Model, calib: np.ndarray, float_io: bool = False,
            io_type=None) -> bytes:
    def representative_dataset():
        for i in range(calib.shape[0]):
            yield [calib[i:i + 1]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not float_io:
        if not np.issubdtype(calib.dtype, np.integer):   # token ids stay int32
            converter.inference_input_type = io_type or tf.int8
        converter.inference_output_type = io_type or tf.int8
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SavedModel signature dump and calibration notes
        return converter.convert()


def run_int8(tflite_model: bytes, x: np.ndarray):
    """Quantize float inputs with the model's input scale / zero point and run them through
    the TF-bundled TFLite interpreter. Returns (int8 inputs, dequantized float outputs,
    (input scale, input zero point))."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter deprecation notice
        # The reference kernels, as the tests' oracle runs them (XNNPACK, the default, fails
        # to prepare some graphs: keras_se_sequence's ADD of a map and a (C,) vector).
        resolvers = tf.lite.experimental.OpResolverType
        try:
            interp = tf.lite.Interpreter(model_content=tflite_model,
                                         experimental_op_resolver_type=resolvers.BUILTIN_REF)
        except ValueError:   # int8 TILE, DEPTH_TO_SPACE: only the optimized kernels have them
            interp = tf.lite.Interpreter(
                model_content=tflite_model,
                experimental_op_resolver_type=resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    # The quantized output (keras_sequence_ops also has an ARG_MAX index).
    out = next(d for d in interp.get_output_details() if d["dtype"] in (np.int8, np.uint8))
    scale, zp = inp["quantization"]
    if inp["dtype"] == np.int32:   # token ids, not quantized
        q, scale, zp = x.astype(np.int32), 1.0, 0
    else:
        assert inp["dtype"] in (np.int8, np.uint8) and scale > 0, inp
        info = np.iinfo(inp["dtype"])
        q = np.clip(np.round(x / scale) + zp, info.min, info.max).astype(inp["dtype"])
    o_scale, o_zp = out["quantization"]
    ys = []
    for xi in q:
        interp.set_tensor(inp["index"], xi[None])
        interp.invoke()
        ys.append((interp.get_tensor(out["index"])[0].astype(np.float32) - o_zp) * o_scale)
    return q, np.stack(ys), (scale, zp)


def make(name: str, out: Path, index: int) -> None:
    build, data, n_train, epochs, batch, loss = SPECS[name]
    keras.backend.clear_session()  # layer names (kept in the .tflite) independent of --only
    keras.utils.set_random_seed(SEED + index)
    rng = np.random.default_rng(SEED + index)
    draw = data(rng)
    x_train, y_train = draw(n_train)
    x_calib, _ = draw(N_CALIB)
    x_test, _ = draw(N_TEST)

    model = build()
    metrics = ["accuracy"] if loss != "mse" else []
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, metrics=metrics)
    hist = model.fit(x_train, y_train, batch_size=batch, epochs=epochs, shuffle=True, verbose=0)
    last = {k: round(float(v[-1]), 4) for k, v in hist.history.items()}
    reestimate_bn(model, x_train)
    x_val, y_val = draw(256)
    p_val = model(x_val, training=False).numpy()  # direct call: no tf.data log noise
    if loss == "mse":
        val = {"loss": round(float(np.mean((p_val - y_val) ** 2)), 4)}
    else:
        val = {"accuracy": round(float(np.mean(p_val.argmax(1) == y_val)), 4)}

    # Convert a batch-1 copy. With Keras 3's dynamic batch dimension, Flatten converts to
    # SHAPE + STRIDED_SLICE + PACK + RESHAPE; with a static batch of 1 it folds away entirely
    # (FULLY_CONNECTED takes the [1,1,1,C] pooled tensor directly).
    float_io = name in FLOAT_IO_DYNAMIC_BATCH
    if not float_io and name not in DYNAMIC_BATCH:
        weights = model.get_weights()
        keras.backend.clear_session()  # same layer names as the trained model
        model = build(batch=1)
        model.set_weights(weights)
    if name in CLASS_INDEX_OUTPUT:
        model = with_class_index(model)
    tfl = convert(model, x_calib, float_io, tf.uint8 if name in UINT8_IO else None)
    (out / f"{name}.tflite").write_bytes(tfl)
    if float_io:
        np.save(out / f"{name}_inputs.npy", x_test)
        print(f"{name}: params={model.count_params()} train={last} val={val} "
              f"tflite={len(tfl)} bytes -> {out / (name + '.tflite')}", flush=True)
        return
    q_test, y_int8, (scale, zp) = run_int8(tfl, x_test)
    np.save(out / f"{name}_inputs.npy", q_test)

    # sanity: int8 model vs float model on the same (dequantized) test inputs
    y_float = model(np.ascontiguousarray((q_test.astype(np.float32) - zp) * scale))
    y_float = (y_float[0] if isinstance(y_float, (list, tuple)) else y_float).numpy()
    check = f"int8-vs-float max|diff|={np.abs(y_int8 - y_float).max():.4f}"
    if loss != "mse":
        check += f" argmax agree {(y_int8.argmax(1) == y_float.argmax(1)).sum()}/{N_TEST}"
    print(f"{name}: params={model.count_params()} train={last} val={val} {check} "
          f"tflite={len(tfl)} bytes -> {out / (name + '.tflite')}", flush=True)


def make_float(out: Path) -> None:
    """``float_cnn.tflite``: a small CNN converted without quantization, which the front end
    must refuse with a clear message (a float model is the converter's default)."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(SEED)
    inp = keras.Input((8, 8, 1))
    x = layers.Conv2D(4, 3, activation="relu")(inp)
    x = layers.Flatten()(x)
    model = keras.Model(inp, layers.Dense(3)(x), name="float_cnn")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (out / "float_cnn.tflite").write_bytes(converter.convert())
    print(f"float_cnn: -> {out / 'float_cnn.tflite'}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--only", nargs="*", choices=list(SPECS), default=list(SPECS))
    ap.add_argument("--float", action="store_true",
                    help="also (with --only) write float_cnn.tflite, an unquantized model")
    args = ap.parse_args(argv)

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    tf.config.experimental.enable_op_determinism()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"tensorflow {tf.__version__}, keras {keras.__version__}, numpy {np.__version__}, "
          f"threads {THREADS}", flush=True)
    for i, name in enumerate(SPECS):
        if name in args.only:
            make(name, args.out, i)
    if args.only == list(SPECS) or args.float:
        make_float(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
