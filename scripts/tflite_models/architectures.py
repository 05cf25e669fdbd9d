"""The Keras models ``make_models.py`` converts: the four MLPerf Tiny reference architectures
from their published layer lists, and small test models that hold what the front end must take
(residual stacks, inverted residuals, operators beyond the seven, converter forms). Each
builder takes the batch size (None: Keras' dynamic one) and returns an untrained model.

Imported by ``make_models.py`` after it sets TensorFlow's environment (threads, determinism).
"""

from __future__ import annotations

import tensorflow as tf

keras = tf.keras
layers = keras.layers

BN_MOMENTUM = 0.9   # Keras default 0.99 barely moves the moving stats in a few dozen steps


def bn():
    return layers.BatchNormalization(momentum=BN_MOMENTUM)


def separable(x, filters: int, kernel, stride=1):
    """A depthwise-separable block: depthwise conv, then 1x1 conv, each with BN and ReLU."""
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same")(x)
    x = layers.ReLU()(bn()(x))
    x = layers.Conv2D(filters, (1, 1), padding="same")(x)
    return layers.ReLU()(bn()(x))


def pooled_classifier(x, classes: int):
    """Average pooling over the whole map, a dense layer and softmax."""
    x = layers.AveragePooling2D(pool_size=tuple(x.shape[1:3]))(x)
    x = layers.Flatten()(x)
    return layers.Softmax()(layers.Dense(classes)(x))


def ds_cnn(batch=None) -> keras.Model:
    """MLPerf Tiny KWS DS-CNN (small): 49x10x1 MFCC -> 12 classes."""
    inp = keras.Input((49, 10, 1), batch_size=batch)
    x = layers.Conv2D(64, (10, 4), strides=(2, 2), padding="same")(inp)
    x = layers.ReLU()(bn()(x))
    for _ in range(4):
        x = separable(x, 64, (3, 3))
    return keras.Model(inp, pooled_classifier(x, 12), name="ds_cnn")   # pooled over 25x5


def residual_stack(x, filters: int, stride: int):
    """ResNet v1's stack: two 3x3 convs beside an identity shortcut, or, strided, beside a 1x1
    strided conv."""
    y = layers.Conv2D(filters, 3, strides=stride, padding="same")(x)
    y = layers.ReLU()(bn()(y))
    y = bn()(layers.Conv2D(filters, 3, padding="same")(y))
    if stride > 1:
        x = layers.Conv2D(filters, 1, strides=stride, padding="same")(x)
    return layers.ReLU()(layers.Add()([x, y]))


def resnet8(batch=None) -> keras.Model:
    """MLPerf Tiny IC ResNet-8 (resnet_v1_eembc): 32x32x3 -> 10 classes."""
    inp = keras.Input((32, 32, 3), batch_size=batch)
    x = layers.Conv2D(16, 3, padding="same")(inp)
    x = layers.ReLU()(bn()(x))
    for filters, stride in ((16, 1), (32, 2), (64, 2)):
        x = residual_stack(x, filters, stride)
    return keras.Model(inp, pooled_classifier(x, 10), name="resnet8")   # pooled over 8x8


def residual_tiny(batch=None) -> keras.Model:
    """Two ResNet v1 stacks small enough to run whole on the default simulated core (every map
    and weight in its SRAMs): 8x8x4 -> 4 classes."""
    inp = keras.Input((8, 8, 4), batch_size=batch)
    x = layers.Conv2D(8, 3, padding="same")(inp)
    x = layers.ReLU()(bn()(x))
    for filters, stride in ((8, 1), (16, 2)):
        x = residual_stack(x, filters, stride)
    return keras.Model(inp, pooled_classifier(x, 4), name="residual_tiny")   # over 4x4


def inverted_residual(x, expand: int, filters: int, stride: int):
    """MobileNetV2's block: a 1x1 expansion and a depthwise 3x3, each with BN and ReLU6, then a
    linear 1x1 projection; the block's input added back where the shapes match."""
    y = layers.ReLU(6.0)(bn()(layers.Conv2D(expand, 1, padding="same")(x)))
    y = layers.ReLU(6.0)(bn()(layers.DepthwiseConv2D(3, strides=stride, padding="same")(y)))
    y = bn()(layers.Conv2D(filters, 1, padding="same")(y))
    if stride == 1 and x.shape[-1] == filters:
        y = layers.Add()([x, y])
    return y


def mobilenet_v2_tiny(batch=None) -> keras.Model:
    """Not MLPerf: MobileNetV2's inverted residual blocks (ReLU6, depthwise convs, linear
    bottlenecks, residual adds) and, as Keras' MobileNetV2 ends, global average pooling by
    GlobalAveragePooling2D (a MEAN once converted), small enough to run whole on the default
    simulated core: 16x16x3 -> 4."""
    inp = keras.Input((16, 16, 3), batch_size=batch)
    x = layers.Conv2D(8, 3, strides=2, padding="same")(inp)
    x = layers.ReLU(6.0)(bn()(x))
    for expand, filters, stride in ((16, 8, 1), (24, 16, 2), (32, 16, 1)):
        x = inverted_residual(x, expand, filters, stride)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Softmax()(layers.Dense(4)(x)), name="mobilenet_v2_tiny")


def mobilenet_v1_025(batch=None) -> keras.Model:
    """MLPerf Tiny VWW MobileNetV1 alpha=0.25 at 96x96x3 -> 2 classes (ReLU, as MLPerf)."""
    inp = keras.Input((96, 96, 3), batch_size=batch)
    x = layers.Conv2D(8, 3, strides=2, padding="same")(inp)
    x = layers.ReLU()(bn()(x))
    blocks = [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2),
              (128, 1), (128, 1), (128, 1), (128, 1), (128, 1), (256, 2), (256, 1)]
    for filters, stride in blocks:
        x = separable(x, filters, 3, stride)
    return keras.Model(inp, pooled_classifier(x, 2), name="mobilenet_v1_025")   # over 3x3


class AddConstant(layers.Layer):
    """``x + c`` with a trained constant ``c`` of ``x``'s shape: the converter writes an ADD whose
    second operand is a constant tensor."""

    def build(self, input_shape):
        self.c = self.add_weight(shape=tuple(input_shape[1:]), initializer="zeros", name="c")

    def call(self, x):
        return x + self.c


def const_add(batch=None) -> keras.Model:
    """Not MLPerf: an ADD of a conv's map and a constant map, then global pooling: 8x8x4 -> 3."""
    inp = keras.Input((8, 8, 4), batch_size=batch)
    x = layers.ReLU()(bn()(layers.Conv2D(8, 3, padding="same")(inp)))
    x = AddConstant()(x)
    return keras.Model(inp, pooled_classifier(x, 3), name="const_add")


def autoencoder(batch=None) -> keras.Model:
    """MLPerf Tiny AD fully-connected autoencoder: 640 -> 640."""
    inp = keras.Input((640,), batch_size=batch)
    x = inp
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = layers.Dense(units)(x)
        x = layers.ReLU()(bn()(x))
    out = layers.Dense(640)(x)
    return keras.Model(inp, out, name="autoencoder")


def keras_cnn(batch=None) -> keras.Model:
    """Not MLPerf: a plain Keras CNN as users write one (ReLU6, max pooling, Flatten), converted
    with float input and output and a dynamic batch, so the converter emits QUANTIZE,
    DEQUANTIZE, MAX_POOL_2D and Flatten's SHAPE/STRIDED_SLICE/PACK/RESHAPE."""
    inp = keras.Input((16, 16, 1), batch_size=batch)
    x = layers.Conv2D(8, 3, activation="relu6")(inp)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(24, activation="relu")(x)
    x = layers.Dense(10)(x)
    out = layers.Softmax()(x)
    return keras.Model(inp, out, name="keras_cnn")


def keras_ops(batch=None) -> keras.Model:
    """Not MLPerf: operators Keras models hold beyond MLPerf Tiny's seven, as the converter
    writes them: LEAKY_RELU, CONCATENATION, a RELU it cannot fuse, a sigmoid gate (LOGISTIC,
    MUL), TANH, SUB, and a sigmoid output: 16x16x3 -> 1. (UpSampling2D is left out: the
    converter writes it as TILE version 3, which ai-edge-litert 2.3's interpreter, the
    oracle, does not run.)"""
    inp = keras.Input((16, 16, 3), batch_size=batch)
    a = layers.LeakyReLU(negative_slope=0.2)(layers.Conv2D(8, 3, padding="same")(inp))
    b = layers.Conv2D(8, 1)(inp)
    x = layers.ReLU()(layers.Concatenate()([a, b]))
    x = layers.Conv2D(8, 3, strides=2, padding="same")(x)
    gate = layers.Activation("sigmoid")(layers.Conv2D(8, 1)(x))
    x = layers.Multiply()([x, gate])
    y = layers.Activation("tanh")(layers.Conv2D(8, 1)(x))
    x = layers.Subtract()([x, y])
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inp, out, name="keras_ops")


def keras_more_ops(batch=None) -> keras.Model:
    """Not MLPerf: more operators Keras layers become: BatchNormalization on the input (MUL
    by a constant), HARD_SWISH, PReLU, Maximum, Minimum, Resizing (RESIZE_BILINEAR,
    RESIZE_NEAREST_NEIGHBOR), Permute (TRANSPOSE), GlobalMaxPooling2D (REDUCE_MAX):
    8x8x4 -> 3."""
    inp = keras.Input((8, 8, 4), batch_size=batch)
    x = layers.Conv2D(8, 3, padding="same")(bn()(inp))
    h = layers.Activation("hard_swish")(x)
    p = layers.PReLU()(x)
    x = layers.Concatenate()([layers.Maximum()([h, p]), layers.Minimum()([h, p])])
    up = layers.Resizing(13, 11, interpolation="bilinear")(x)
    down = layers.Resizing(5, 6, interpolation="nearest")(x)
    up = layers.Conv2D(4, 3, strides=2, padding="same")(up)
    pooled = [layers.GlobalMaxPooling2D()(layers.Permute((2, 1, 3))(up)),
              layers.GlobalMaxPooling2D()(down)]
    x = layers.Dense(3)(layers.Concatenate()(pooled))
    out = layers.Softmax()(x)
    return keras.Model(inp, out, name="keras_more_ops")


def keras_se_sequence(batch=None) -> keras.Model:
    """Not MLPerf: a squeeze-and-excitation gate (pooling kept as a 1x1 map, Dense layers on
    it: FULLY_CONNECTED with keep_num_dims, MUL broadcasting it over the map), an ADD of the
    map and its mean (which the converter reshapes to ``(C,)``, without the batch axis), and
    a Dense layer on the map as a sequence of pixels: 8x8x4 -> 3."""
    inp = keras.Input((8, 8, 4), batch_size=batch)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    squeeze = layers.GlobalAveragePooling2D(keepdims=True)(x)
    gate = layers.Dense(8, activation="sigmoid")(layers.Dense(2, activation="relu")(squeeze))
    x = layers.Multiply()([x, gate])
    x = layers.Add()([x, layers.GlobalAveragePooling2D(keepdims=True)(x)])
    x = layers.Dense(6, activation="relu")(layers.Reshape((64, 8))(x))
    x = layers.Dense(3)(layers.GlobalAveragePooling1D()(x))
    out = layers.Softmax()(x)
    return keras.Model(inp, out, name="keras_se_sequence")


def keras_conv_transpose(batch=None) -> keras.Model:
    """Not MLPerf: an encoder and a decoder of transposed convolutions (TRANSPOSE_CONV, SAME
    of stride 2 with a fused ReLU, VALID of stride 1 and 3): 8x8x3 -> 3."""
    inp = keras.Input((8, 8, 3), batch_size=batch)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = layers.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2DTranspose(4, 2, padding="valid")(x)
    x = layers.Conv2DTranspose(4, 3, strides=3, padding="valid")(x)
    out = layers.Dense(3)(layers.GlobalAveragePooling2D()(x))   # logits: they vary more
    return keras.Model(inp, out, name="keras_conv_transpose")


def keras_attention(batch=None) -> keras.Model:
    """Not MLPerf: a self-attention block over a sequence of feature frames (Dense layers on
    the sequence, MultiHeadAttention: BATCH_MATMUL, TRANSPOSE, SOFTMAX over the keys; a
    residual ADD), the features split in two halves added (SPLIT), a mean over time:
    8x6 -> 3."""
    inp = keras.Input((8, 6), batch_size=batch)
    x = layers.Dense(8, activation="relu")(inp)
    x = layers.Add()([x, layers.MultiHeadAttention(2, 4)(x, x)])
    halves = layers.Lambda(lambda t: tf.split(t, 2, axis=-1))(x)
    x = layers.GlobalAveragePooling1D()(layers.Add()(list(halves)))
    out = layers.Dense(3)(x)
    return keras.Model(inp, out, name="keras_attention")


def keras_uint8_io(batch=None) -> keras.Model:
    """Not MLPerf: a small CNN converted with uint8 input and output, as older recipes did
    (``inference_input_type = tf.uint8``): 8x8x3 -> 4."""
    inp = keras.Input((8, 8, 3), batch_size=batch)
    x = layers.Conv2D(8, 3, activation="relu")(inp)
    x = layers.Dense(4)(layers.GlobalAveragePooling2D()(x))
    out = layers.Softmax()(x)
    return keras.Model(inp, out, name="keras_uint8_io")


def keras_conv1d(batch=None) -> keras.Model:
    """Not MLPerf: a 1-D CNN over feature frames (keyword spotting's other shape): Conv1D and
    MaxPooling1D, which the converter writes as 2-D ops between reshapes, and a global
    average over time: 49x10 -> 4."""
    inp = keras.Input((49, 10), batch_size=batch)
    x = layers.Conv1D(16, 3, activation="relu")(inp)
    x = layers.MaxPooling1D(2)(x)
    x = layers.Conv1D(16, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dense(4)(x)
    out = layers.Softmax()(x)
    return keras.Model(inp, out, name="keras_conv1d")


def keras_dilated(batch=None) -> keras.Model:
    """Not MLPerf: dilated and grouped convs (8x8 context without pooling, as segmentation and
    audio models use it): Conv2D and DepthwiseConv2D with ``dilation_rate`` 2, which the
    converter writes as SPACE_TO_BATCH_ND, a dense conv over the interleaved sub-maps and
    BATCH_TO_SPACE_ND, and a Conv2D of ``groups=2``: 12x12x3 -> 3."""
    inp = keras.Input((12, 12, 3), batch_size=batch)
    x = layers.Conv2D(8, 3, dilation_rate=2, padding="same", activation="relu")(inp)
    x = layers.Conv2D(8, 3, groups=2, padding="same", activation="relu")(x)
    x = layers.DepthwiseConv2D(3, dilation_rate=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(8, 3, dilation_rate=3, activation="relu")(x)   # VALID
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(3)(x), name="keras_dilated")


def keras_sequence_ops(batch=None) -> keras.Model:
    """Not MLPerf: a temporal CNN over feature frames and the tensor surgery Keras models do
    on sequences: causal dilated Conv1D (PAD, and with a dynamic batch SPACE_TO_BATCH_ND,
    EXPAND_DIMS, BATCH_TO_SPACE_ND), a strided Conv1D, a reflected padding (MIRROR_PAD), a
    slice of frames (SLICE), frames split apart (UNPACK) and joined, a Dense layer on a
    transposed sequence (GATHER and REDUCE_PROD on its shape), a minimum over time
    (REDUCE_MIN): 16x6 -> 3."""
    inp = keras.Input((16, 6), batch_size=batch)
    x = layers.Conv1D(8, 3, padding="causal", dilation_rate=2, activation="relu")(inp)
    x = layers.Conv1D(8, 3, padding="causal", dilation_rate=4, activation="relu")(x)
    x = layers.Lambda(lambda t: tf.pad(t, [[0, 0], [2, 1], [0, 0]], mode="REFLECT"))(x)
    x = layers.Conv1D(8, 3, strides=2, activation="relu")(x)                      # 8 frames
    head = layers.Lambda(lambda t: tf.slice(t, [0, 1, 0], [-1, 4, -1]))(x)         # 4 frames
    frames = [layers.Lambda(lambda t, k=k: tf.unstack(t, axis=1)[k])(head) for k in range(3)]
    joined = layers.Concatenate()(frames)                                          # 24
    mixed = layers.Dense(5, activation="relu")(layers.Permute((2, 1))(x))          # 8x5
    low = layers.Lambda(lambda t: tf.reduce_min(t, axis=1))(mixed)                  # 5
    logits = layers.Dense(3)(layers.Concatenate()([joined, low]))
    return keras.Model(inp, logits, name="keras_sequence_ops")


def with_class_index(model: keras.Model) -> keras.Model:
    """``model`` with a second output, its class index (ARG_MAX), as classifiers deployed on
    small devices often are."""
    logits = model.outputs[0]
    index = layers.Lambda(lambda t: tf.argmax(t, axis=-1, output_type=tf.int32))(logits)
    return keras.Model(model.inputs, [logits, index], name=model.name)


def keras_upsampling(batch=None) -> keras.Model:
    """Not MLPerf: a decoder's upsamplings (U-Nets, autoencoders, super-resolution):
    UpSampling2D's nearest neighbour, which the converter writes as TILE (int8: version 3), and
    a pixel shuffle (DEPTH_TO_SPACE, int8: version 2) after SPACE_TO_DEPTH, and a SUM over the
    map: 6x6x3 -> 3. LiteRT's reference resolver has neither version, and its int8 SUM is
    defective (``sw.litert_oracle.DEFECTIVE_REFERENCE``)."""
    inp = keras.Input((6, 6, 3), batch_size=batch)
    x = layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = layers.UpSampling2D(2, interpolation="nearest")(x)                  # 12x12x4
    x = layers.Lambda(lambda t: tf.nn.space_to_depth(t, 2))(x)              # 6x6x16
    x = layers.Conv2D(8, 1, activation="relu")(x)
    x = layers.Lambda(lambda t: tf.nn.depth_to_space(t, 2))(x)              # 12x12x2
    x = layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    x = layers.Lambda(lambda t: tf.reduce_sum(t, axis=[1, 2]))(x)
    return keras.Model(inp, layers.Dense(3)(x), name="keras_upsampling")


def keras_activations(batch=None) -> keras.Model:
    """Not MLPerf: GELU, exact and approximate (transformers' and ConvNeXt's activation, an
    int8 table in the reference kernels), an L2 normalization of the pooled features (as
    embedding models end), and the int8 ABS, EXP, LOG and RSQRT of features: 8x8x3 -> 3.
    (The converter leaves Keras' ELU and SELU in float.)"""
    inp = keras.Input((8, 8, 3), batch_size=batch)
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = layers.Conv2D(8, 3, padding="same", activation="gelu")(x)
    x = layers.Conv2D(8, 1)(x)
    x = layers.Activation(lambda t: keras.activations.gelu(t, approximate=True))(x)
    pooled = layers.GlobalAveragePooling2D()(x)
    x = layers.Lambda(lambda t: tf.math.l2_normalize(t, axis=-1))(pooled)
    features = layers.Dense(8)(pooled)
    positive = layers.Dense(8, activation="relu")(pooled)
    x = layers.Concatenate()([
        x, layers.Lambda(tf.abs)(features), layers.Lambda(lambda t: tf.exp(t * 0.5))(features),
        layers.Lambda(lambda t: tf.math.log(t + 0.5))(positive),
        layers.Lambda(lambda t: tf.math.rsqrt(t + 0.25))(positive)])
    return keras.Model(inp, layers.Dense(3)(x), name="keras_activations")


def keras_embedding(batch=None) -> keras.Model:
    """Not MLPerf: a text classifier over token ids (int32 input): an Embedding layer, which
    the converter writes as the wrap of negative ids (LESS, ADD, SELECT_V2 on int32) and a
    GATHER of the int8 table, a Conv1D over the sequence and a mean over it: 12 ids -> 3."""
    inp = keras.Input((12,), dtype="int32", batch_size=batch)
    x = layers.Embedding(24, 8)(inp)
    x = layers.Conv1D(8, 3, activation="relu")(x)
    x = layers.GlobalAveragePooling1D()(x)
    return keras.Model(inp, layers.Dense(3)(x), name="keras_embedding")
