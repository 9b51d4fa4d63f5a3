"""``dscnn``: depthwise-separable CNN (Zhang et al. 2017, "Hello Edge", DS-CNN-S).

A strided 10x4 convolution, then blocks of 3x3 depthwise + 1x1 pointwise convolutions, each
with batch norm and ReLU, and global average pooling: ~24k parameters and ~0.1 ms per window
in LiteRT, the best accuracy per millisecond of the models measured (TRAINING_NOTES).
"""

from keras import layers

from kws_train.models import BN_MOMENTUM, register

WIDTH = 64
BLOCKS = 4


def _bn_relu(x):
    return layers.ReLU()(layers.BatchNormalization(momentum=BN_MOMENTUM)(x))


@register("dscnn")
def body(x, config):
    width = round(WIDTH * config.width)
    x = layers.Reshape((*x.shape[1:], 1))(x)
    x = _bn_relu(layers.Conv2D(width, (10, 4), strides=(2, 2), padding="same", use_bias=False)(x))
    for _ in range(BLOCKS):
        x = _bn_relu(layers.DepthwiseConv2D((3, 3), padding="same", use_bias=False)(x))
        x = _bn_relu(layers.Conv2D(width, 1, use_bias=False)(x))
    x = layers.GlobalAveragePooling2D()(x)
    return layers.Dropout(0.2)(x)
