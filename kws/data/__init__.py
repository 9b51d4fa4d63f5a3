"""Datasets on disk: Speech Commands and folders of negative audio (no TensorFlow)."""
