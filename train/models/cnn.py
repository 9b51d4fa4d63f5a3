"""``cnn``: the conv net of TensorFlow's Speech Commands tutorial (``create_conv_model``).

Two convolutions (64 filters of 20x8, then 10x4, time x frequency) with dropout and a 2x2
max-pool between them, then the dense classifier; after Sainath & Parada (2015).
It is the baseline: accurate enough but ~200 M multiply-adds per window.
"""

from keras import layers

from kws_train.models import register


@register("cnn")
def body(x, config):
    x = layers.Reshape((*x.shape[1:], 1))(x)
    x = layers.Conv2D(64, (20, 8), padding="same", activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    x = layers.MaxPooling2D((2, 2))(x)
    x = layers.Conv2D(64, (10, 4), padding="same", activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    return layers.Flatten()(x)
