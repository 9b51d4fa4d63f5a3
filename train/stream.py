"""The streaming twin of a window model: each hop computes only what its new frames add.

The window model maps a ``(frames, dim)`` window to posteriors. Its streaming twin takes the
``step`` frames of one hop and one state tensor, and returns the posteriors of the window
that ends with those frames and the next state, as kws_streaming's external-state mode does.
The runtime (``kws.inference.StreamingClassifier``) carries the state from call to call.

How values map between the two: with ``valid`` convolutions every value of a layer depends on
the frames under its receptive field only, so it is named by the frame it ends on, whatever
window it was computed in. The twin computes every layer's value for every new frame (a
strided convolution becomes a dilated one, as in "à trous" filtering, so windows on any hop
see the values they need) and keeps, per layer, the past values its consumer still reads:
``(kernel - 1) x spacing`` rows for a convolution, the pooled span for the global average.
A window's output is then the global average over the rows its last layer has at the
window's own frames, and equals the window model's to float rounding (tested). Layers that
do not stream (a ``same`` convolution) run at each hop on those rows of their inputs, as the
window model runs them, after the layers that do.

Layers it knows: ``Normalization``, ``Conv1D`` (``valid``), ``BatchNormalization``, ``ReLU``,
``Dropout``, ``Activation``, ``Cropping1D``, ``Add`` (an input whose last value ends earlier,
as a centred crop leaves it, is delayed to match), ``GlobalAveragePooling1D``, ``Flatten``,
``Dense`` and ``CarriedLSTM``. An LSTM streams one step per frame with its state carried
across hops, not reset per window: that is the one layer whose stream differs from the
window model after the first window (see ``kws_train.models.lstm``). A model whose first
layers do not stream (2-D convolutions over time and frequency, ``same`` padding, a
bidirectional LSTM) raises ``NotStreamable``: it runs as a window model.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from kws.audio.files import read_audio
from kws.bundle import STREAM_MODEL, load_bundle, rewrite_metadata
from kws.errors import KwsError
from kws.inference import StreamingClassifier
from kws_train.export import FLOAT_TOLERANCE, convert_function, logits_model
from kws_train.fit import predict
from kws_train.models.lstm import CarriedLSTM

AFFINE = (keras.layers.Normalization, keras.layers.BatchNormalization)
ELEMENTWISE = (*AFFINE, keras.layers.ReLU, keras.layers.Dropout, keras.layers.Activation)


class NotStreamable(KwsError):
    """The model has a layer with no streaming form here."""


@dataclass(frozen=True)
class Timing:
    """Where a layer's values sit in a window: ``length`` values, one per ``spacing`` frames,
    the last ending ``lag`` frames before the window's last frame, each seeing ``field``
    frames. Once pooled (``length`` 0), or computed on the window's values (``window``), a
    value is per window, not per frame."""

    length: int
    spacing: int = 1
    lag: int = 0
    field: int = 1
    window: bool = False

    @property
    def span(self) -> int:
        """Rows of a stream from the window's oldest value to its newest frame."""
        return self.lag + (self.length - 1) * self.spacing + 1

    def rows(self, full, every: int | None = None):
        """The window's values among the newest rows ``full`` of a stream: every ``spacing``-th
        (or ``every``-th) of its last ``span`` rows, but the newest ``lag``."""
        end = full.shape[2]
        return full[:, :, end - self.span:end - self.lag:every or self.spacing]


@dataclass
class Buffer:
    """Rows of past values a layer keeps: rows ``[start, start + rows)`` of the state, in its
    first ``channels`` channels."""

    start: int
    rows: int
    channels: int


class StreamingModel:
    """The streaming twin of ``model`` (a window model ending at logits) for hops of ``step``
    frames; ``__call__(frames, state) -> (logits, state)``, the state of shape ``state_shape``.

    Built for few LiteRT operations, as a hop's arithmetic is tiny and each operation costs
    about a microsecond whatever its size: values are ``(1, 1, rows, channels)`` tensors, the
    state is one such tensor holding every buffer (rows stacked, channels padded to the
    widest), normalisation and batch norm are folded into the convolution next to them (exact
    with ``valid`` convolutions), and a ReLU after a convolution or sum fuses into it.
    """

    def __init__(self, model: keras.Model, step: int):
        self.model, self.step = model, step
        self._consumers: dict[int, list] = {}
        for layer in model.layers:
            for t in _inputs(layer):
                self._consumers.setdefault(id(t), []).append(layer)
        self._folded: set[int] = set()  # affine layers folded into a convolution
        self._buffers: list[Buffer] = []
        self._gathers: dict[int, tuple[Buffer | None, Timing]] = {}  # stream tensor -> its window
        self._plan = []
        timing: dict[int, Timing] = {}
        for layer in model.layers:
            timing[id(layer.output)] = self._add(layer, [timing[id(t)] for t in _inputs(layer)])
        self.carried = any(kind == "lstm" for kind, _, _ in self._plan)
        rows = sum(b.rows for b in self._buffers) + self.carried  # + the LSTM's frame count
        self.state_shape = (1, 1, max(rows, 1), max([b.channels for b in self._buffers], default=1))

    def _buffer(self, rows: int, channels: int) -> Buffer | None:
        if rows <= 0:
            return None
        buffer = Buffer(sum(b.rows for b in self._buffers), rows, channels)
        self._buffers.append(buffer)
        return buffer

    def _only_consumer(self, tensor, kind):
        users = self._consumers.get(id(tensor), [])
        return users[0] if len(users) == 1 and isinstance(users[0], kind) else None

    def _conv_weights(self, layer) -> tuple[np.ndarray, np.ndarray]:
        """The kernel ``(1, k, in, out)`` and bias, with a lone affine layer before (the input
        normalisation) or after it (batch norm) folded in."""
        kernel = layer.kernel.numpy().astype(np.float64)
        bias = layer.bias.numpy().astype(np.float64) if layer.use_bias else np.zeros(kernel.shape[-1])
        before = layer.input._keras_history[0]
        if isinstance(before, AFFINE) and self._only_consumer(before.output, keras.layers.Conv1D):
            scale, shift = _affine(before)
            bias = bias + np.einsum("kio,i->o", kernel, shift)
            kernel = kernel * scale[None, :, None]
            self._folded.add(id(before))
        after = self._only_consumer(layer.output, keras.layers.BatchNormalization)
        if after is not None:
            scale, shift = _affine(after)
            kernel, bias = kernel * scale, bias * scale + shift
            self._folded.add(id(after))
        return kernel[None].astype(np.float32), bias.astype(np.float32)

    def _pooled_head(self, pool, t: Timing) -> tuple[np.ndarray, np.ndarray] | None:
        """When the average (or flattening) is followed by Dropout and a linear Dense only, the
        three are one linear map of the window's rows: a convolution over them (dilated by their
        spacing) with, at each tap, the Dense kernel / ``length`` (or the Dense kernel's rows for
        that position). ``None`` otherwise."""
        layer = pool
        while (after := self._only_consumer(layer.output, keras.layers.Layer)) is not None and \
                isinstance(after, keras.layers.Dropout):
            layer = after
        if not isinstance(after, keras.layers.Dense) or after.activation is not keras.activations.linear:
            return None
        kernel = after.kernel.numpy()
        bias = after.bias.numpy() if after.use_bias else np.zeros(kernel.shape[-1], np.float32)
        self._folded.add(id(after))
        if isinstance(pool, keras.layers.Flatten):  # rows in order, channels within a row
            return kernel.reshape(1, t.length, -1, kernel.shape[-1]), bias
        return np.repeat(kernel[None, None] / t.length, t.length, axis=1), bias

    def _add(self, layer, ins: list[Timing]) -> Timing:
        """Plan ``layer``: streamed when it can be and its inputs are streams; else run once a
        hop on the window's values of its inputs (gathered from their streams), as the window
        model runs it: the layers after a ``same`` convolution, say, cost a window's work, but
        what comes before them still streams."""
        if not any(t.window for t in ins):
            try:
                return self._add_streamed(layer, ins)
            except NotStreamable as err:
                if isinstance(layer, keras.layers.InputLayer) or not any(
                        kind == "conv" for kind, _, _ in self._plan):
                    raise  # nothing would stream: the window model itself is the better model
                reason = err
        else:
            reason = None
        gathers = []
        for t, tensor in zip(ins, _inputs(layer)):
            if not t.window and id(tensor) not in self._gathers:
                self._gathers[id(tensor)] = (self._buffer(t.span - self.step, tensor.shape[-1]), t)
            gathers.append(None if t.window else self._gathers[id(tensor)])
        if isinstance(layer, CarriedLSTM):
            raise NotStreamable(f"{layer.name!r}: an LSTM after a window layer ({reason})")
        self._plan.append(("window", layer, gathers))
        return Timing(layer.output.shape[1] if len(layer.output.shape) == 3 else 0, window=True)

    def _add_streamed(self, layer, ins: list[Timing]) -> Timing:
        name = f"{type(layer).__name__} {layer.name!r}"
        if isinstance(layer, keras.layers.InputLayer):
            self._plan.append(("input", layer, None))
            return Timing(layer.output.shape[1])
        t = ins[0]
        if isinstance(layer, ELEMENTWISE) or (isinstance(layer, keras.layers.Dense) and t.length == 0):
            self._plan.append(("same", layer, None))
            return t
        if t.length == 0:
            raise NotStreamable(f"{name}: after pooling only elementwise layers and Dense stream")
        if isinstance(layer, keras.layers.Conv1D) and type(layer) is keras.layers.Conv1D:
            (kernel,), (stride,), (dilation,) = layer.kernel_size, layer.strides, layer.dilation_rate
            if layer.padding != "valid" or dilation != 1 or layer.groups != 1:
                raise NotStreamable(f"{name}: only valid, undilated, ungrouped convolutions stream "
                                    f"(padding {layer.padding!r})")
            buffer = self._buffer((kernel - 1) * t.spacing, layer.input.shape[-1])
            self._plan.append(("conv", layer, (buffer, t.spacing, self._conv_weights(layer))))
            length = (t.length - kernel) // stride + 1
            skipped = (t.length - kernel) % stride  # newest input values past the last output
            return Timing(length, t.spacing * stride, t.lag + skipped * t.spacing,
                          t.field + (kernel - 1) * t.spacing)
        if isinstance(layer, keras.layers.Cropping1D):
            self._plan.append(("crop", layer, None))  # the stream's values are the same
            left, right = layer.cropping
            return Timing(t.length - left - right, t.spacing, t.lag + right * t.spacing, t.field)
        if isinstance(layer, keras.layers.Add):
            if any(u.spacing != t.spacing for u in ins):
                raise NotStreamable(f"{name}: its inputs are spaced differently {ins}")
            # The window adds its inputs' last values; an input whose last value ends earlier
            # (a larger lag: a centred crop) is added from that many frames ago.
            lag = min(u.lag for u in ins)
            delays = [self._buffer(u.lag - lag, c.shape[-1]) for u, c in zip(ins, _inputs(layer))]
            self._plan.append(("add", layer, delays))
            return Timing(t.length, t.spacing, lag, max(u.field + u.lag - lag for u in ins))
        if isinstance(layer, (keras.layers.GlobalAveragePooling1D, keras.layers.Flatten)):
            self._plan.append(("pool", layer, (self._buffer(t.span - self.step, layer.input.shape[-1]), t,
                                               self._pooled_head(layer, t))))
            return Timing(0)
        if isinstance(layer, CarriedLSTM):
            if t.spacing != 1 or t.lag != 0:
                raise NotStreamable(f"{name}: an LSTM streams over values of every frame, up to the "
                                    f"newest (spacing {t.spacing}, lag {t.lag})")
            self._plan.append(("lstm", layer, (self._buffer(2, layer.units), t.field)))
            return t
        raise NotStreamable(f"{name}: no streaming form")

    def __call__(self, frames, state):
        """``frames`` ``(1, 1, step, dim)`` and ``state`` -> logits ``(1, classes)`` and the
        next state. TensorFlow ops throughout, so it traces into one LiteRT graph."""
        width = self.state_shape[-1]
        nxt: list[tf.Tensor] = []  # the next state's rows, buffer by buffer

        def with_past(buffer: Buffer | None, x):
            """``x`` after the buffer's past rows; its newest rows become the next state."""
            if buffer is None:
                return x
            full = tf.concat([state[:, :, buffer.start:buffer.start + buffer.rows, :buffer.channels], x], 2)
            nxt.append(_widened(full[:, :, -buffer.rows:], width))
            return full

        gathered: dict[int, tf.Tensor] = {}

        def window_of(tensor, gather):
            """The window's values ``(1, length, channels)`` of a streamed tensor."""
            if id(tensor) not in gathered:
                buffer, t = gather
                picked = t.rows(with_past(buffer, values[id(tensor)]))
                gathered[id(tensor)] = tf.reshape(picked, (1, t.length, picked.shape[-1]))
            return gathered[id(tensor)]

        seen = state[:, :, -1:, :1] if self.carried else None  # frames since the reset
        values: dict[int, tf.Tensor] = {}
        for kind, layer, arg in self._plan:
            x = values[id(_inputs(layer)[0])] if kind not in ("input", "window") else None
            if kind == "input":
                y = frames
            elif kind == "crop":
                y = x
            elif kind == "same":
                y = x if id(layer) in self._folded else _elementwise(layer, x)
            elif kind == "add":
                first, *rest = (x if buffer is None else with_past(buffer, x)[:, :, :self.step]
                                for x, buffer in zip((values[id(t)] for t in _inputs(layer)), arg))
                y = first
                for other in rest:  # ADD, not ADD_N: LiteRT fuses a ReLU after it
                    y = y + other
            elif kind == "conv":
                buffer, dilation, (kernel, bias) = arg
                y = tf.nn.conv2d(with_past(buffer, x), kernel, 1, "VALID", dilations=[1, 1, dilation, 1]) + bias
            elif kind == "pool":
                buffer, t, head = arg
                full = with_past(buffer, x)
                if head is None:
                    picked = t.rows(full)
                    y = tf.reshape(picked, (1, -1)) if isinstance(layer, keras.layers.Flatten) else \
                        tf.reduce_mean(picked, [1, 2])
                else:  # the dilated convolution picks every spacing-th row itself
                    kernel, bias = head
                    y = tf.reshape(tf.nn.conv2d(t.rows(full, every=1), kernel, 1, "VALID",
                                                dilations=[1, 1, t.spacing, 1]) + bias, (1, -1))
            elif kind == "lstm":
                y = self._lstm(layer, x, arg, state, seen, nxt)
            elif kind == "window":
                inputs = [values[id(t)] if gather is None else window_of(t, gather)
                          for t, gather in zip(_inputs(layer), arg)]
                y = layer(inputs if len(inputs) > 1 else inputs[0], training=False)
            values[id(layer.output)] = y
        if self.carried:
            # Clamped: a float32 count stops growing by one past 2**24 frames (46 hours).
            nxt.append(_widened(tf.minimum(seen + self.step, 1e6), width))
        new_state = tf.concat(nxt, 2) if nxt else state
        return values[id(self.model.layers[-1].output)], new_state

    def _lstm(self, layer, x, arg, state, seen, nxt):
        """One LSTM step per frame from the carried ``(h, c)``; a frame whose value reaches back
        before the reset (``field``) leaves the state as it was, as the window model's LSTM
        starts after those."""
        buffer, field = arg
        units = layer.units
        past = state[:, 0, buffer.start:buffer.start + 2, :units]
        h, c = past[:, 0], past[:, 1]
        cell, outputs = layer.lstm.cell, []
        for i in range(self.step):
            valid = tf.cast(seen[:, 0, 0] + i >= field - 1, tf.float32)
            z = tf.matmul(x[:, 0, i], cell.kernel) + tf.matmul(h, cell.recurrent_kernel) + cell.bias
            gi, gf, gc, go = tf.split(z, 4, axis=-1)
            c_new = tf.sigmoid(gf) * c + tf.sigmoid(gi) * tf.tanh(gc)
            h_new = tf.sigmoid(go) * tf.tanh(c_new)
            c = valid * c_new + (1 - valid) * c
            h = valid * h_new + (1 - valid) * h
            outputs.append(h)
        nxt.append(_widened(tf.stack([h, c], 1)[:, None], self.state_shape[-1]))
        return tf.stack(outputs, 1)[:, None]


def _widened(rows, width: int):
    """``rows`` with zero channels up to the state's ``width``."""
    missing = width - rows.shape[-1]
    return rows if not missing else tf.pad(rows, [[0, 0], [0, 0], [0, 0], [0, missing]])


def _affine(layer) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, shift)`` with ``layer(x) == x * scale + shift`` in inference."""
    if isinstance(layer, keras.layers.Normalization):
        std = np.maximum(np.sqrt(np.asarray(layer.variance, np.float64)), keras.backend.epsilon()).reshape(-1)
        return 1 / std, -np.asarray(layer.mean, np.float64).reshape(-1) / std
    gamma = layer.gamma.numpy() if layer.scale else 1.0
    beta = layer.beta.numpy() if layer.center else 0.0
    scale = gamma / np.sqrt(layer.moving_variance.numpy().astype(np.float64) + layer.epsilon)
    return scale * np.ones(layer.moving_mean.shape), beta - layer.moving_mean.numpy() * scale


def _elementwise(layer, x):
    if isinstance(layer, AFFINE):
        scale, shift = _affine(layer)
        return x * scale.astype(np.float32) + shift.astype(np.float32)
    if isinstance(layer, keras.layers.Dropout):
        return x
    return layer(x, training=False)


def _inputs(layer) -> list:
    if isinstance(layer, keras.layers.InputLayer):
        return []
    return list(layer._inbound_nodes[0].input_tensors)


def to_tflite(twin: StreamingModel) -> bytes:
    """LiteRT flatbuffer of ``twin``: inputs ``frames (1, 1, step, dim)`` and ``state``,
    outputs ``posteriors (1, classes)`` and the next ``state``. Float: the state round-trips
    through the runtime at every hop, and a hop's arithmetic is so small that int8 would save
    little. The softmax is in the graph (float, so scores near 1 keep their resolution) to
    spare the runtime a numpy call a hop.
    """
    def serve(frames, state):
        out, new_state = twin(frames, state)
        return {"posteriors": tf.nn.softmax(out), "state": new_state}

    specs = [tf.TensorSpec([1, 1, twin.step, twin.model.input_shape[-1]], tf.float32, name="frames"),
             tf.TensorSpec(twin.state_shape, tf.float32, name="state")]
    return convert_function(twin.model, serve, specs)


def stream_vs_window(model: keras.Model, path: Path, frames: np.ndarray) -> np.ndarray:
    """For every window of ``frames`` ``(n, dim)`` that a stream ends a hop on: the largest
    difference between the streaming LiteRT model's posteriors (``path``, run from a reset
    over all the frames in order, as the detector runs it) and ``model``'s on that window."""
    stream = StreamingClassifier(path)
    size, step = model.input_shape[1], stream.step
    ends = range(step, len(frames) + 1, step)
    got = [stream(frames[end - step:end]) for end in ends]
    windows = np.stack([frames[end - size:end] for end in ends if end >= size])
    return np.abs(np.stack(got[-len(windows):]) - predict(model, windows, batch_size=256)).max(axis=1)


def export(model: keras.Model, step: int, path: Path, frames: np.ndarray,
           tolerance: float) -> dict | None:
    """Write the streaming twin of ``model`` (a window model, softmax and all) to ``path`` and
    check it on ``frames`` ``(n, dim)`` of real features in a row: every window the stream
    passes must get the window model's posteriors (Keras) within ``tolerance``. ``None`` when
    the model does not stream: the bundle then runs its window model, as any bundle without a
    twin, nothing a user must act on, so nothing is printed (``kws enroll`` printed it first).
    For an LSTM, whose stream carries its state, only the first
    window must agree; how far the others differ is measured and returned.
    """
    try:
        twin = StreamingModel(logits_model(model), step)
    except NotStreamable:
        return None
    path.write_bytes(to_tflite(twin))
    diffs = stream_vs_window(model, path, frames)
    checked = diffs[:1] if twin.carried else diffs
    if not np.all(checked <= tolerance):
        raise KwsError(f"{path.name}: the streaming model's posteriors differ from the window "
                       f"model's by {float(np.max(checked)):.3g} (tolerance {tolerance}); not exporting it")
    return {"step": step, "state": list(twin.state_shape), "carried": twin.carried,
            "max_diff": float(np.max(checked)),
            **({"carried_mean_diff": float(np.mean(diffs))} if twin.carried else {})}


def main(argv: list[str] | None = None) -> int:
    """``python -m kws_train.stream BUNDLE --wav SPEECH.wav [--step FRAMES]``: (re)export a
    bundle's streaming model from its ``model.keras``, checked on the frames of real audio."""
    parser = argparse.ArgumentParser(prog="python -m kws_train.stream", description=main.__doc__)
    parser.add_argument("bundle")
    parser.add_argument("--wav", required=True, help="audio to check the stream on (any speech)")
    parser.add_argument("--step", type=int, default=2, help="frames per hop (default 2: 20 ms)")
    args = parser.parse_args(argv)
    try:
        bundle = load_bundle(args.bundle)
        frames = bundle.frontend().compute(read_audio(args.wav, bundle.sample_rate))
        model = keras.models.load_model(bundle.path / "model.keras")
        with tempfile.TemporaryDirectory() as tmp:
            info = export(model, args.step, Path(tmp) / STREAM_MODEL, frames, FLOAT_TOLERANCE)
            if info is None:
                return 1
            rewrite_metadata(bundle, files=[Path(tmp) / STREAM_MODEL], stream=info)
    except KwsError as err:
        print(f"kws_train.stream: {err}", file=sys.stderr)
        return 2
    print(f"{bundle.path}: {STREAM_MODEL} {info}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
