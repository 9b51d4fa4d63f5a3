"""``tcresnet``: temporal-convolution ResNet (Choi et al. 2019, "TC-ResNet8"), made to stream.

The mel bins are the channels of a 1-D convolution over time, so every layer sees the whole
spectrum at once and the network stays shallow and cheap: ~70k parameters, a few million
multiply-adds per window, and fast training on a CPU. ``train.width`` scales the channels
(1.5 is the paper's TC-ResNet8-1.5).

Unlike the paper, every convolution is ``valid`` and a block's shortcut is cropped to the
middle of its convolutions' span. With ``same`` padding the frames at a window's edges see
zeros that a stream never has, so no stream of state could reproduce the window's output;
here each value depends on the frames under its receptive field only, and
``kws_train.stream`` exports a model that computes each value once, as its frames arrive, and
equals this one on every window. Kernels of 5 (the paper's are 9) and no stride in the last
stage keep the receptive field to 71 frames, so the average pools 7 positions of a window:
with kernels of 9, 7, 3 and three strides (87 frames, 2 positions) training loss stayed ~40%
higher and validation accuracy ~10 points lower over the first 7 epochs.
"""

from keras import layers

from kws_train.models import BN_MOMENTUM, register

STEM = 16
STAGES = ((24, 5, 2, "valid"), (32, 5, 2, "valid"), (48, 9, 2, "same"))  # (channels, kernel, stride, padding)


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
    x = layers.Conv1D(round(STEM * config.width), 3, use_bias=False)(x)
    for channels, kernel, stride, padding in STAGES:
        x = _block(x, round(channels * config.width), kernel, stride, padding)
    x = layers.GlobalAveragePooling1D()(x)
    return layers.Dropout(0.2)(x)
