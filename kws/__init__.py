"""kws: streaming, offline keyword spotting.

microphone or file -> ring buffer -> incremental features -> classifier (LiteRT)
-> posterior smoothing -> detections. Nothing here imports TensorFlow; training lives in
the ``train`` package.
"""

__version__ = "0.1.0"
