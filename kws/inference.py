"""Run a LiteRT classifier over one feature window."""

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
        if self.softmax:
            out = np.exp(out - out.max(), dtype=np.float32)
            out /= out.sum()
        return out

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """Posteriors ``(n, num_classes)`` for a batch of windows (run one at a time)."""
        return np.stack([self(w) for w in windows]) if len(windows) else \
            np.zeros((0, self.num_classes), np.float32)


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
