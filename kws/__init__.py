"""kws: streaming, offline keyword spotting.

microphone or file -> ring buffer -> incremental features -> classifier (LiteRT)
-> posterior smoothing -> detections. Nothing here imports TensorFlow or the training
package (``kws_train``, the folder ``train/``), which depends on ``kws`` and never the
reverse; ``docs/architecture.md`` maps the folders.
"""

__version__ = "0.1.0"
