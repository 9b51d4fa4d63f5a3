"""``bilstm``: a bidirectional LSTM; how the two directions merge is ``train.bilstm_merge``."""

from keras import layers

from kws_train.models import register

UNITS = 64  # per direction: about the parameters of the one-way ``lstm``


@register("bilstm")
def body(x, config):
    x = layers.Bidirectional(layers.LSTM(UNITS), merge_mode=config.bilstm_merge)(x)
    return layers.Dropout(0.3)(x)
