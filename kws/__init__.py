"""kws: streaming, offline keyword spotting.

microphone or file -> ring buffer -> incremental features -> classifier (LiteRT)
-> posterior smoothing -> detections. Nothing here imports TensorFlow or the training
package (``kws_train``, the folder ``train/``), which depends on ``kws`` and never the
reverse; ``docs/architecture.md`` maps the folders.

The Python API (``kws.api``), imported on first use so that ``kws --help`` stays fast::

    spotter = kws.Spotter()
    for detection in spotter.process(samples): ...
"""

__version__ = "0.1.0"

# name -> module: the API, loaded on first access (PEP 562).
_API = {"Spotter": "kws.api", "NearMiss": "kws.api", "Update": "kws.api",
        "Detection": "kws.detector", "KwsError": "kws.errors"}
__all__ = ["Spotter", "Detection", "NearMiss", "Update", "KwsError", "__version__"]


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'kws' has no attribute {name!r}")
