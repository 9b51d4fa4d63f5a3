"""``lstm``: a small convolutional front, one LSTM over the frames and the average of its
outputs over the window; it streams one LSTM step per frame with its state carried from hop to
hop.

A window model starts its LSTM from a zero state, but a stream that carries the state never
returns to zero: its state at the start of any window holds whatever came before. So in
training (``CarriedLSTM``) half the clips start from the state the LSTM reached on another
clip of the batch, and the model learns to let a word decide the output whatever was said
before it. Evaluated on clips, the window model starts from zero, as the stream does after a
reset.

The front (two ``valid`` convolutions, 64 channels x ``train.width``) gives the LSTM local
spectral patterns to work on instead of raw mel bins. Averaging the outputs of every frame,
rather than keeping the last one only, gives every step a gradient: with the last output only,
validation accuracy was 32% after 3 epochs (the TC-ResNet's: 67%), as the word's trace had to
survive ~40 frames of the silence after it. BiLSTM (``bilstm``) reads the window backwards too, so it cannot
stream: it is a clip (offline) model.
"""

import keras
from keras import layers, ops

from kws_train.models import BN_MOMENTUM, register

FRONT = 64
UNITS = 96
CARRY = 0.5  # share of training clips that start from another clip's final state


@keras.saving.register_keras_serializable(package="kws")
class CarriedLSTM(layers.Layer):
    """An LSTM returning its output at every frame; in training, a share ``carry`` of the clips start
    from the final state of another clip of the batch (no gradient flows into that state)."""

    def __init__(self, units: int, carry: float = CARRY, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.carry, self.seed = units, carry, seed
        self.lstm = layers.LSTM(units, return_sequences=True, return_state=True)
        self.seeds = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        self.lstm.build(input_shape)

    def call(self, x, training=False):
        if not training:
            return self.lstm(x)[0]
        _, h, c = self.lstm(ops.roll(x, 1, axis=0))
        keep = ops.cast(keras.random.uniform((ops.shape(x)[0], 1), seed=self.seeds) < self.carry, x.dtype)
        state = [ops.stop_gradient(h) * keep, ops.stop_gradient(c) * keep]
        return self.lstm(x, initial_state=state)[0]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:2], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "carry": self.carry, "seed": self.seed}


@register("lstm")
def body(x, config):
    for _ in range(2):
        x = layers.Conv1D(round(FRONT * config.width), 3, use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization(momentum=BN_MOMENTUM)(x))
    x = CarriedLSTM(round(UNITS * config.width), seed=config.seed)(x)
    return layers.Dropout(0.3)(layers.GlobalAveragePooling1D()(x))
