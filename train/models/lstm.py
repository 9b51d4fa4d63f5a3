"""``lstm``: the recurrent model of the RNN tutorials, one LSTM over the feature frames.

The last output summarises the window. Converted to LiteRT it runs as a loop over frames.
"""

from keras import layers

from kws_train.models import register

UNITS = 128


@register("lstm")
def body(x, config):
    x = layers.LSTM(UNITS)(x)
    return layers.Dropout(0.3)(x)
