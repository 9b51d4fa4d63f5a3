"""One browser's live view: the page's microphone in, detections and scores out.

Each WebSocket connection owns a ``Live``, which owns a ``kws.api.Spotter``: the detector of
``kws replay`` (the same bundle, config and thresholds; audio at the browser's rate is
resampled by the detector as for any input), so what the page hears gives the detections a
replay of the same samples gives. Nothing is shared between connections but the loaded
models: each browser gets its own detector and its own thresholds.

Messages (text: one JSON object; binary: audio)::

    browser -> kws
      {"type": "start", "rate": 48000, "format": "s16" | "f32", "model": NAME}
                    a new stream at time 0 (model: optional, default the first offered)
      <binary>      mono samples, little-endian, in the format announced
      {"type": "thresholds", "thresholds": {"up": 0.8}}
                    this connection's thresholds, from the next hop on
      {"type": "stop"}
                    end the stream with a window of silence, as replay ends a file
    kws -> browser
      {"type": "ready", "model", "words", "thresholds", "rate", "model_rate"}
      {"type": "detection", "time", "word", "score"}      as soon as one fires
      {"type": "near_miss", "time", "word", "score", "threshold"}
      {"type": "scores", "time", "scores": {word: score}, "level": dBFS}
                    every ``UPDATE_SECONDS`` of audio (~10 a second live)
      {"type": "thresholds", "thresholds"}               after a change
      {"type": "stopped", "time"}                        after the stop's detections
      {"type": "error", "message"}                       then kws closes the connection

What a browser sends that cannot be served raises ``ProtocolError`` (``kws.serve``'s: it
closes that connection, never the server).
"""

from __future__ import annotations

import numpy as np

from kws.api import LEVEL_FLOOR_DB, Spotter, Update
from kws.detector import chunks
from kws.errors import KwsError
from kws.serve import ProtocolError
from kws.units import seconds_to_samples
from kws.web.models import Models

UPDATE_SECONDS = 0.1  # stream seconds between two score messages
SLICE_SECONDS = 0.1  # audio processed between two turns of the event loop, as kws.serve
FORMATS = {"s16": np.dtype("<i2"), "f32": np.dtype("<f4")}


class Live:
    """The stream of one connection (see the module docstring for the messages)."""

    def __init__(self, models: Models):
        self.models = models
        self.spotter: Spotter | None = None
        self.model = ""
        self._dtype = FORMATS["s16"]
        self._sent = 0.0  # stream time of the last scores message
        self._level = -np.inf  # loudest step since then

    def message(self, message) -> list[dict]:
        """Answer one text message."""
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise ProtocolError(f"a message must be a JSON object with a type, got {str(message)[:80]!r}")
        kind = message["type"]
        if kind == "start":
            return [self._start(message)]
        if kind == "thresholds":
            spotter = self._started()
            thresholds = message.get("thresholds")
            if not isinstance(thresholds, dict):
                raise ProtocolError("thresholds: an object of word: threshold is expected")
            try:
                spotter.set_thresholds(thresholds)
            except ValueError as err:
                raise ProtocolError(str(err)) from None
            return [{"type": "thresholds", "thresholds": spotter.thresholds}]
        if kind == "stop":
            spotter = self._started()
            found = spotter.flush()
            update = Update(spotter.time, LEVEL_FLOOR_DB, spotter.scores, spotter.thresholds, found, [])
            return [*self._report(update, final=True), {"type": "stopped", "time": round(spotter.time, 3)}]
        raise ProtocolError(f"unknown message type {kind[:40]!r}")

    def slices(self, payload: bytes) -> list[np.ndarray]:
        """A binary message as samples, in pieces of ``SLICE_SECONDS`` (the loop runs other
        connections between two)."""
        spotter = self._started()
        if len(payload) % self._dtype.itemsize:
            raise ProtocolError(f"{len(payload)} bytes are not whole {self._dtype.itemsize}-byte samples")
        samples = np.frombuffer(payload, dtype=self._dtype)
        return list(chunks(samples, max(1, seconds_to_samples(SLICE_SECONDS, spotter.sample_rate))))

    def feed(self, samples: np.ndarray) -> list[dict]:
        """Push samples through the detector; the messages they give."""
        try:
            update = self._started().feed(samples)  # int16 scaled as kws.api does for any caller
        except ValueError as err:  # kws.api.InputError: NaN, or int16 values sent as float
            raise ProtocolError(str(err)) from None
        return self._report(update)

    def _start(self, message: dict) -> dict:
        rate, fmt = message.get("rate"), message.get("format", "s16")
        if fmt not in FORMATS:
            raise ProtocolError(f"format {str(fmt)[:20]!r}: s16 or f32")
        offered = self.models.get(message["model"]) if message.get("model") is not None else self.models.first()
        try:
            self.spotter = Spotter(config=offered.model.config, sample_rate=rate)
        except ValueError as err:  # a rate out of range
            raise ProtocolError(str(err)) from None
        except KwsError as err:  # the model went away or broke since it was listed
            raise ProtocolError(f"model {offered.name}: {err}") from None
        self.model, self._dtype = offered.name, FORMATS[fmt]
        self._sent, self._level = 0.0, -np.inf
        return {"type": "ready", "model": offered.name, "words": self.spotter.words,
                "thresholds": self.spotter.thresholds, "rate": self.spotter.sample_rate,
                "model_rate": self.spotter.model_rate}

    def _started(self) -> Spotter:
        if self.spotter is None:
            raise ProtocolError("send a start message before audio")
        return self.spotter

    def _report(self, update: Update, final: bool = False) -> list[dict]:
        out = [{"type": "detection", "time": round(d.time, 3), "word": d.word, "score": round(d.score, 4)}
               for d in update.detections]
        out += [{"type": "near_miss", "time": round(m.time, 3), "word": m.word, "score": round(m.score, 4),
                 "threshold": m.threshold} for m in update.near_misses]
        self._level = max(self._level, update.level_db)
        if final or update.time - self._sent >= UPDATE_SECONDS:
            out.append({"type": "scores", "time": round(update.time, 3),
                        "scores": {w: round(s, 4) for w, s in update.scores.items()},
                        "level": round(self._level, 1)})
            self._sent, self._level = update.time, -np.inf
        return out
