"""``tcresnet``: temporal-convolution ResNet (Choi et al. 2019, "TC-ResNet8").

The mel bins are the channels of a 1-D convolution over time, so every layer sees the whole
spectrum at once and the network stays shallow and cheap: ~70k parameters, a few million
multiply-adds per window, and fast training on a CPU. ``train.width`` scales the channels
(1.5 is the paper's TC-ResNet8-1.5).
"""

from keras import layers

from kws_train.models import BN_MOMENTUM, register

STEM = 16
STAGES = (24, 32, 48)
KERNEL = 9


def _block(x, channels):
    shortcut = layers.Conv1D(channels, 1, strides=2, use_bias=False)(x)
    shortcut = layers.BatchNormalization(momentum=BN_MOMENTUM)(shortcut)
    x = layers.Conv1D(channels, KERNEL, strides=2, padding="same", use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization(momentum=BN_MOMENTUM)(x))
    x = layers.Conv1D(channels, KERNEL, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    return layers.ReLU()(layers.Add()([x, shortcut]))


@register("tcresnet")
def body(x, config):
    x = layers.Conv1D(round(STEM * config.width), 3, padding="same", use_bias=False)(x)
    for channels in STAGES:
        x = _block(x, round(channels * config.width))
    x = layers.GlobalAveragePooling1D()(x)
    return layers.Dropout(0.2)(x)
