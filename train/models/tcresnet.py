"""``tcresnet``: temporal-convolution ResNet (Choi et al. 2019, "TC-ResNet8").

The mel bins are the channels of a 1-D convolution over time, so every layer sees the whole
spectrum at once and the network stays shallow and cheap: ~70k parameters, a few million
multiply-adds per window, and fast training on a CPU. ``train.width`` scales the channels
(1.5 is the paper's TC-ResNet8-1.5).

``train.streamable: false`` (the default) is the paper's model: ``same`` padding everywhere,
kernels of 9. Its windows' edges see zeros that a stream never has, so it has no streaming
twin. ``train.streamable: true`` makes blocks 1 and 2 ``valid`` (kernels of 5, so that what
they see fits a window) with shortcuts cropped to the middle of their convolutions' span:
each of their values then depends only on the frames under it, and ``kws_train.stream``
computes it once, as its frames arrive. Block 3 keeps ``same`` padding and runs on the
window's rows at each hop: seeing the window's edges is what let the model learn about as
fast as the paper's (a fully ``valid`` model trained ~10 points slower over the first epochs
and ended 3.8 points lower; train/README.md). It still ends 1-2 points under the paper's
model at 40 epochs.
"""

from keras import layers

from kws_train.models import BN_MOMENTUM, register

STEM = 16
# (channels, kernel, stride, padding) per block
PAPER = ((24, 9, 2, "same"), (32, 9, 2, "same"), (48, 9, 2, "same"))
STREAMABLE = ((24, 5, 2, "valid"), (32, 5, 2, "valid"), (48, 9, 2, "same"))


def centre(x, length: int):
    """The middle ``length`` steps of ``x``, centred on a ``valid`` convolution's outputs of that
    length as ``same`` padding would align them (the stream delays them to match)."""
    crop = x.shape[1] - length
    return layers.Cropping1D((crop - crop // 2, crop // 2))(x)


def _block(x, channels, kernel, stride, padding):
    shortcut = layers.Conv1D(channels, 1, strides=stride, padding=padding, use_bias=False)(x)
    shortcut = layers.BatchNormalization(momentum=BN_MOMENTUM)(shortcut)
    x = layers.Conv1D(channels, kernel, strides=stride, padding=padding, use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization(momentum=BN_MOMENTUM)(x))
    x = layers.Conv1D(channels, kernel, padding=padding, use_bias=False)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    if shortcut.shape[1] != x.shape[1]:
        shortcut = centre(shortcut, x.shape[1])
    return layers.ReLU()(layers.Add()([x, shortcut]))


@register("tcresnet")
def body(x, config):
    blocks = STREAMABLE if config.streamable else PAPER
    x = layers.Conv1D(round(STEM * config.width), 3, padding=blocks[0][3], use_bias=False)(x)
    for channels, kernel, stride, padding in blocks:
        x = _block(x, round(channels * config.width), kernel, stride, padding)
    x = layers.GlobalAveragePooling1D()(x)
    return layers.Dropout(0.2)(x)
