"""Datasets on disk (no TensorFlow): Speech Commands listing and decoding (``speech_commands``),
folders of negative audio (``negatives``), background noise and silence clips (``noise``)."""
