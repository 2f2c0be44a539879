"""Training-only stand-ins for standard Keras layers, faster on TensorFlow's CPU kernels.

    batch_normalization()  -> BatchNormalization computed by TensorFlow's fused kernel
    conv2d()               -> Conv2D whose kernel gradient on small, wide maps is nine matrix products
    activation()           -> Activation whose GELU is worked out in float32

Each keeps the standard layer's variables, config and maths, so a model built
with them (`models.build(..., for_training=True)`) copies its weights straight
into the plain model that is saved and served; only how TensorFlow computes a
training step changes. On other backends, and in cases they do not speed up,
they are the standard layers.

Measured on a 2-core AMD EPYC with AVX-512 BF16, airbench at batch 1,024 in
bfloat16, TensorFlow 2.21 (oneDNN 3.7, threadpool runtime) against PyTorch 2.13
(oneDNN 3.12, OpenMP) on the same CPU: both pick the same oneDNN kernels, but
two of TensorFlow's ran far slower than PyTorch's, see `conv2d` and `activation`.
"""
from __future__ import annotations

import functools

# conv2d's kernel gradient is done by matrix products only on maps this small and this wide: where it
# was measured faster (7x7 and 3x3 maps of 256 channels). On 15x15 maps of 64 and 31x31 maps of 24
# channels, and in float32, TensorFlow's own kernel was the faster one.
SMALL_MAP = 8
WIDE = 256


def _tensorflow() -> bool:
    import keras
    return keras.backend.backend() == "tensorflow"


@functools.cache
def batch_normalization():
    """BatchNormalization whose training step is TensorFlow's fused kernel.

    Keras 3 on TensorFlow computes a training BatchNorm as separate moments
    and normalisation ops, upcast to float32: measured at about half the
    speed of the whole airbench training step. The fused kernel does the
    same maths in one op on bfloat16 or float32 inputs and updates the
    moving statistics itself. Inference, masks and other backends use the
    standard layer unchanged, and the variables are the standard layer's.
    """
    from keras import layers

    class FusedBatchNormalization(layers.BatchNormalization):
        def call(self, inputs, training=None, mask=None):
            if (not (training and self.trainable) or mask is not None or self.renorm or self.synchronized
                    or not _tensorflow() or len(inputs.shape) != 4 or self.axis not in (-1, 3)):
                return super().call(inputs, training=training, mask=mask)
            import tensorflow as tf
            channels = inputs.shape[-1]
            gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
            beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
            outputs, moving_mean, moving_variance = tf.compat.v1.nn.fused_batch_norm(
                inputs, gamma, beta, mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon,
                is_training=True, exponential_avg_factor=1.0 - self.momentum)
            self.moving_mean.assign(moving_mean)
            self.moving_variance.assign(moving_variance)
            return tf.cast(outputs, self.compute_dtype)

    return FusedBatchNormalization


@functools.cache
def _conv3x3_with_tap_products():
    """A 3x3, stride 1, "same" convolution (NHWC) whose kernel gradient is one matrix product per tap:
    tap (i, j)'s gradient is the input shifted by (i, j), as (pictures x positions, channels in), times
    the output's gradient, as (pictures x positions, channels out). The input's gradient is
    TensorFlow's own."""
    import tensorflow as tf

    @tf.custom_gradient
    def conv(x, kernel):
        def gradient(dy):
            dx = tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=kernel, out_backprop=dy,
                                                strides=[1, 1, 1, 1], padding="SAME")
            height, width, channels_in, channels_out = x.shape[1], x.shape[2], x.shape[3], dy.shape[3]
            padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
            dy_rows = tf.reshape(dy, (-1, channels_out))
            taps = [tf.matmul(tf.reshape(padded[:, i:i + height, j:j + width, :], (-1, channels_in)), dy_rows,
                              transpose_a=True) for i in range(3) for j in range(3)]
            return dx, tf.reshape(tf.stack(taps), (3, 3, channels_in, channels_out))
        return tf.nn.conv2d(x, kernel, 1, "SAME"), gradient

    return conv


@functools.cache
def conv2d():
    """Conv2D whose kernel gradient, for a 3x3 "same" convolution on maps of at most SMALL_MAP x
    SMALL_MAP with at least WIDE channels in, in bfloat16, is nine matrix products.

    TensorFlow's oneDNN kernel for that gradient ran at about a third of
    the forward pass's speed on airbench's 7x7 maps of 256 channels (330 ms
    of a 2.3 s step, each of two layers; PyTorch's copy of the same kernel,
    150 ms), and 4 to 15 times slower than the forward pass on its 3x3 maps.
    The products take about 200 and 35 ms. Elsewhere it is Conv2D.
    """
    from keras import layers, ops

    class TapProductConv2D(layers.Conv2D):
        def _tap_products(self, inputs) -> bool:
            height, width, channels = inputs.shape[1:4] if len(inputs.shape) == 4 else (None,) * 3
            return (_tensorflow() and self.compute_dtype == "bfloat16" and self.data_format == "channels_last"
                    and self.kernel_size == (3, 3) and self.strides == (1, 1) and self.padding == "same"
                    and self.dilation_rate == (1, 1) and self.groups == 1
                    and height is not None and width is not None and max(height, width) <= SMALL_MAP
                    and channels is not None and channels >= WIDE)

        def convolution_op(self, inputs, kernel):
            if not self._tap_products(inputs):
                return super().convolution_op(inputs, kernel)
            return _conv3x3_with_tap_products()(inputs, ops.cast(kernel, inputs.dtype))

    return TapProductConv2D


def _gelu_parts(x):
    """x in float32 and the standard normal's CDF at x."""
    import tensorflow as tf
    x = tf.cast(x, tf.float32)
    return x, 0.5 * (1.0 + tf.math.erf(x * 0.7071067811865476))


@functools.cache
def _gelu_in_float32():
    """The exact GELU, x * P(X <= x) for a standard normal X, and its gradient, worked out in float32
    and returned in the input's type, each pass compiled by XLA into one loop over the numbers (as
    separate TensorFlow ops, each pass read and wrote every activation four to six times). Nothing is
    kept between the passes: the gradient works the CDF out again from the input, so the step holds
    no float32 copies of the activations.

    One pair of compiled functions for the process: XLA compiles each shape once, for every layer and
    network of that shape, so a worker that trains run after run does not keep a compiled copy per
    network (each cost it about 13 MB in `test_worker`'s memory check)."""
    import tensorflow as tf

    @tf.function(jit_compile=True)
    def forward(x):
        x32, cdf = _gelu_parts(x)
        return tf.cast(x32 * cdf, x.dtype)

    @tf.function(jit_compile=True)
    def backward(x, dy):
        x32, cdf = _gelu_parts(x)
        density = tf.exp(-0.5 * x32 * x32) * 0.3989422804014327          # the normal's density at x
        return dy * tf.cast(cdf + x32 * density, dy.dtype)

    @tf.custom_gradient
    def gelu(x):
        return forward(x), lambda dy: backward(x, dy)

    return gelu


def _gelu_in_float32_ops(x):
    """The same GELU as separate float32 ops, for inference: XLA compiles a function again for every
    new shape, and a server answers batches of every size (about 150 ms and 1.5 MB each, measured);
    the ops take any shape, at about 90% of the compiled speed in a forward pass."""
    import tensorflow as tf
    x32, cdf = _gelu_parts(x)
    return tf.cast(x32 * cdf, x.dtype)


@functools.cache
def activation(compiled: bool = True):
    """Activation whose GELU is worked out in float32 on TensorFlow: compiled by XLA for training,
    whose batches keep one size, as plain ops (`compiled=False`) for answering batches of any size.

    Keras' GELU there is 0.5 x erfc(-x / sqrt 2) in the input's type, a few
    separate ops each way, and TensorFlow's erfc on bfloat16 ran about four
    times slower than erf on float32. On 12.8 million bfloat16 numbers (one
    of airbench's 7x7 layers at batch 1,024), both passes took 70 ms as
    Keras computes them, 36 ms as separate float32 ops, 13.5 ms compiled.
    Other activations are the standard layer's.
    """
    import keras
    from keras import layers

    class Float32GeluActivation(layers.Activation):
        def call(self, inputs):
            if self.activation is keras.activations.gelu and _tensorflow():
                return _gelu_in_float32()(inputs) if compiled else _gelu_in_float32_ops(inputs)
            return super().call(inputs)

    return Float32GeluActivation
