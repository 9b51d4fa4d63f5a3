"""Evaluation, a stage of its own (no TensorFlow): clips of a split scored by the LiteRT model
(``clips``, ``metrics``, ``reports``), long labelled test audio (``testaudio``), scoring
detections on it (``scoring``), and the latency benchmark (``bench``)."""
