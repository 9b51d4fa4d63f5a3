"""LiteRT classifiers: over one feature window (``Classifier``), or over the frames of one hop
with the state carried from hop to hop (``StreamingClassifier``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kws.errors import KwsError


class Classifier:
    """A LiteRT model mapping a ``(frames, dim)`` feature window to class posteriors.

    Quantised inputs/outputs (int8 models exported with integer I/O) are handled with the
    tensors' own scale and zero point, so callers always see float32. A model that outputs
    logits (``softmax=True``; bundles say ``"outputs": "logits"``) gets its softmax here, in
    float: an int8 softmax output moves in steps of 1/256 and saturates near 0.996, so
    thresholds close to 1 could not be told apart.
    """

    def __init__(self, model_path: str | Path, num_threads: int = 1, softmax: bool = False):
        self.softmax = softmax
        from ai_edge_litert.interpreter import Interpreter

        try:
            self._interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise KwsError(f"{model_path}: cannot load LiteRT model ({err})") from None
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self.input_shape = tuple(int(d) for d in self._input["shape"][1:])
        self.num_classes = int(self._output["shape"][-1])

    def __call__(self, window: np.ndarray) -> np.ndarray:
        """Posteriors ``(num_classes,)`` for one window of shape ``input_shape``."""
        self._interpreter.set_tensor(self._input["index"], _to_tensor(window[None], self._input))
        self._interpreter.invoke()
        out = _from_tensor(self._interpreter.get_tensor(self._output["index"])[0], self._output)
        return softmax(out) if self.softmax else out

    def reset(self) -> None:
        """Nothing to forget: every call sees its whole window."""

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Posteriors ``(n, num_classes)`` for a batch of windows (run one at a time)."""
        return np.stack([self(w) for w in windows]) if len(windows) else \
            np.zeros((0, self.num_classes), np.float32)


class StreamingClassifier:
    """A streaming LiteRT model (``kws_train.stream``): the ``step`` new frames of a hop and
    the state in, the posteriors of the window ending with them and the next state out.

    The state is explicit: an array this object carries from call to call, zero after
    ``reset``, so the model itself holds nothing between calls. Every frame of the stream must
    pass through, in order, ``step`` at a time, from the first one on: a value a later window
    needs is computed once, when its last frame arrives. Called on frames ``[t - step, t)``
    it returns what the window model gives on the window ending at frame ``t`` (for an LSTM,
    from its carried state). The softmax is in the graph, in float.
    """

    def __init__(self, model_path: str | Path, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        try:
            self._interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads)
            self._interpreter.allocate_tensors()
            runner = self._interpreter.get_signature_runner()
            ins, outs = runner.get_input_details(), runner.get_output_details()
            self._frames, self._state_in = ins["frames"]["index"], ins["state"]["index"]
            self._posteriors, self._state_out = outs["posteriors"]["index"], outs["state"]["index"]
        except (ValueError, RuntimeError, KeyError) as err:
            raise KwsError(f"{model_path}: cannot load streaming LiteRT model ({err})") from None
        self.step, dim = (int(d) for d in ins["frames"]["shape"][2:])
        self.input_shape = (self.step, dim)  # one call's frames
        self.num_classes = int(outs["posteriors"]["shape"][-1])
        self._state = np.zeros(ins["state"]["shape"], np.float32)

    @property
    def state(self) -> np.ndarray:
        """The state the next call starts from (a copy)."""
        return self._state.copy()

    def reset(self) -> None:
        """Forget the stream: the next call is its first hop."""
        self._state = np.zeros_like(self._state)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Posteriors ``(num_classes,)`` after the ``(step, dim)`` frames of one more hop."""
        interpreter = self._interpreter
        interpreter.set_tensor(self._frames, np.asarray(frames, np.float32)[None, None])
        interpreter.set_tensor(self._state_in, self._state)
        interpreter.invoke()
        self._state = interpreter.get_tensor(self._state_out)
        return interpreter.get_tensor(self._posteriors)[0]


def softmax(logits: np.ndarray) -> np.ndarray:
    out = np.exp(logits - logits.max(), dtype=np.float32)
    return out / out.sum()


def _to_tensor(values: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return np.asarray(values, dtype=np.float32)
    scale, zero = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(values / scale + zero), info.min, info.max).astype(detail["dtype"])


def _from_tensor(values: np.ndarray, detail: dict) -> np.ndarray:
    if detail["dtype"] == np.float32:
        return values
    scale, zero = detail["quantization"]
    return ((values.astype(np.float32) - zero) * scale).astype(np.float32)
