"""The streaming twin of a window model: each hop computes only what its new frames add.

The window model maps a ``(frames, dim)`` window to logits. Its streaming twin takes the
``step`` frames of one hop and a flat state vector, and returns the logits of the window
that ends with those frames and the next state, as kws_streaming's external-state mode does.
The runtime (``kws.inference.StreamingClassifier``) carries the state from call to call.

How values map between the two: with ``valid`` convolutions every value of a layer depends on
the frames under its receptive field only, so it is named by the frame it ends on, whatever
window it was computed in. The twin computes every layer's value for every new frame (a
strided convolution becomes a dilated one, as in "à trous" filtering, so windows on any hop
see the values they need) and keeps, per layer, the past values its consumer still reads:
``(kernel - 1) x spacing`` rows for a convolution, the pooled span for the global average.
A window's output is then the global average over the rows its last layer has at the
window's own frames, and equals the window model's to float rounding (tested).

Layers it knows: ``Normalization``, ``Conv1D`` (``valid``), ``BatchNormalization``, ``ReLU``,
``Dropout``, ``Activation``, ``Cropping1D`` (from the left), ``Add`` (of values ending on
the same frames: checked), ``GlobalAveragePooling1D``, ``Dense`` and ``CarriedLSTM``. An LSTM
streams one step per frame with its state carried across hops, not reset per window: that
is the one layer whose stream differs from the window model after the first window (see
``kws_train.models.lstm``). Any other layer (2-D convolutions over time and frequency,
``same`` padding, a bidirectional LSTM) raises ``NotStreamable``: those models run as window
models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kws.errors import KwsError
from kws_train.models.lstm import CarriedLSTM

ELEMENTWISE = (keras.layers.Normalization, keras.layers.BatchNormalization, keras.layers.ReLU,
               keras.layers.Dropout, keras.layers.Activation)


class NotStreamable(KwsError):
    """The model has a layer with no streaming form here."""


@dataclass(frozen=True)
class Timing:
    """Where a layer's values sit in a window: ``length`` values, one per ``spacing`` frames,
    the last ending ``lag`` frames before the window's last frame, each seeing ``field``
    frames. Once pooled (``length`` 0) a value is per window, not per frame."""

    length: int
    spacing: int = 1
    lag: int = 0
    field: int = 1


class StreamingModel:
    """The streaming twin of ``model`` (a window model ending at logits) for hops of ``step``
    frames. ``state_size`` floats of state; ``__call__(frames, state) -> (logits, state)``."""

    def __init__(self, model: keras.Model, step: int):
        self.model, self.step = model, step
        self._rows: list[tuple[int, int]] = []  # per state buffer: (rows, channels)
        self._plan = []
        timing: dict[int, Timing] = {}
        for layer in model.layers:
            timing[id(layer.output)] = self._add(layer, [timing[id(t)] for t in _inputs(layer)])
        # The LSTM's masking needs the frame count: one float after the buffers.
        self.state_size = sum(r * c for r, c in self._rows) + 1

    def _buffer(self, rows: int, channels: int) -> int:
        self._rows.append((rows, channels))
        return len(self._rows) - 1

    def _add(self, layer, ins: list[Timing]) -> Timing:
        name = f"{type(layer).__name__} {layer.name!r}"
        if isinstance(layer, keras.layers.InputLayer):
            self._plan.append(("input", layer, None))
            return Timing(layer.output.shape[1])
        if not ins:
            raise NotStreamable(f"{name}: no input")
        t = ins[0]
        if isinstance(layer, ELEMENTWISE):
            self._plan.append(("same", layer, None))
            return t
        if isinstance(layer, keras.layers.Dense) and t.length == 0:
            self._plan.append(("same", layer, None))
            return t
        if t.length == 0:
            raise NotStreamable(f"{name}: after pooling only elementwise layers and Dense stream")
        if isinstance(layer, keras.layers.Conv1D) and type(layer) is keras.layers.Conv1D:
            (kernel,), (stride,), (dilation,) = layer.kernel_size, layer.strides, layer.dilation_rate
            if layer.padding != "valid" or dilation != 1 or layer.groups != 1:
                raise NotStreamable(f"{name}: only valid, undilated, ungrouped convolutions stream "
                                    f"(padding {layer.padding!r})")
            past = (kernel - 1) * t.spacing
            self._plan.append(("conv", layer, (self._buffer(past, layer.input.shape[-1]) if past else None,
                                               t.spacing)))
            length = (t.length - kernel) // stride + 1
            skipped = (t.length - kernel) % stride  # newest input values past the last output
            return Timing(length, t.spacing * stride, t.lag + skipped * t.spacing,
                          t.field + (kernel - 1) * t.spacing)
        if isinstance(layer, keras.layers.Cropping1D):
            if layer.cropping[1]:
                raise NotStreamable(f"{name}: cropping the newest values changes what a hop ends on")
            self._plan.append(("same", None, None))
            return Timing(t.length - layer.cropping[0], t.spacing, t.lag, t.field)
        if isinstance(layer, keras.layers.Add):
            if any((u.spacing, u.lag) != (t.spacing, t.lag) for u in ins):
                raise NotStreamable(f"{name}: its inputs end on different frames {ins}")
            self._plan.append(("add", layer, None))
            return Timing(min(u.length for u in ins), t.spacing, t.lag, max(u.field for u in ins))
        if isinstance(layer, keras.layers.GlobalAveragePooling1D):
            span = t.lag + (t.length - 1) * t.spacing + 1  # rows back to the oldest pooled value
            past = max(0, span - self.step)
            self._plan.append(("pool", layer, (self._buffer(past, layer.input.shape[-1]) if past else None,
                                               t)))
            return Timing(0)
        if isinstance(layer, CarriedLSTM):
            if t.spacing != 1 or t.lag != 0:
                raise NotStreamable(f"{name}: an LSTM streams over values of every frame, up to the "
                                    f"newest (spacing {t.spacing}, lag {t.lag})")
            units = layer.units
            self._plan.append(("lstm", layer, (self._buffer(1, units), self._buffer(1, units), t.field)))
            return t
        raise NotStreamable(f"{name}: no streaming form")

    def initial_state(self) -> np.ndarray:
        return np.zeros(self.state_size, np.float32)

    def __call__(self, frames, state):
        """``frames`` ``(step, dim)``, ``state`` ``(state_size,)`` -> logits ``(classes,)`` and
        the next state. TensorFlow ops throughout, so it traces into one LiteRT graph."""
        past, offset = [], 0
        for rows, channels in self._rows:
            past.append(tf.reshape(state[offset:offset + rows * channels], (rows, channels)))
            offset += rows * channels
        seen = state[offset]  # frames since the reset, before this hop
        nxt = list(past)
        values: dict[int, tf.Tensor] = {}
        for (kind, layer, arg), keras_layer in zip(self._plan, self.model.layers):
            x = values[id(_inputs(keras_layer)[0])] if kind != "input" else None
            if kind == "input":
                y = frames
            elif kind == "same":
                y = x if layer is None else _squeeze(layer(x[None], training=False))
            elif kind == "add":
                y = tf.add_n([values[id(t)] for t in _inputs(keras_layer)])
            elif kind == "conv":
                slot, dilation = arg
                rows = x if slot is None else tf.concat([past[slot], x], 0)
                if slot is not None:
                    nxt[slot] = rows[-self._rows[slot][0]:]
                y = tf.nn.conv1d(rows[None], layer.kernel, 1, "VALID", dilations=dilation)
                if layer.use_bias:
                    y = y + layer.bias
                y = _squeeze(layer.activation(y))
            elif kind == "pool":
                slot, t = arg
                rows = x if slot is None else tf.concat([past[slot], x], 0)
                if slot is not None:
                    nxt[slot] = rows[-self._rows[slot][0]:]
                newest = rows.shape[0] - 1 - t.lag
                picked = rows[newest - (t.length - 1) * t.spacing:newest + 1:t.spacing]
                y = tf.reduce_mean(picked, 0)
            elif kind == "lstm":
                h_slot, c_slot, field = arg
                h, c = past[h_slot][0], past[c_slot][0]
                cell, outputs = layer.lstm.cell, []
                for i in range(self.step):
                    # Values ending before the frame ``field - 1`` reach back before the reset:
                    # the window model's LSTM starts after them.
                    valid = tf.cast(seen + i >= field - 1, tf.float32)
                    z = tf.linalg.matvec(cell.kernel, x[i], transpose_a=True) + \
                        tf.linalg.matvec(cell.recurrent_kernel, h, transpose_a=True) + cell.bias
                    gi, gf, gc, go = tf.split(z, 4)
                    c_new = tf.sigmoid(gf) * c + tf.sigmoid(gi) * tf.tanh(gc)
                    h_new = tf.sigmoid(go) * tf.tanh(c_new)
                    c = valid * c_new + (1 - valid) * c
                    h = valid * h_new + (1 - valid) * h
                    outputs.append(h)
                nxt[h_slot], nxt[c_slot] = h[None], c[None]
                y = tf.stack(outputs)
            values[id(keras_layer.output)] = y
        # Clamped: a float32 count stops growing by one past 2**24 frames (46 hours).
        flat = [tf.reshape(p, [-1]) for p in nxt] + [tf.reshape(tf.minimum(seen + self.step, 1e6), [1])]
        return values[id(self.model.layers[-1].output)], tf.concat(flat, 0)


def _inputs(layer) -> list:
    if isinstance(layer, keras.layers.InputLayer):
        return []
    node = layer._inbound_nodes[0]
    return list(node.input_tensors)


def _squeeze(y):
    return y[0]


def streaming_model(model: keras.Model, step: int) -> StreamingModel:
    """The streaming twin of a window model ending in logits; ``NotStreamable`` if it has no
    streaming form."""
    return StreamingModel(model, step)


def to_tflite(model: keras.Model, step: int) -> bytes:
    """LiteRT flatbuffer of the streaming twin: inputs ``frames (1, step, dim)`` and
    ``state (1, state_size)``, outputs ``logits (1, classes)`` and ``state (1, state_size)``.
    Float: the state round-trips through the runtime at every hop, and the whole hop is so
    small that int8 would save little."""
    from kws_train.export import convert_function

    twin = StreamingModel(model, step)
    dim = model.input_shape[-1]

    def serve(frames, state):
        logits, new_state = twin(frames[0], state[0])
        return {"logits": logits[None], "state": new_state[None]}

    specs = [tf.TensorSpec([1, step, dim], tf.float32, name="frames"),
             tf.TensorSpec([1, twin.state_size], tf.float32, name="state")]
    return convert_function(model, serve, specs)


def export(model: keras.Model, step: int, path: Path, frames: np.ndarray,
           tolerance: float) -> dict | None:
    """Write the streaming twin of ``model`` (a window model, softmax and all) to ``path`` and
    check it on ``frames`` ``(n, dim)`` of real features in a row: every window the stream
    passes must get the window model's posteriors (Keras) within ``tolerance``. ``None`` when
    the model does not stream. For an LSTM, whose stream carries its state, only the first
    window must agree; how far the others differ is measured and returned.
    """
    from kws_train.export import logits_model, stream_vs_window

    logits = logits_model(model)
    try:
        twin = StreamingModel(logits, step)
    except NotStreamable as err:
        print(f"no streaming model: {err}", flush=True)
        return None
    path.write_bytes(to_tflite(logits, step))
    diffs = stream_vs_window(model, path, frames)
    carried = any(kind == "lstm" for kind, _, _ in twin._plan)
    checked = diffs[:1] if carried else diffs
    if not np.all(checked <= tolerance):
        raise KwsError(f"{path.name}: the streaming model's posteriors differ from the window "
                       f"model's by {float(np.max(checked)):.3g} (tolerance {tolerance}); not exporting it")
    return {"step": step, "state": twin.state_size, "carried": carried,
            "max_diff": float(np.max(checked)),
            **({"carried_mean_diff": float(np.mean(diffs))} if carried else {})}
